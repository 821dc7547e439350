"""Surface distances between two binary masks in mm: the directed distances, Hausdorff (and HDxx) and ASSD.

Surface definition and distances (identical to MONAI's ``get_mask_edges`` / ``get_surface_distance``): the surface
of a mask is the set of its voxels removed by one binary erosion with the face-connected structuring element
(6-neighbourhood in 3D), with everything outside the array counted as background. The distance of a surface voxel
to the other mask is the Euclidean distance, in mm, from its centre to the nearest surface-voxel centre of the other
mask, computed with ``scipy.ndimage.distance_transform_edt(..., sampling=spacing_mm)`` so anisotropic voxels count
with their real size.

The distance to an empty set is ``+inf`` (the infimum over an empty set); with both masks empty every distance is
NaN (see :mod:`scripts.evaluation.segmentation_metrics` for the whole table of empty cases).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scripts.evaluation.mask_checks import SpacingLike, check_pair, check_spacing

__all__ = [
    "SurfaceDistances",
    "compute_surface_distances",
    "hausdorff_from_distances",
    "mean_surface_from_distances",
    "hausdorff_distance",
    "mean_surface_distance",
]


def _check_percentile(percentile: float | None) -> None:
    # 0 is rejected on purpose: MONAI treats percentile=0 as "no percentile" (the maximum), a silent trap.
    if percentile is not None and not 0 < percentile <= 100:
        raise ValueError(f"percentile must be None or in (0, 100], got {percentile}")


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` removed by one erosion with the face-connected element (outside the array = background)."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed surface distances between two binary masks, in mm.

    Attributes:
        pred_to_ref_mm: for each surface voxel of the prediction, the distance to the nearest reference surface voxel
            (empty when the prediction is empty; all ``inf`` when only the reference is empty).
        ref_to_pred_mm: the same from the reference surface to the prediction surface.
        pred_empty: the prediction has no foreground voxel.
        ref_empty: the reference has no foreground voxel.
    """

    pred_to_ref_mm: np.ndarray
    ref_to_pred_mm: np.ndarray
    pred_empty: bool
    ref_empty: bool


def compute_surface_distances(pred: Any, ref: Any, spacing_mm: SpacingLike) -> SurfaceDistances:
    """Distances from each surface voxel of one mask to the surface of the other, in mm, both directions.

    ``d(p, R) = min_{r in S(R)} || (p - r) * spacing_mm ||_2`` for every ``p`` in the surface ``S(P)``, and
    vice versa; ``S`` is the erosion surface described in the module docstring. The Euclidean distance transform is
    computed only inside the bounding box of the union plus one voxel, which changes nothing (every surface voxel
    lies in it) but keeps a small muscle in a large volume fast.

    Args:
        pred: binary prediction mask, any number of dimensions (bool or 0/1).
        ref: binary reference mask, same shape.
        spacing_mm: voxel size per array axis in mm (for NIfTI, ``header.get_zooms()[:3]``); a scalar means
            isotropic.

    Returns:
        :class:`SurfaceDistances`; with one mask empty the distances from the other are ``inf``.

    Example:
        >>> a = np.zeros((5, 5, 6), bool); a[1:4, 1:4, 1:4] = True
        >>> b = np.roll(a, 1, axis=2)
        >>> float(compute_surface_distances(a, b, (1.0, 1.0, 3.0)).ref_to_pred_mm.max())
        3.0
    """
    p, r = check_pair(pred, ref)
    spacing = check_spacing(spacing_mm, p.ndim)
    pred_empty, ref_empty = not p.any(), not r.any()
    if pred_empty or ref_empty:
        # the distance to an empty set is the infimum over nothing: +inf for each surface voxel of the other mask
        n_p = 0 if pred_empty else int(_surface(p).sum())
        n_r = 0 if ref_empty else int(_surface(r).sum())
        return SurfaceDistances(np.full(n_p, np.inf), np.full(n_r, np.inf), pred_empty, ref_empty)

    union = p | r
    lo, hi = [], []
    for axis in range(p.ndim):
        other = tuple(a for a in range(p.ndim) if a != axis)
        idx = np.flatnonzero(union.any(axis=other))
        lo.append(max(int(idx[0]) - 1, 0))
        hi.append(min(int(idx[-1]) + 2, p.shape[axis]))
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    # the surface is taken on the full array, then cropped, so a mask touching the array border keeps that face
    sp, sr = _surface(p)[box], _surface(r)[box]
    dist_to_ref = ndimage.distance_transform_edt(~sr, sampling=spacing)
    dist_to_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)
    return SurfaceDistances(dist_to_ref[sp], dist_to_pred[sr], False, False)


