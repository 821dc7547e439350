"""Image geometry shared by the training transforms: the ``(C, X, Y, Z)`` layout check and the affine.

The MetaTensor ``affine`` maps voxel indices to world millimetres; LPS metadata is converted to RAS, and a plain
array or tensor is taken as 1 mm isotropic with the identity affine. Patient axes are found from the affine
(never assumed from the array order): world axis 0 = x (left -> right), 1 = y (posterior -> anterior),
2 = z (inferior -> superior).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.utils import convert_to_tensor

__all__ = [
    "AXIS_NAMES",
    "as_spatial_tensor",
    "ras_affine",
    "spacing_from_affine",
    "array_axis_of_world_axis",
    "left_right_axis",
]


AXIS_NAMES: tuple[str, ...] = ("x", "y", "z")


def as_spatial_tensor(img: Any, owner: str) -> torch.Tensor:
    """Convert to a (Meta)Tensor and check the ``(C, X, Y, Z)`` layout."""
    img_t = convert_to_tensor(img, track_meta=get_track_meta())
    if img_t.ndim != 4:
        raise ValueError(
            f"{owner} expects a channel-first 3D image of shape (C, X, Y, Z), got shape {tuple(img_t.shape)}"
        )
    if isinstance(img_t, MetaTensor) and img_t.pending_operations:
        # Why: these transforms read the affine to get mm; pending lazy resampling would make it stale.
        warnings.warn(
            f"{owner}: the input has pending lazy operations; they are not applied first, so the affine "
            "used for mm conversion may not match the array.",
            RuntimeWarning,
            stacklevel=3,
        )
    return img_t


def ras_affine(img: Any) -> np.ndarray:
    """The voxel -> RAS world (mm) affine of ``img`` as a float64 (4, 4) array; identity for non-MetaTensors."""
    if not isinstance(img, MetaTensor):
        return np.eye(4)
    affine = np.asarray(
        img.affine.detach().cpu().numpy() if torch.is_tensor(img.affine) else img.affine, dtype=np.float64
    )
    if affine.shape != (4, 4):
        raise ValueError(f"expected a (4, 4) affine for a 3D image, got shape {affine.shape}")
    if str(img.meta.get("space", "RAS")).upper() == "LPS":
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    return affine


def spacing_from_affine(affine: Any) -> np.ndarray:
    """Voxel size in mm along each array axis: the norms of the affine's first three columns.

    Args:
        affine: (4, 4) voxel -> world (mm) matrix (array or tensor).

    Returns:
        (3,) float64 array of spacings in mm.
    """
    a = np.asarray(affine.detach().cpu().numpy() if torch.is_tensor(affine) else affine, dtype=np.float64)
    return np.linalg.norm(a[:3, :3], axis=0)


def array_axis_of_world_axis(affine: Any, world_axis: int) -> int:
    """The array axis whose direction is closest to world axis ``world_axis`` (0 = x, 1 = y, 2 = z).

    Args:
        affine: (4, 4) voxel -> world (mm) matrix; LPS or RAS gives the same answer (only |cosines| count).
        world_axis: 0, 1 or 2.

    Returns:
        The array (spatial) axis index, 0-2. Warns (RuntimeWarning) when the best axis is more than ~25 degrees
        off the world axis (oblique acquisition): the result is then only approximately along the world axis.
    """
    if world_axis not in (0, 1, 2):
        raise ValueError(f"world_axis must be 0, 1 or 2, not {world_axis!r}")
    a = np.asarray(affine.detach().cpu().numpy() if torch.is_tensor(affine) else affine, dtype=np.float64)
    cosines = np.abs(a[world_axis, :3]) / np.maximum(np.linalg.norm(a[:3, :3], axis=0), 1e-12)
    axis = int(np.argmax(cosines))
    if cosines[axis] < 0.9:
        warnings.warn(
            f"array axis {axis} is oblique to world axis {AXIS_NAMES[world_axis]} (cosine "
            f"{cosines[axis]:.2f}); operations along it are only approximately along that world axis.",
            RuntimeWarning,
            stacklevel=2,
        )
    return axis


def left_right_axis(affine: Any) -> int:
    """The array axis along the patient's left-right direction (world x), from the affine; never assumed 0."""
    return array_axis_of_world_axis(affine, 0)
