"""Resampling a channel-first image at given voxel positions: one interpolation per key and per draw."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from scripts.transforms.parameters import parse_mode, parse_padding_mode

__all__ = ["index_grid", "warp", "output_dtype"]


def index_grid(spatial_shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(3, X, Y, Z) tensor of voxel indices."""
    axes = [torch.arange(int(n), dtype=dtype) for n in spatial_shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)


def warp(
    img: torch.Tensor, coords_vox: torch.Tensor, mode: str = "bilinear", padding_mode: str = "border"
) -> torch.Tensor:
    """Resample a channel-first image at given voxel positions (one interpolation, torch ``grid_sample``).

    Args:
        img: (C, X, Y, Z) tensor (any real or integer dtype; it is interpolated in float32/float64).
        coords_vox: (3, X', Y', Z') positions in ``img``'s voxel indices (axis order 0, 1, 2) where each output
            voxel samples the input (a backward, "pull" mapping).
        mode: ``"bilinear"`` (trilinear in 3D) or ``"nearest"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``: values for positions outside the input.

    Returns:
        (C, X', Y', Z') tensor with ``img``'s dtype (integer labels are rounded back, so nearest keeps values).
    """
    mode, padding_mode = parse_mode(mode), parse_padding_mode(padding_mode)
    src = img.as_tensor() if isinstance(img, MetaTensor) else img
    work_dtype = src.dtype if src.dtype in (torch.float32, torch.float64) else torch.float32
    grid = coords_vox.to(device=src.device, dtype=work_dtype)
    sizes = torch.tensor(src.shape[1:], dtype=work_dtype, device=src.device).view(3, 1, 1, 1)
    # align_corners=True: -1 and +1 are the centres of the first and last voxels, so index i -> 2 i / (n - 1) - 1.
    norm = torch.where(sizes > 1, 2.0 * grid / (sizes - 1).clamp(min=1) - 1.0, torch.zeros_like(grid))
    # grid_sample's last dimension is ordered (W, H, D) = (Z, Y, X) for a (N, C, D=X, H=Y, W=Z) input.
    norm = norm.flip(0).permute(1, 2, 3, 0).unsqueeze(0)
    out = F.grid_sample(
        src.to(work_dtype).unsqueeze(0), norm, mode=mode, padding_mode=padding_mode, align_corners=True
    )[0]
    if not src.dtype.is_floating_point:
        out = out.round()
    return out.to(src.dtype)


def output_dtype(dtype: torch.dtype, mode: str) -> torch.dtype:
    # Why: a linearly interpolated integer image would be truncated; labels (nearest) keep their dtype.
    if mode == "bilinear" and not dtype.is_floating_point:
        return torch.float32
    return dtype