def hausdorff_from_distances(sd: SurfaceDistances, percentile: float | None) -> float:
    if sd.pred_empty and sd.ref_empty:
        return float("nan")
    if sd.pred_empty or sd.ref_empty:
        return float("inf")
    if percentile is None:
        return float(max(sd.pred_to_ref_mm.max(), sd.ref_to_pred_mm.max()))
    # MONAI's definition: the larger of the two directed percentiles (linear interpolation, as torch.quantile)
    return float(max(np.percentile(sd.pred_to_ref_mm, percentile), np.percentile(sd.ref_to_pred_mm, percentile)))


def mean_surface_from_distances(sd: SurfaceDistances, symmetric: bool) -> float:
    if sd.pred_empty and sd.ref_empty:
        return float("nan")
    if sd.pred_empty or sd.ref_empty:
        return float("inf")
    if symmetric:
        return float(np.concatenate([sd.pred_to_ref_mm, sd.ref_to_pred_mm]).mean())
    return float(sd.pred_to_ref_mm.mean())


def hausdorff_distance(pred: Any, ref: Any, spacing_mm: SpacingLike, percentile: float | None = None) -> float:
    """Symmetric Hausdorff distance between the mask surfaces, in mm (Huttenlocher et al. 1993).

    ``HD = max(h(P, R), h(R, P))`` with the directed ``h(P, R) = max_{p in S(P)} d(p, S(R))``. With ``percentile``
    (e.g. 95 for HD95) each directed maximum is replaced by that percentile of the directed distances and the larger
    of the two is returned; this is MONAI's ``compute_hausdorff_distance`` definition (not the percentile of the pooled
    distances, which is smaller or equal), so numbers are comparable with MONAI-based papers. Percentiles use linear
    interpolation, as ``torch.quantile``.

    Args:
        pred: binary prediction mask.
        ref: binary reference mask, same shape.
        spacing_mm: voxel size per array axis in mm.
        percentile: ``None`` for the maximum, or a value in (0, 100].

    Returns:
        distance in mm; ``inf`` when exactly one mask is empty, NaN when both are.

    Example:
        >>> a = np.zeros((5, 5, 6), bool); a[1:4, 1:4, 1:4] = True
        >>> hausdorff_distance(a, np.roll(a, 1, axis=2), spacing_mm=(1.0, 1.0, 3.0))
        3.0
    """
    _check_percentile(percentile)
    return hausdorff_from_distances(compute_surface_distances(pred, ref, spacing_mm), percentile)


def mean_surface_distance(pred: Any, ref: Any, spacing_mm: SpacingLike, symmetric: bool = True) -> float:
    """Average surface distance in mm.

    Symmetric (ASSD, the default): the mean of the pooled distances of both surfaces,
    ``(sum_{p in S(P)} d(p, S(R)) + sum_{r in S(R)} d(r, S(P))) / (|S(P)| + |S(R)|)``, which is MONAI's
    ``compute_average_surface_distance(..., symmetric=True)``. Directed: the mean over the prediction surface only.

    Returns:
        distance in mm; ``inf`` when exactly one mask is empty, NaN when both are.
    """
    return mean_surface_from_distances(compute_surface_distances(pred, ref, spacing_mm), symmetric)
