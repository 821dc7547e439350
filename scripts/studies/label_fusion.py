"""Label fusion of registered atlases: majority voting and locally weighted voting (weights from the local squared
intensity difference between each warped atlas image and the target)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scripts.labels import NUM_CLASSES

__all__ = ["unit_range", "majority_vote", "weighted_vote", "local_weights"]


def unit_range(arr: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the 1st/99th percentiles of the non-zero voxels (clipped), so contrasts compare."""
    nz = arr[arr > 0]
    if nz.size == 0:
        return np.zeros_like(arr, dtype=np.float32)
    lo, hi = np.percentile(nz, [1.0, 99.0])
    return np.clip((arr - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)


def _check_stack(labels: np.ndarray, n_labels: int) -> np.ndarray:
    """``labels`` as an integer stack ``(n_atlases, spatial...)`` of values below ``n_labels``."""
    arr = np.asarray(labels)
    if arr.ndim < 2:
        raise ValueError(f"labels must be a stack (n_atlases, spatial...), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"labels must be integer label maps, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_labels):
        raise ValueError(f"label values must lie in [0, {n_labels - 1}], found {int(arr.min())}..{int(arr.max())}")
    return arr


def _fuse(labels: np.ndarray, weights: np.ndarray | None, n_labels: int) -> np.ndarray:
    votes = np.zeros((n_labels,) + labels.shape[1:], dtype=np.float32)
    for i in range(labels.shape[0]):
        w = 1.0 if weights is None else weights[i]
        for value in np.unique(labels[i]):
            votes[value] += w * (labels[i] == value)
    # argmax returns the first maximum: ties go to the lower label value, background first
    return np.argmax(votes, axis=0).astype(np.uint8)


def majority_vote(labels: np.ndarray, n_labels: int = NUM_CLASSES) -> np.ndarray:
    """Per voxel, the label most atlases give; ties go to the lower label value.

    Args:
        labels: integer stack of shape ``(n_atlases, spatial...)`` with values in ``[0, n_labels)``.
        n_labels: number of label values including background.

    Returns:
        uint8 array of shape ``spatial...``.

    Example:
        >>> majority_vote(np.array([[1, 2, 0], [1, 0, 2], [2, 0, 2]]))
        array([1, 0, 2], dtype=uint8)
    """
    return _fuse(_check_stack(labels, n_labels), None, n_labels)


def weighted_vote(labels: np.ndarray, weights: np.ndarray, n_labels: int = NUM_CLASSES) -> np.ndarray:
    """Per voxel, the label with the largest sum of atlas weights; ties go to the lower label value.

    Args:
        labels: integer stack ``(n_atlases, spatial...)``.
        weights: non-negative weights, same shape (per atlas and voxel) or ``(n_atlases,)`` (one per atlas).
        n_labels: number of label values including background.

    Returns:
        uint8 array of shape ``spatial...``.
    """
    arr = _check_stack(labels, n_labels)
    w = np.asarray(weights, dtype=np.float32)
    if w.shape == (arr.shape[0],):
        w = w.reshape((-1,) + (1,) * (arr.ndim - 1))
    elif w.shape != arr.shape:
        raise ValueError(f"weights must have shape {arr.shape} or ({arr.shape[0]},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    return _fuse(arr, w, n_labels)


def local_weights(
    target: np.ndarray,
    warped: np.ndarray,
    spacing_mm: Sequence[float],
    sigma_mm: float = 6.0,
    gamma: float = 1.0,
    eps: float = 1e-3,
) -> np.ndarray:
    """Locally weighted voting weights: ``(eps + G_sigma * (T - A_i)^2)^-gamma`` per atlas and voxel.

    Args:
        target: target image on the fusion grid, shape ``spatial...`` (any intensity scale).
        warped: warped atlas images on the same grid, shape ``(n_atlases, spatial...)``.
        spacing_mm: voxel size per array axis, mm (the Gaussian is isotropic in mm, not in voxels).
        sigma_mm: standard deviation of the Gaussian window, mm.
        gamma: exponent; larger values trust the locally best atlas more.
        eps: offset of the local squared difference (intensities scaled to [0, 1]).

    Returns:
        float32 weights of shape ``(n_atlases, spatial...)``.
    """
    if warped.shape[1:] != target.shape:
        raise ValueError(f"warped images {warped.shape[1:]} and target {target.shape} must share a grid")
    t = unit_range(target)
    sigma_vox = [sigma_mm / float(s) for s in spacing_mm]
    out = np.empty(warped.shape, dtype=np.float32)
    for i in range(warped.shape[0]):
        local_sq = ndimage.gaussian_filter((t - unit_range(warped[i])) ** 2, sigma_vox, mode="nearest")
        out[i] = (eps + local_sq) ** (-gamma)
    return out
