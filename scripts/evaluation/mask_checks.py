"""Input checks shared by the segmentation metrics: binary masks, mask pairs and voxel sizes.

A label map passed where a binary mask belongs is an error, not a silent ``!= 0``; a voxel size must be one positive
finite value per array axis, so that no distance is ever measured in voxels by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["SpacingLike", "as_mask", "check_pair", "check_spacing"]

SpacingLike = Sequence[float] | np.ndarray | float


def as_mask(mask: Any, name: str) -> np.ndarray:
    """Return ``mask`` as a boolean array; only bool or 0/1 values are accepted (a label map is an error)."""
    arr = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be a numeric or boolean array, got dtype {arr.dtype}")
    binary = arr == 1
    if not np.all(binary | (arr == 0)):
        found = np.unique(arr[~(binary | (arr == 0))])[:5]
        raise ValueError(
            f"{name} must be binary (bool or 0/1); found values {found.tolist()}. "
            "For a label map use compute_label_metrics, or pass (labels == value)."
        )
    return binary


def check_pair(pred: Any, ref: Any) -> tuple[np.ndarray, np.ndarray]:
    p = as_mask(pred, "pred")
    r = as_mask(ref, "ref")
    if p.shape != r.shape:
        raise ValueError(f"pred and ref must have the same shape, got {p.shape} and {r.shape}")
    if p.ndim < 1:
        raise ValueError("pred and ref must have at least one dimension")
    return p, r


def check_spacing(spacing_mm: SpacingLike, ndim: int) -> tuple[float, ...]:
    """Validate the voxel size: one positive finite value per array axis (a scalar means isotropic)."""
    arr = np.asarray(spacing_mm, dtype=float)
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    if arr.shape != (ndim,):
        raise ValueError(
            f"spacing_mm must give one voxel size per array axis ({ndim}), got {np.asarray(spacing_mm).tolist()}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"spacing_mm must be positive and finite, got {arr.tolist()}")
    return tuple(float(s) for s in arr)
