"""Rasterise smooth cross-section families ("tubes") into Dixon water/fat signals with partial volume.

A structure is a family of 2-D superellipses along the world z axis (keyframes interpolated with a monotone cubic,
PCHIP), optionally surrounded by a fat shell (fascia). Occupancy is computed on the output grid as the fraction of
each voxel inside the shape: in-plane by a box filter across the boundary applied to the signed distance (exact for
straight edges, i.e. the limit of infinitely fine supersampling), through-plane by averaging ``n_sub`` sub-slices
within each voxel's slab. That is the "build at high resolution, then average down" of the issue, done analytically
in-plane so the reference geometry renders in seconds.

Coordinates are RAS world millimetres (+x patient right, +y anterior, +z superior); the render grid is always stored
RAS (axis 0 = x, 1 = y, 2 = z, increasing); other orientations are produced afterwards by flipping arrays and affine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator

__all__ = ["Tissue", "Shape", "Structure", "RenderGrid", "Canvas"]


@dataclass(frozen=True)
class Tissue:
    """Dixon signal of a tissue: total magnitude ``signal`` (arbitrary units, T1-weighted gradient echo) and its
    apparent fat fraction ``ff`` (0-1). Water = signal * (1 - ff), fat = signal * ff."""

    name: str
    signal: float
    ff: float


@dataclass
class Shape:
    """Superellipse cross-sections along z.

    Args:
        z: keyframe positions (mm, world z), strictly increasing; the structure exists for z in [z[0], z[-1]].
        cx, cy: centre (mm, world x and y) at each keyframe.
        a, b: semi-axes (mm) along the rotated u (x when theta = 0) and v axes.
        theta: rotation of the u axis from +x towards +y (radians).
        p: superellipse exponent (2 = ellipse, larger = boxier).
    """

    z: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    a: np.ndarray
    b: np.ndarray
    theta: np.ndarray | float = 0.0
    p: float = 2.0

    def __post_init__(self) -> None:
        self.z = np.asarray(self.z, dtype=np.float64)
        n = self.z.size
        if n < 2 or np.any(np.diff(self.z) <= 0):
            raise ValueError(f"Shape keyframes z must be >= 2 strictly increasing values, got {self.z}")
        for name in ("cx", "cy", "a", "b", "theta"):
            v = np.broadcast_to(np.asarray(getattr(self, name), dtype=np.float64), (n,)).copy()
            setattr(self, name, v)
        if np.any(self.a <= 0) or np.any(self.b <= 0):
            raise ValueError("Shape semi-axes a and b must be > 0 mm at every keyframe")
        self._interp = PchipInterpolator(self.z, np.stack([self.cx, self.cy, self.a, self.b, self.theta], 1), axis=0)

    @property
    def z_range(self) -> tuple[float, float]:
        return float(self.z[0]), float(self.z[-1])

    def params(self, z: np.ndarray) -> np.ndarray:
        """Interpolated (cx, cy, a, b, theta) at ``z`` (shape (n,)) -> (n, 5); rows outside the range are NaN."""
        z = np.asarray(z, dtype=np.float64)
        out = self._interp(np.clip(z, self.z[0], self.z[-1]))
        out[(z < self.z[0]) | (z > self.z[-1])] = np.nan
        return out

    def xy_extent(self, margin: float) -> tuple[float, float, float, float]:
        """Conservative world (xmin, xmax, ymin, ymax) of the family plus ``margin`` mm."""
        zz = np.linspace(self.z[0], self.z[-1], 64)
        cx, cy, a, b, _ = self.params(zz).T
        r = np.maximum(a, b) * (1.0 if self.p <= 2 else 2 ** (0.5 - 1 / self.p) * 1.0 + 0.3)
        return (
            float(np.min(cx - r)) - margin,
            float(np.max(cx + r)) + margin,
            float(np.min(cy - r)) - margin,
            float(np.max(cy + r)) + margin,
        )


@dataclass
class Structure:
    """A shape filled with a tissue, optionally labelled and wrapped in a fat shell.

    Args:
        name: identifier (used in logs and tests).
        shape: the cross-section family.
        tissue: what fills it.
        label: label value written where the structure occupies >= 50 % of a voxel (0 = none).
        shell_mm: thickness of a fascia shell painted before the interior (0 = none).
        shell_tissue: tissue of the shell.
    """

    name: str
    shape: Shape
    tissue: Tissue
    label: int = 0
    shell_mm: float = 0.0
    shell_tissue: Tissue | None = None
    #: optional callable(bbox slices) -> voxel-wise fat fraction (0-1) replacing ``tissue.ff`` (heterogeneity)
    ff_field: Callable[[tuple[slice, slice, slice]], np.ndarray] | None = field(default=None, repr=False)
    #: when set, ``ff_field`` is the fat *volume* fraction and fat signals ``fat_signal`` per unit volume (pure fat
    #: inside the muscle as bright as subcutaneous fat); when None, the tissue's total signal is kept whatever the FF
    fat_signal: float | None = None


@dataclass
class RenderGrid:
    """An RAS-stored voxel grid: ``shape`` (nx, ny, nz), ``spacing`` (mm) and world position of voxel (0, 0, 0)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    @property
    def affine(self) -> np.ndarray:
        aff = np.diag([*self.spacing, 1.0])
        aff[:3, 3] = self.origin
        return aff

    def axis_coords(self, axis: int) -> np.ndarray:
        return (self.origin[axis] + self.spacing[axis] * np.arange(self.shape[axis])).astype(np.float32)


