"""Post-processing of registration displacement fields: affine part removed, smooth B-spline refit on the anatomy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["remove_linear_part", "smooth_refit"]


def remove_linear_part(u: np.ndarray, grid_affine: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Subtract the least-squares affine field ``A x + t`` fitted where ``weights`` > 0 (the anatomy)."""
    idx = np.argwhere(weights > 0)
    if idx.shape[0] < 4:
        return u
    world = idx @ grid_affine[:3, :3].T + grid_affine[:3, 3]
    design = np.concatenate([world, np.ones((world.shape[0], 1))], axis=1)
    w = np.sqrt(weights[tuple(idx.T)])[:, None]
    target = u[:, idx[:, 0], idx[:, 1], idx[:, 2]].T
    coef, *_ = np.linalg.lstsq(design * w, target * w, rcond=None)
    all_idx = np.stack(np.meshgrid(*[np.arange(n) for n in u.shape[1:]], indexing="ij"), axis=-1).reshape(-1, 3)
    all_world = all_idx @ grid_affine[:3, :3].T + grid_affine[:3, 3]
    linear = (np.concatenate([all_world, np.ones((all_world.shape[0], 1))], axis=1) @ coef).T
    return u - linear.reshape(u.shape)


def _cubic_bspline_basis(num_voxels: int, num_control_points: int) -> np.ndarray:
    """(num_voxels, num_control_points) uniform cubic B-spline weights, the grid spanning the voxels.

    Same layout as :func:`scripts.transforms.spatial.bspline.bspline_displacement_field` (n - 3 intervals over the
    extent).
    """
    t = np.linspace(0.0, num_control_points - 3.0, num_voxels) + 1.0
    a = np.abs(t[:, None] - np.arange(num_control_points)[None, :])
    return np.where(a < 1.0, (4.0 - 6.0 * a**2 + 3.0 * a**3) / 6.0, np.clip(2.0 - a, 0.0, None) ** 3 / 6.0)


def smooth_refit(
    u: np.ndarray, weights: np.ndarray, num_control_points: Sequence[int], smoothness: float = 0.1, ridge: float = 0.1
) -> np.ndarray:
    """Weighted, regularised least-squares fit of a cubic B-spline field to ``u`` where ``weights`` > 0.

    Minimises ``sum_v w_v |B c - u|^2 + s |D c|^2 + r |c|^2`` (``D``: first differences between neighbouring
    control points; ``s``, ``r`` relative to the mean data weight per coefficient).
    Why: label maps only inform the registration at the muscles' boundaries; elsewhere the registration's
    B-spline coefficients drift freely (several mm at the grid's edges). The refit keeps the measured
    displacements on the anatomy, continues them smoothly outside and lets them fade where nothing was measured.
    """
    bases = [_cubic_bspline_basis(n, m) for n, m in zip(u.shape[1:], num_control_points)]
    idx = np.argwhere(weights > 0)
    if idx.shape[0] == 0:
        return np.zeros_like(u)
    w = weights[tuple(idx.T)]
    # Design rows: Kronecker products of the three 1D bases at each anatomy voxel.
    rows = (
        bases[0][idx[:, 0], :, None, None] * bases[1][idx[:, 1], None, :, None] * bases[2][idx[:, 2], None, None, :]
    ).reshape(idx.shape[0], -1)
    gram = rows.T @ (rows * w[:, None])
    scale = float(np.mean(np.diag(gram)))
    diffs = []
    for axis, n in enumerate(num_control_points):
        eyes = [np.eye(m) for m in num_control_points]
        eyes[axis] = np.diff(np.eye(n), axis=0)
        diffs.append(np.kron(np.kron(eyes[0], eyes[1]), eyes[2]))
    d = np.concatenate(diffs, axis=0)
    gram += scale * (smoothness * d.T @ d + ridge * np.eye(gram.shape[0]))
    rhs = rows.T @ (u[:, idx[:, 0], idx[:, 1], idx[:, 2]].T * w[:, None])
    coef = np.linalg.solve(gram, rhs).T.reshape(3, *num_control_points)
    out = np.einsum("aijk,xi->axjk", coef, bases[0])
    out = np.einsum("axjk,yj->axyk", out, bases[1])
    return np.einsum("axyk,zk->axyz", out, bases[2])
