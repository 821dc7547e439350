"""Smooth random fields used by the phantom: a global non-linear warp and band-limited noise textures."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from scripts.phantom.render import RenderGrid

__all__ = ["SmoothWarp", "SmoothNoise"]


class SmoothWarp:
    """In-plane displacement (mm) that varies smoothly in 3-D: a sum of separable sine modes.

    ``dx(x, y, z) = sum_k A_k sin(kx x + px) sin(ky y + py) sin(kz z + pz)`` with wavelengths of 150-500 mm, so the
    anatomy bends and bulges without tearing (the largest gradient stays far below 1, no folding).

    Args:
        grid: the render grid.
        amplitude_mm: peak displacement of each mode.
        n_modes: modes per component.
        rng: the subject's random generator.
    """

    def __init__(self, grid: RenderGrid, amplitude_mm: float, n_modes: int, rng: np.random.Generator) -> None:
        self.grid = grid
        self.modes: list[list[tuple[float, np.ndarray, np.ndarray, np.ndarray]]] = []
        for _ in range(2):
            comp = []
            for _ in range(n_modes):
                amp = amplitude_mm * rng.uniform(0.4, 1.0) / np.sqrt(n_modes)
                axes = []
                for axis in range(3):
                    k = 2 * np.pi / rng.uniform(150.0, 500.0)
                    axes.append(np.sin(k * grid.axis_coords(axis) + rng.uniform(0, 2 * np.pi)).astype(np.float32))
                comp.append((amp, *axes))
            self.modes.append(comp)

    def __call__(self, sl: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        out = []
        for comp in self.modes:
            acc = None
            for amp, sx, sy, sz in comp:
                term = (amp * sx[sl[0]])[:, None, None] * sy[sl[1]][None, :, None] * sz[sl[2]][None, None, :]
                acc = term if acc is None else acc + term
            out.append(acc)
        return out[0], out[1]


class SmoothNoise:
    """Zero-mean, unit-variance Gaussian noise smoothed with ``sigma_mm`` (anisotropic), sampled anywhere.

    Built on a coarse lattice (spacing ``sigma_mm / 2``) over the grid's extent, then read by trilinear
    interpolation, so a texture costs little whatever the output resolution.

    Args:
        grid: the render grid whose world extent the lattice covers.
        sigma_mm: correlation length per axis (mm); long in z gives streaks along the muscle fibres.
        rng: random generator.
    """

    def __init__(self, grid: RenderGrid, sigma_mm: tuple[float, float, float], rng: np.random.Generator) -> None:
        self.step = np.asarray(sigma_mm, dtype=np.float64) / 2.0
        lo = np.asarray(grid.origin, dtype=np.float64) - 4 * self.step
        hi = lo + np.asarray(grid.spacing) * np.asarray(grid.shape) + 8 * self.step
        n = np.ceil((hi - lo) / self.step).astype(int) + 1
        field = gaussian_filter(rng.standard_normal(tuple(n)).astype(np.float32), sigma=2.0, mode="wrap")
        self.lattice = (field / max(float(field.std()), 1e-6)).astype(np.float32)
        self.lo = lo
        self.grid = grid

    def sample_bbox(self, sl: tuple[slice, slice, slice]) -> np.ndarray:
        """The noise on the render-grid voxels of bbox ``sl`` -> array (nx_b, ny_b, nz_b).

        The voxels form a regular grid, so trilinear interpolation is done one axis at a time (separable), which
        costs a few operations per output voxel instead of a gather of eight lattice values.
        """
        out = self.lattice
        for axis in range(3):
            world = self.grid.axis_coords(axis)[sl[axis]].astype(np.float64)
            t = np.clip((world - self.lo[axis]) / self.step[axis], 0, out.shape[axis] - 1.001)
            i0 = np.floor(t).astype(int)
            w = (t - i0).astype(np.float32)
            shape = [1, 1, 1]
            shape[axis] = -1
            w = w.reshape(shape)
            out = np.take(out, i0, axis=axis) * (1 - w) + np.take(out, i0 + 1, axis=axis) * w
        return out.astype(np.float32, copy=False)
