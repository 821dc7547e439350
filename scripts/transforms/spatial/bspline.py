"""Uniform cubic B-spline free-form deformation fields (own implementation, separable evaluation).

A coarse grid of ``n`` control points per axis spans the image with ``n - 3`` intervals over its extent and one
point beyond each face (as SimpleITK's ``BSplineTransformInitializer``); Rueckert et al. 1999,
https://doi.org/10.1109/42.796284.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["cubic_bspline_kernel", "bspline_displacement_field"]


def cubic_bspline_kernel(s: torch.Tensor) -> torch.Tensor:
    """Centred uniform cubic B-spline :math:`\\beta_3(s)` (support ``|s| < 2``, sums to 1 over integer shifts)."""
    a = s.abs()
    inner = (4.0 - 6.0 * a**2 + 3.0 * a**3) / 6.0
    outer = (2.0 - a).clamp(min=0.0) ** 3 / 6.0
    return torch.where(a < 1.0, inner, outer)


def _bspline_basis_matrix(num_voxels: int, num_control_points: int) -> torch.Tensor:
    """(num_voxels, num_control_points) weights; control point k sits at k - 1 grid spacings from voxel 0.

    The grid has ``n - 3`` intervals over the image extent: points 1 and n - 2 lie on the first and last voxel
    centres, points 0 and n - 1 one spacing outside, so every voxel has its 4 supporting points.
    """
    t = torch.linspace(0.0, float(num_control_points - 3), int(num_voxels), dtype=torch.float64) + 1.0
    if num_voxels == 1:
        t = torch.ones(1, dtype=torch.float64) * 1.5
    s = t[:, None] - torch.arange(num_control_points, dtype=torch.float64)[None, :]
    return cubic_bspline_kernel(s)


def bspline_displacement_field(control_points_mm: Any, spatial_shape: Sequence[int]) -> torch.Tensor:
    """Dense displacement field of a cubic B-spline free-form deformation spanning the image.

    Args:
        control_points_mm: (3, n0, n1, n2) control-point displacements in mm, component ``a`` along array axis
            ``a``; each ``n >= 4``. The coarse grid spans the image extent with ``n - 3`` intervals per axis and
            one extra point beyond each face (see
            :func:`scripts.transforms.spatial.folding.bspline_folding_bound_mm`).
        spatial_shape: (X, Y, Z) of the image.

    Returns:
        (3, X, Y, Z) float32 displacement in mm along each array axis. Because the basis weights are
        non-negative and sum to 1, ``|u_a| <= max |c_a|`` everywhere.
    """
    c = torch.as_tensor(np.asarray(control_points_mm), dtype=torch.float32)
    if c.ndim != 4 or c.shape[0] != 3:
        raise ValueError(f"control_points_mm must have shape (3, n0, n1, n2), got {tuple(c.shape)}")
    wx, wy, wz = (_bspline_basis_matrix(n, m).to(torch.float32) for n, m in zip(spatial_shape, c.shape[1:]))
    # Separable evaluation: contract one axis at a time (cost ~ 3 X Y Z n instead of 3 X Y Z n^3).
    u = torch.einsum("aijk,xi->axjk", c, wx)
    u = torch.einsum("axjk,yj->axyk", u, wy)
    return torch.einsum("axyk,zk->axyz", u, wz)
