"""Batch-norm statistics of a whole scan in one forward pass, taken over the sliding window's patches.

Why: test-time batch-norm adaptation (scripts/pipeline/batchnorm_adaptation.py) needs each batch-norm layer's
feature mean and variance on the scan. Estimated by running the network on every sliding-window patch (8 patches of
128x128x64 on the reference geometry's 219x175x95 working grid: 2.3 times the scan's voxels), the estimate costs
a prediction pass per view; one forward pass of the scan itself, padded to a size the network accepts, costs about
0.45 of it (issue #24, docs/studies/speed.md "Batch-norm adaptation at a fraction of the cost").

How: the scan is padded as the sliding window pads it (an axis shorter than the window, on both sides), then at the
end of each axis to a multiple of the network's total stride, and every batch-norm layer stays in evaluation mode;
a forward pre-hook on each layer computes, for every box (the sliding window's patches, or the whole scan), the
mean and the unbiased variance of its input over the box's voxels at the layer's resolution (a box ``[a, b)`` along
an axis is ``[ceil(a / f), ceil(b / f))`` at a layer that sees the grid ``f`` times coarser, within the first
``ceil(n / f)`` voxels that are centred on the ``n`` scan voxels), averages them over the boxes as the window
statistics are averaged, writes the averages into the layer's running buffers, so that the layer normalises with
exactly them, and keeps them. The end padding still passes through the network, but no statistic counts it.

Why the patches and not the whole scan as one box: measured on the real samples (docs/studies/speed.md), the
scan-wide mean and variance (the spread between patches added, the patch overlaps weighted once) moved Dice by up to
0.25 (MuscleMap psoas right 0.87 -> 0.62); the box-averaged statistics give the windows' Dice within 0.01.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.data.utils import dense_patch_slices

__all__ = ["can_hook", "pad_like_sliding_window", "padded_shape", "volume_statistics", "window_regions"]

Region = tuple[tuple[int, int], ...]


def pad_like_sliding_window(image: torch.Tensor, roi_size: Sequence[int], padding_mode: str) -> torch.Tensor:
    """``image`` (1, C, X, Y, Z) padded as MONAI's sliding window pads it: an axis shorter than the window to the
    window's length, on both sides (the smaller half before), with ``padding_mode`` (zeros for "constant")."""
    shape = [int(n) for n in image.shape[2:]]
    pad = []
    for n, r in zip(reversed(shape), reversed([int(r) for r in roi_size])):
        diff = max(r - n, 0)
        pad.extend([diff // 2, diff - diff // 2])
    return F.pad(image, pad, mode=padding_mode) if any(pad) else image


def window_regions(
    spatial_shape: Sequence[int], roi_size: Sequence[int], overlap: float | Sequence[float]
) -> list[Region]:
    """The boxes a ``SlidingWindowInferer(roi_size, overlap=overlap)`` cuts from an image at least ``roi_size``
    large (:func:`pad_like_sliding_window`): MONAI's positions (scan interval ``int(roi * (1 - overlap))``, the last
    window moved to the image's end).

    Returns:
        per window, per axis, ``(start, stop)`` voxel indices.

    Raises:
        ValueError: an axis shorter than the window.
    """
    shape = [int(n) for n in spatial_shape]
    roi = [int(r) for r in roi_size]
    if any(n < r for n, r in zip(shape, roi)):
        raise ValueError(f"image {tuple(shape)} smaller than the window {tuple(roi)}: pad it like the sliding window")
    overlaps = [float(overlap)] * len(shape) if isinstance(overlap, (int, float)) else [float(o) for o in overlap]
    interval = [r if r == n else max(int(r * (1 - o)), 1) for r, n, o in zip(roi, shape, overlaps)]
    return [tuple((sl.start, sl.stop) for sl in window) for window in dense_patch_slices(shape, roi, interval)]


def padded_shape(spatial_shape: tuple[int, ...], multiple: int) -> tuple[int, ...]:
    """Each of ``spatial_shape`` (voxels) rounded up to a multiple of ``multiple`` (the network's total stride)."""
    return tuple(int(math.ceil(n / multiple) * multiple) for n in spatial_shape)


def can_hook(layers: list[torch.nn.Module]) -> bool:
    """Whether forward pre-hooks can be put on ``layers`` (eager modules can; TorchScript modules cannot)."""
    return not any(isinstance(m, torch.jit.ScriptModule) for m in layers)


def volume_statistics(
    network: torch.nn.Module,
    layers: list[torch.nn.Module],
    image: torch.Tensor,
    multiple: int,
    padding_mode: str = "replicate",
    network_args: tuple[Any, ...] = (),
    network_kwargs: dict[str, Any] | None = None,
    regions: Sequence[Region] | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per batch-norm layer, the mean and unbiased variance of its input over ``image``'s own voxels.

    Args:
        network: the network, an eager ``torch.nn.Module`` (hooks are put on ``layers``), called with the
            layers in evaluation mode; its running statistics are overwritten (the caller restores them).
        layers: the batch-norm layers of ``network`` (``batch_norm_layers``).
        image: one image (1, C_in, X, Y, Z), the working grid; it is padded at the end of each axis to a multiple
            of ``multiple``.
        multiple: the network's total stride (16 for four stride-2 levels); every layer's grid must divide the
            padded grid by a whole factor.
        padding_mode: ``torch.nn.functional.pad`` mode for the padded voxels ("replicate", "constant", "reflect",
            "circular").
        network_args, network_kwargs: further arguments of ``network`` (as an inferer passes them on).
        regions: boxes of the image (per axis ``(start, stop)`` in image voxels, e.g. :func:`window_regions`):
            a layer's statistic is the mean over the boxes of each box's mean and unbiased variance (as the
            sliding window's patches give them one by one); None: the whole image as one box.

    Returns:
        per layer, ``(mean, var)``, each of shape (C,) for the layer's C features.

    Raises:
        ValueError: ``image`` is not one 5-d image, or a layer sees a grid that does not divide the padded grid
            (a network whose strides do not multiply to ``multiple``).
    """
    if image.ndim != 5 or image.shape[0] != 1:
        raise ValueError(f"volume statistics need one image of shape (1, C, X, Y, Z), not {tuple(image.shape)}")
    scan = tuple(int(n) for n in image.shape[2:])
    padded = padded_shape(scan, multiple)
    pad = [p for n, full in zip(reversed(scan), reversed(padded)) for p in (0, full - n)]
    x = F.pad(image, pad, mode=padding_mode) if any(pad) else image
    boxes = list(regions) if regions is not None else [tuple((0, n) for n in scan)]
    if not boxes:
        raise ValueError("volume statistics need at least one region of the image")
    found: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(layers)

    def hook_for(j: int):
        def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            features = inputs[0]
            dims = (0, *range(2, features.ndim))
            means, variances = [], []
            for box in boxes:
                crop = _box_at_layer(box, scan, padded, features.shape[2:])
                part = features[(slice(None), slice(None), *crop)]
                # under bfloat16 autocast the features are bfloat16: sum them in float32 (8 mantissa bits lose
                # the small per-feature differences the adaptation is for)
                part = part.float() if part.dtype != torch.float32 else part
                var, mean = torch.var_mean(part, dim=dims, correction=1)
                means.append(mean)
                variances.append(var)
            mean, var = torch.stack(means).mean(0), torch.stack(variances).mean(0)
            module.running_mean.copy_(mean)
            module.running_var.copy_(var)
            found[j] = (mean, var)

        return hook

    handles = [m.register_forward_pre_hook(hook_for(j)) for j, m in enumerate(layers)]
    try:
        for m in layers:
            m.eval()
        with torch.no_grad():
            network(x, *network_args, **(network_kwargs or {}))
    finally:
        for h in handles:
            h.remove()
    missing = [j for j, s in enumerate(found) if s is None]
    if missing:
        raise RuntimeError(f"{len(missing)} batch-norm layer(s) were not run by the network's forward pass")
    return found  # type: ignore[return-value]


def _box_at_layer(
    box: Region, scan: tuple[int, ...], padded: tuple[int, ...], sizes: Sequence[int]
) -> tuple[slice, ...]:
    """``box`` (image voxels) on a layer's grid: the voxels centred in the box and on the image (at least one)."""
    crop = []
    for (start, stop), n, full, size in zip(box, scan, padded, sizes):
        extent = _scan_extent(n, full, int(size))
        f = full // int(size)
        lo = min(int(math.ceil(start / f)), extent - 1)
        crop.append(slice(lo, max(min(int(math.ceil(stop / f)), extent), lo + 1)))
    return tuple(crop)


def _scan_extent(n: int, full: int, size: int) -> int:
    """Voxels from the scan along an axis a layer sees at ``size`` of the padded ``full`` (``n`` scan voxels).

    A stride-2 convolution (kernel 3, padding 1) centres output voxel ``j`` on input voxel ``2 j``, so at a grid
    ``f`` times coarser the first ``ceil(n / f)`` voxels are centred on the scan, as are the transposed
    convolution's outputs on the way back up.
    """
    if size <= 0 or full % size:
        raise ValueError(
            f"a batch-norm layer sees {size} voxels along an axis padded to {full}: not a whole factor; set the "
            "padding multiple to the network's total stride or use adapt_statistics 'windows'"
        )
    return int(math.ceil(n / (full // size)))