class Canvas:
    """Water, fat and label volumes being painted, with the label's own tissue fraction per voxel.

    Painting a structure with occupancy ``f`` replaces that fraction of whatever the voxel held (painter's
    algorithm): ``W <- W (1 - f) + f W_t``; the fraction of the previously labelled muscle shrinks by ``(1 - f)``
    and a voxel keeps a label only while that muscle fills at least half of it.
    """

    def __init__(
        self,
        grid: RenderGrid,
        n_sub: int,
        warp: Callable[[tuple[slice, slice, slice]], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self.grid = grid
        self.n_sub = max(1, int(n_sub))
        self.water = np.zeros(grid.shape, np.float32)
        self.fat = np.zeros(grid.shape, np.float32)
        self.label = np.zeros(grid.shape, np.uint8)
        self.label_frac = np.zeros(grid.shape, np.float32)
        self.x = grid.axis_coords(0)
        self.y = grid.axis_coords(1)
        self.z = grid.axis_coords(2)
        self.warp = warp
        self._h = float(np.sqrt(grid.spacing[0] * grid.spacing[1]))

    # -- geometry -------------------------------------------------------------------------------------------------
    def _bbox(self, shape: Shape, margin: float) -> tuple[slice, slice, slice] | None:
        x0, x1, y0, y1 = shape.xy_extent(margin)
        z0, z1 = shape.z_range
        sl = []
        for lo, hi, axis in ((x0, x1, 0), (y0, y1, 1), (z0, z1, 2)):
            o, s, n = self.grid.origin[axis], self.grid.spacing[axis], self.grid.shape[axis]
            i0 = int(np.floor((lo - o) / s)) - 1
            i1 = int(np.ceil((hi - o) / s)) + 2
            i0, i1 = max(i0, 0), min(i1, n)
            if i1 <= i0:
                return None
            sl.append(slice(i0, i1))
        return tuple(sl)  # type: ignore[return-value]

    def signed_distance(self, shape: Shape, sl: tuple[slice, slice, slice]) -> np.ndarray:
        """Approximate signed distance (mm, negative inside) to the shape boundary for every sub-slice.

        Returns an array (nx_b, ny_b, nz_b, n_sub); +inf where a sub-slice lies outside the shape's z range.
        """
        xs, ys, zs = self.x[sl[0]], self.y[sl[1]], self.z[sl[2]]
        gx = xs[:, None, None]
        gy = ys[None, :, None]
        if self.warp is not None:
            wx, wy = self.warp(sl)
            gx = gx + wx
            gy = gy + wy
        dz = self.grid.spacing[2]
        out = np.empty((xs.size, ys.size, zs.size, self.n_sub), np.float32)
        p = shape.p
        for s in range(self.n_sub):
            zsub = zs + ((s + 0.5) / self.n_sub - 0.5) * dz
            cx, cy, a, b, th = (v.astype(np.float32)[None, None, :] for v in shape.params(zsub).T)
            dx, dy = gx - cx, gy - cy
            c, sn = np.cos(th), np.sin(th)
            u = (dx * c + dy * sn) / a
            v = (dy * c - dx * sn) / b
            if p == 2.0:
                r = np.sqrt(u * u + v * v)
                # |grad r| for an ellipse, so that (r - 1) / |grad r| approximates the distance in mm
                g = np.sqrt((u / a) ** 2 + (v / b) ** 2) / np.maximum(r, 1e-6)
            else:
                au, av = np.abs(u) + 1e-9, np.abs(v) + 1e-9
                rp = au**p + av**p
                r = rp ** (1.0 / p)
                common = r ** (1.0 - p)
                g = common * np.sqrt((au ** (p - 1) / a) ** 2 + (av ** (p - 1) / b) ** 2)
            d = (r - 1.0) / np.maximum(g, 1e-6)
            d = np.where(np.isnan(d), np.inf, d)
            out[..., s] = d
        return out

    def occupancy(self, dist: np.ndarray, offset_mm: float = 0.0) -> np.ndarray:
        """Voxel fraction inside the boundary moved outward by ``offset_mm``; averages the sub-slices."""
        f = np.clip(0.5 - (dist - offset_mm) / self._h, 0.0, 1.0)
        return f.mean(axis=-1, dtype=np.float32)

    # -- painting -------------------------------------------------------------------------------------------------
    def paint(
        self,
        sl: tuple[slice, slice, slice],
        f: np.ndarray,
        water: np.ndarray | float,
        fat: np.ndarray | float,
        label: int = 0,
    ) -> None:
        """Composite a tissue with occupancy ``f`` (bbox-shaped) into the canvas."""
        keep = 1.0 - f
        self.water[sl] = self.water[sl] * keep + f * water
        self.fat[sl] = self.fat[sl] * keep + f * fat
        lf = self.label_frac[sl] * keep
        lab = self.label[sl]
        if label:
            new = f >= 0.5
            lf = np.where(new, f, lf)
            lab = np.where(new, np.uint8(label), lab)
        lab = np.where(lf >= 0.5, lab, np.uint8(0))
        lf = np.where(lab > 0, lf, 0.0)
        self.label[sl] = lab
        self.label_frac[sl] = lf

    def draw_layers(self, shape: Shape, layers: list[tuple[float, Tissue | Callable]]) -> None:
        """Paint nested layers of one shape from the outside in: ``(inset_mm, tissue)`` pairs, inset >= 0.

        A tissue may be a callable(bbox slices) -> (water, fat) arrays for textured fills (viscera).
        """
        sl = self._bbox(shape, 3.0 * self._h + (8.0 if self.warp is not None else 0.0))
        if sl is None:
            return
        d = self.signed_distance(shape, sl)
        for inset, t in layers:
            f = self.occupancy(d, -inset)
            if isinstance(t, Tissue):
                self.paint(sl, f, t.signal * (1 - t.ff), t.signal * t.ff)
            else:
                w, fa = t(sl)
                self.paint(sl, f, w, fa)

    def draw(self, st: Structure) -> None:
        """Paint a structure (its shell first, then the interior)."""
        margin = st.shell_mm + 3.0 * self._h + (8.0 if self.warp is not None else 0.0)
        sl = self._bbox(st.shape, margin)
        if sl is None:
            return
        d = self.signed_distance(st.shape, sl)
        if st.shell_mm > 0 and st.shell_tissue is not None:
            fs = self.occupancy(d, st.shell_mm)
            t = st.shell_tissue
            self.paint(sl, fs, t.signal * (1 - t.ff), t.signal * t.ff)
        f = self.occupancy(d)
        t = st.tissue
        if st.ff_field is not None:
            ff = np.clip(st.ff_field(sl), 0.0, 1.0)  # type: ignore[operator]
            fat_signal = t.signal if st.fat_signal is None else st.fat_signal
            self.paint(sl, f, t.signal * (1 - ff), fat_signal * ff, st.label)
        else:
            self.paint(sl, f, t.signal * (1 - t.ff), t.signal * t.ff, st.label)
