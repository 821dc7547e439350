"""A canvas that also records which structure dominates each voxel, and body-wall sheets drawn on it.

``TissueCanvas`` paints exactly like ``render.Canvas`` (water, fat, label, label fraction) and keeps a tissue-id map
(``tissue_ids.TISSUE_IDS``): a painted structure takes a voxel when its occupancy there is at least what is left of
the voxel's current owner after the paint (the owner's fraction shrinks by ``1 - f`` like every other tissue).

``draw_sheet`` paints a muscle sheet that follows the body contour (abdominal wall, latissimus dorsi): the band
between two insets from the trunk surface, limited to a range of angles around the trunk centre. Angles ``phi`` are
degrees from the anterior midline (0) through lateral (90) to posterior (180), on one side; world coordinates are
RAS millimetres (+x patient right, +y anterior, +z superior).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scripts.phantom.render import Canvas, RenderGrid, Shape, Structure, Tissue

__all__ = ["TissueCanvas", "SheetFrame", "draw_sheet"]


class TissueCanvas(Canvas):
    """``render.Canvas`` plus a uint8 tissue-id map ``tissue`` (shape as the grid) and its owner fraction.

    Args:
        grid: the RAS render grid.
        n_sub: through-plane sub-slices per voxel.
        warp: optional in-plane warp (see ``render.Canvas``).
    """

    def __init__(
        self,
        grid: RenderGrid,
        n_sub: int,
        warp: Callable[[tuple[slice, slice, slice]], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        super().__init__(grid, n_sub, warp)
        self.tissue = np.zeros(grid.shape, np.uint8)
        self.tissue_frac = np.zeros(grid.shape, np.float32)
        self._tid: int | np.ndarray = 0

    def paint(
        self,
        sl: tuple[slice, slice, slice],
        f: np.ndarray,
        water: np.ndarray | float,
        fat: np.ndarray | float,
        label: int = 0,
    ) -> None:
        """As ``Canvas.paint``; the voxel's tissue id becomes the current id where this paint dominates it."""
        super().paint(sl, f, water, fat, label)
        tf = self.tissue_frac[sl] * (1.0 - f)
        take = (f > 0.0) & (f >= tf)
        tid = self._tid if np.ndim(self._tid) == 0 else np.broadcast_to(self._tid, f.shape)
        self.tissue[sl] = np.where(take, np.asarray(tid, np.uint8), self.tissue[sl])
        self.tissue_frac[sl] = np.where(take, f, tf)

    def paint_id(
        self,
        sl: tuple[slice, slice, slice],
        f: np.ndarray,
        water: np.ndarray | float,
        fat: np.ndarray | float,
        tid: int | np.ndarray,
        label: int = 0,
    ) -> None:
        """``paint`` with tissue id ``tid`` (an int, or an array of the bbox's shape)."""
        self._tid = tid
        self.paint(sl, f, water, fat, label)
        self._tid = 0

    def draw_id(
        self,
        st: Structure,
        tid: int,
        shell_tid: int | None = None,
        clip: Callable[[tuple[slice, slice, slice]], np.ndarray] | None = None,
    ) -> None:
        """Paint a structure (as ``Canvas.draw``) with tissue id ``tid`` inside and ``shell_tid`` in its shell
        (default: the interior's id, e.g. a bone's cortex belongs to the bone); ``clip(bbox)`` -> 0-1 array limits
        where it may be painted (an organ stays inside the abdominal cavity)."""
        margin = st.shell_mm + 3.0 * self._h + (8.0 if self.warp is not None else 0.0)
        sl = self._bbox(st.shape, margin)
        if sl is None:
            return
        d = self.signed_distance(st.shape, sl)
        lim = 1.0 if clip is None else clip(sl)
        if st.shell_mm > 0 and st.shell_tissue is not None:
            t = st.shell_tissue
            self.paint_id(
                sl,
                self.occupancy(d, st.shell_mm) * lim,
                t.signal * (1 - t.ff),
                t.signal * t.ff,
                tid if shell_tid is None else shell_tid,
            )
        f = self.occupancy(d) * lim
        t = st.tissue
        if st.ff_field is not None:
            ff = np.clip(st.ff_field(sl), 0.0, 1.0)  # type: ignore[operator]
            fat_signal = t.signal if st.fat_signal is None else st.fat_signal
            self.paint_id(sl, f, t.signal * (1 - ff), fat_signal * ff, tid, st.label)
        else:
            self.paint_id(sl, f, t.signal * (1 - t.ff), t.signal * t.ff, tid, st.label)

    def draw_layers_id(self, shape: Shape, layers: list[tuple[float, Tissue | Callable, int]]) -> None:
        """``Canvas.draw_layers`` with a tissue id per layer; a callable layer returns (water, fat, ids)."""
        sl = self._bbox(shape, 3.0 * self._h + (8.0 if self.warp is not None else 0.0))
        if sl is None:
            return
        d = self.signed_distance(shape, sl)
        for inset, t, tid in layers:
            f = self.occupancy(d, -inset)
            if isinstance(t, Tissue):
                self.paint_id(sl, f, t.signal * (1 - t.ff), t.signal * t.ff, tid)
            else:
                w, fa, ids = t(sl)
                self.paint_id(sl, f, w, fa, ids)

    def warped_xy(self, sl: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        """World x and y (mm) of the bbox voxels after the in-plane warp -> two arrays broadcastable to the bbox."""
        gx = self.x[sl[0]][:, None, None]
        gy = self.y[sl[1]][None, :, None]
        if self.warp is not None:
            wx, wy = self.warp(sl)
            gx, gy = gx + wx, gy + wy
        return gx, gy


class SheetFrame:
    """Depth below the skin and angle around the trunk centre on the voxels of a z range, computed once and shared
    by every sheet drawn in it (the trunk's signed distance is the expensive part).

    Args:
        canvas: the tissue canvas.
        trunk: the body outline.
        z_range: world z (mm) covered by the sheets.
    """

    def __init__(self, canvas: TissueCanvas, trunk: Shape, z_range: tuple[float, float]) -> None:
        self.canvas = canvas
        self.sl = None
        sl = canvas._bbox(trunk, 3.0 * canvas._h + (8.0 if canvas.warp is not None else 0.0))
        if sl is None:
            return
        # the bbox reaches a slice or two past the trunk's ends, where its centre is NaN: keep to the trunk too
        lo, hi = max(z_range[0], trunk.z_range[0]), min(z_range[1], trunk.z_range[1])
        k = np.nonzero((canvas.z[sl[2]] >= lo) & (canvas.z[sl[2]] <= hi))[0]
        if k.size == 0:
            return
        self.sl = (sl[0], sl[1], slice(sl[2].start + k[0], sl[2].start + k[-1] + 1))
        self.zs = canvas.z[self.sl[2]]
        self.depth = canvas.signed_distance(trunk, self.sl).mean(axis=-1)
        cx, cy = (v[None, None, :].astype(np.float32) for v in trunk.params(self.zs).T[:2])
        gx, gy = canvas.warped_xy(self.sl)
        self.dx, self.dy = gx - cx, gy - cy
        self.r = np.sqrt(self.dx * self.dx + self.dy * self.dy)


def draw_sheet(
    frame: SheetFrame,
    side: str,
    z: np.ndarray,
    inset0: np.ndarray,
    thickness: np.ndarray,
    phi0: np.ndarray,
    phi1: np.ndarray,
    tissue: Tissue,
    tid: int,
    ramp_mm: float = 6.0,
) -> None:
    """Paint a muscle sheet lying ``inset0`` to ``inset0 + thickness`` mm inside the trunk surface.

    Args:
        frame: depth and angles of the trunk (``SheetFrame``) covering ``z``.
        side: "left" or "right" (RAS: left is at x below the trunk centre).
        z: keyframes (world mm, increasing); the sheet exists between ``z[0]`` and ``z[-1]``.
        inset0, thickness: depth of the sheet's outer surface and its thickness (mm) at each keyframe.
        phi0, phi1: angular extent (degrees from the anterior midline, 180 = posterior) at each keyframe.
        tissue: what fills it.
        tid: its tissue id.
        ramp_mm: arc length (mm) over which the sheet's ends taper in thickness (aponeurotic ends are thin).
    """
    if frame.sl is None:
        return
    canvas = frame.canvas
    k = np.nonzero((frame.zs >= z[0]) & (frame.zs <= z[-1]))[0]
    if k.size == 0:
        return
    ks = slice(k[0], k[-1] + 1)
    sl = (frame.sl[0], frame.sl[1], slice(frame.sl[2].start + k[0], frame.sl[2].start + k[-1] + 1))
    zs = frame.zs[ks]
    sgn = 1.0 if side == "right" else -1.0
    dx, dy, r, d = sgn * frame.dx[..., ks], frame.dy[..., ks], frame.r[..., ks], frame.depth[..., ks]
    phi = np.degrees(np.arctan2(dx, dy))
    p0, p1 = (np.interp(zs, z, v)[None, None, :] for v in (phi0, phi1))
    # arc distance (mm) inside the angular window; the ends are rounded (elliptical profile) over ramp_mm
    t = np.clip(np.minimum(phi - p0, p1 - phi) * np.pi / 180.0 * r / ramp_mm, 0.0, 1.0)
    taper = np.sqrt(t * (2.0 - t))
    i0 = np.interp(zs, z, inset0)[None, None, :]
    th = np.interp(zs, z, thickness)[None, None, :] * taper
    h = canvas._h
    # inside the surface moved in by inset0, minus inside the surface moved in by inset0 + thickness
    f = np.clip(0.5 - (d + i0) / h, 0, 1) - np.clip(0.5 - (d + i0 + th) / h, 0, 1)
    f = np.clip(f, 0.0, 1.0) * (th > 0.05)
    canvas.paint_id(sl, f.astype(np.float32), tissue.signal * (1 - tissue.ff), tissue.signal * tissue.ff, tid)
