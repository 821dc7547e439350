"""When a deformation folds: the folding-safe B-spline bound and the Jacobian determinant of a field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["FOLDING_SAFE_FRACTION", "bspline_folding_bound_mm", "jacobian_determinant"]


#: Fraction of the control-point spacing below which a cubic B-spline free-form deformation is guaranteed
#: injective (no folding) in 3D: the sufficient condition of Choi & Lee (2000), |c| < spacing / K with
#: K ~= 2.48, rounded down to 0.4 as in Rueckert et al. (2006), "Diffeomorphic registration using B-splines".
FOLDING_SAFE_FRACTION: float = 0.4


def bspline_folding_bound_mm(
    spatial_shape: Sequence[int], spacing_mm: Sequence[float], num_control_points: Sequence[int]
) -> np.ndarray:
    """Largest control-point displacement (mm, per axis) that cannot fold the image.

    The control-point spacing is ``extent / (n - 3)`` with ``extent = (size - 1) * spacing``; the bound is
    ``FOLDING_SAFE_FRACTION * control-point spacing`` (Choi & Lee 2000; Rueckert et al. 2006).

    >>> bspline_folding_bound_mm((32, 32, 16), (1.1, 1.1, 2.6), (6, 6, 4))  # 0.4 * (34.1/3, 34.1/3, 39/1)
    array([ 4.54666667,  4.54666667, 15.6       ])

    Args:
        spatial_shape: (X, Y, Z) voxels.
        spacing_mm: (3,) voxel size in mm.
        num_control_points: (3,) control points per axis (>= 4).

    Returns:
        (3,) float64 array in mm.
    """
    size = np.asarray(spatial_shape, dtype=np.float64)
    extent = np.maximum(size - 1.0, 1.0) * np.asarray(spacing_mm, dtype=np.float64)
    return FOLDING_SAFE_FRACTION * extent / (np.asarray(num_control_points, dtype=np.float64) - 3.0)


def jacobian_determinant(displacement_mm: Any, spacing_mm: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Voxel-wise Jacobian determinant of the map ``x -> x + u(x)``; ``<= 0`` means folding.

    Args:
        displacement_mm: (3, X, Y, Z) displacement in mm, component ``a`` along array axis ``a``.
        spacing_mm: (3,) voxel size in mm along the array axes (derivatives are taken per mm).

    Returns:
        (X, Y, Z) float64 array, ``det(I + du/dx)`` by central differences (one-sided at the faces).
    """
    u = np.asarray(
        displacement_mm.detach().cpu().numpy() if torch.is_tensor(displacement_mm) else displacement_mm,
        dtype=np.float64,
    )
    if u.ndim != 4 or u.shape[0] != 3:
        raise ValueError(f"displacement_mm must have shape (3, X, Y, Z), got {u.shape}")
    spacing = [float(s) for s in spacing_mm]
    jac = np.empty(u.shape[1:] + (3, 3))
    for a in range(3):
        grads = np.gradient(u[a], *spacing) if min(u.shape[1:]) > 1 else [np.zeros(u.shape[1:])] * 3
        for b in range(3):
            jac[..., a, b] = grads[b] + (1.0 if a == b else 0.0)
    return np.linalg.det(jac)
