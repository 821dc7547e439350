"""The vertebral bodies found in the subject's fat-fraction (FF) map, as the spine anchor of the quality verdict when
the label map holds no vertebral labels (the shipped 9-output network).

On Dixon images the lumbar vertebral body is the one large, compact, roughly round structure of intermediate FF near
the body's left-right midline: red and yellow marrow mixed (FF about 20-80 % in adults, 30-60 % typically) inside a
thin cortical shell, in the posterior half of the trunk, in front of the spinal canal. Muscle is lean (FF under
about 20 %), subcutaneous and retroperitoneal fat are nearly pure fat (over 85 %), discs and the canal's CSF are
water. The detection works per axial slice, in world RAS mm from the affine (any storage orientation or slice
order):

1. the body outline of the slice (finite FF, or the given body mask): its left-right midline (median x) and its
   posterior and anterior edges (2nd and 98th percentile of y);
2. voxels of marrow-like FF (``marrow_ff``, by a 3x3 majority vote: a smoothed FF would turn every muscle-fat
   border into "marrow") within a window about the midline and in the posterior part of the outline, opened
   in-plane with discs of each ``opening_mm`` radius: what survives is thicker than about twice the radius, so the
   pedicles, laminae, processes and the thin partial-volume rims of muscle and fat fall away and the body stands
   alone (the larger radius also parts it from a fatty erector spinae joined to it through the arch);
3. the pieces of each slice are scored by the fill of their moment ellipse (1 for an ellipse), elongation,
   distance from the midline and the spread of their FF (marrow is one tissue), within gates on area and on place
   (``ap_fraction``, ``min_back_mm``);
4. the column must hold together along the slices: the best piece of each slice must lie within ``track_mm`` of
   the running median of its neighbours' (over ``track_window_mm``); these are linked slice to slice into chains
   and the longest chain is the column; each slice near it then takes its best piece within ``track_mm`` of the
   column, and pieces under ``min_area_share`` of the column's median area are dropped. The column is "found"
   with at least ``min_slices`` slices over ``min_length_mm``, a body on ``min_share`` of the slices of that span;
   otherwise nothing may be used and the verdict judges by the body outline alone.

Without an FF map (a single-contrast image) the marrow cannot be told from muscle or fat by its signal alone, so
nothing is found; an in-plane spacing coarser than ``max_inplane_mm`` cannot resolve the openings. The vertebral
level is not known from the image, so the iliacus's height check of :mod:`scripts.quality.spine_anchor` (against L5)
is not made from it. Measured on phantoms and a real scan in docs/studies/quality_control.md ("Spine from the
image").
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage
from scripts.quality.spine_anchor import SpineFrame, frame_from_points

__all__ = ["ImageSpineLimits", "ImageSpine", "find_spine"]


@dataclasses.dataclass(frozen=True)
class ImageSpineLimits:
    """What a vertebral body looks like on an FF map (set from anatomy; checked in docs/studies/quality_control.md).

    Lumbar bodies are 40-50 mm wide and 30-40 mm deep (cross-section about 1000-1800 mm^2, smaller at T12-L1 and
    at a body's top and bottom slices, larger at S1).
    """

    #: marrow FF range, percent (after in-plane smoothing over about 6 mm)
    marrow_ff: tuple[float, float] = (15.0, 80.0)
    #: working in-plane spacing (mm): finer grids are subsampled to about this for speed
    work_mm: float = 2.0
    #: coarser in-plane spacing (mm) cannot resolve the opening: not searched
    max_inplane_mm: float = 4.0
    #: radii of the in-plane openings (mm): structures thinner than about twice the radius fall away; the larger
    #: one also parts a body from posterior elements and muscles of marrow-like FF joined to it by the pedicles
    opening_mm: tuple[float, ...] = (6.0, 10.0, 14.0)
    #: search window: centre within this of the outline's midline (mm) ...
    window_mm: float = 60.0
    #: ... and at this antero-posterior place in the outline (0 back, 1 front)
    ap_fraction: tuple[float, float] = (0.12, 0.7)
    #: ... and at least this far (mm) in front of the outline's back edge: the erector spinae and multifidus, the
    #: laminae and the canal lie between (a fatty multifidus pair, joined at the midline, lies nearer)
    min_back_mm: float = 50.0
    #: area of a body's cross-section, mm^2
    area_mm2: tuple[float, float] = (300.0, 3000.0)
    #: the piece's centre within the first distance (mm) of the outline's midline scores 1, falling to 0 at the second
    #: (a body lies on the midline of the trunk but for scoliosis or a trunk not centred on its spine)
    midline_mm: tuple[float, float] = (10.0, 30.0)
    #: the FF's robust spread within a piece (interquartile range / 1.349, percentage points) up to the first
    #: scores 1, falling to 0 at the second: marrow is one tissue; a body merged with visceral fat is two
    ff_spread_pp: tuple[float, float] = (8.0, 13.0)
    #: a slice's body smaller than this share of the column's median cross-section is dropped
    min_area_share: float = 0.5
    #: the slice's body needs at least this score (0-1)
    min_confidence: float = 0.3
    #: a slice's centre this far (mm, in-plane) from its neighbours' running median is dropped
    track_mm: float = 10.0
    #: the running median spans this length along the column (mm)
    track_window_mm: float = 50.0
    #: found when at least this many slices remain ...
    min_slices: int = 4
    #: ... spanning at least this length (mm) ...
    min_length_mm: float = 40.0
    #: ... with a body on at least this share of the slices in that span (discs take about a quarter)
    min_share: float = 0.5


@dataclasses.dataclass
class ImageSpine:
    """The vertebral bodies found on the FF grid.

    Attributes:
        found: whether the column was found reliably; when ``False`` nothing may be used as an anchor.
        reason: why it was or was not found, in words.
        axis: the array axis of the axial slices of the FF grid.
        confidence: (n slices along ``axis``,) score 0-1 of the body kept on each slice (0 where none was kept).
        centres: slice index -> the kept body's centre (world x, y mm, RAS).
        slice_of: (N,) slice index of each kept body voxel (working grid, subsampled in-plane).
        xyz: (N, 3) world RAS mm of each kept body voxel.
        shape: the FF grid's shape.
        steps: in-plane subsampling of the working grid per array axis (1 along ``axis``).
        voxels: (N, 3) indices of the kept body voxels on the working grid, in the FF grid's axis order (times
            ``steps`` gives FF-grid indices; :meth:`body_mask` fills each block).
    """

    found: bool
    reason: str
    axis: int
    confidence: np.ndarray
    centres: dict[int, tuple[float, float]]
    slice_of: np.ndarray
    xyz: np.ndarray
    shape: tuple[int, int, int]
    steps: tuple[int, int, int]
    voxels: np.ndarray = dataclasses.field(repr=False, default_factory=lambda: np.zeros((0, 3), dtype=np.intp))

    def frame(self) -> SpineFrame | None:
        """The kept bodies as the frame of :func:`scripts.quality.spine_anchor.spine_findings`; ``None`` if not
        found."""
        if not self.found:
            return None
        return frame_from_points(self.slice_of, self.xyz, source="image")

    def body_mask(self) -> np.ndarray:
        """(X, Y, Z) bool mask of the kept bodies on the FF grid (each working voxel fills its in-plane block)."""
        mask = np.zeros(self.shape, dtype=bool)
        for offset in np.ndindex(*self.steps):
            ijk = self.voxels * np.array(self.steps) + np.array(offset)
            ijk = ijk[(ijk < np.array(self.shape)).all(axis=1)]
            mask[tuple(ijk.T)] = True
        return mask


def _not_found(reason: str, axis: int, shape: tuple[int, ...], steps=(1, 1, 1)) -> ImageSpine:
    empty = np.zeros((0, 3))
    return ImageSpine(
        False, reason, axis, np.zeros(shape[axis]), {}, np.zeros(0, np.intp), empty, tuple(shape), tuple(steps)
    )


def _slice_axis(affine: np.ndarray) -> int:
    return int(np.argmax(np.abs(affine[2, :3]) / np.linalg.norm(affine[:3, :3], axis=0)))


@dataclasses.dataclass
class _Grid:
    """The working grid: FF subsampled in-plane, and the world x, y of its voxels."""

    ff: np.ndarray  # (I, J, K) percent, NaN outside the body; K along the slice axis
    body: np.ndarray  # (I, J, K) bool
    x: np.ndarray  # (I, J, K) world x mm
    y: np.ndarray  # (I, J, K) world y mm
    z: np.ndarray  # (K,) world z mm of each slice's centre voxel
    pixel_mm: float  # in-plane working spacing (mm)
    pixel_mm2: float  # area of one working voxel in the slice plane
    order: tuple[int, int, int]  # FF-grid axes of I, J, K
    steps: tuple[int, int, int]  # subsampling per FF-grid axis


def _working_grid(ff: np.ndarray, body: np.ndarray, affine: np.ndarray, axis: int, work_mm: float) -> _Grid:
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    steps = [1 if a == axis else max(1, int(round(work_mm / spacing[a]))) for a in range(3)]
    index = tuple(slice(None, None, s) for s in steps)
    order = tuple([a for a in range(3) if a != axis] + [axis])
    sub_ff = np.transpose(ff[index], order).astype(np.float32)
    sub_body = np.transpose(np.asarray(body, dtype=bool)[index], order) & np.isfinite(sub_ff)
    shape = sub_ff.shape
    # world = sum over the three array axes of (column * index): built by broadcasting, no (N, 3) product
    world = []
    for row in range(3):
        total = np.full((1, 1, 1), affine[row, 3], dtype=np.float32)
        for pos, a in enumerate(order):
            view = [1, 1, 1]
            view[pos] = shape[pos]
            total = total + (np.arange(shape[pos], dtype=np.float32) * (steps[a] * affine[row, a])).reshape(view)
        world.append(total)
    i0, i1 = order[0], order[1]
    pixel_mm = float(np.sqrt(spacing[i0] * steps[i0] * spacing[i1] * steps[i1]))
    plane = np.linalg.norm(np.cross(affine[:3, i0] * steps[i0], affine[:3, i1] * steps[i1]))
    z = np.broadcast_to(world[2], shape)[shape[0] // 2, shape[1] // 2, :]
    x, y = (np.broadcast_to(w, shape) for w in world[:2])
    return _Grid(sub_ff, sub_body, x, y, np.array(z), pixel_mm, float(plane), order, tuple(steps))


def _outline(grid: _Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slice: the body outline's midline x, posterior and anterior y (world mm; NaN without a body)."""
    n = grid.ff.shape[2]
    mid, back, front = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    for k in range(n):
        on = grid.body[::2, ::2, k]  # every other voxel in-plane: the percentiles need no more
        if on.sum() < 20:
            continue
        mid[k] = np.median(grid.x[::2, ::2, k][on])
        back[k], front[k] = np.percentile(grid.y[::2, ::2, k][on], (2, 98))
    return mid, back, front


def _window(x: np.ndarray, y: np.ndarray, mid, back, front, lim: ImageSpineLimits) -> np.ndarray:
    """The search window: within ``window_mm`` of the outline's midline, in the back part of the outline."""
    ap = (y - back) / np.maximum(front - back, 1.0)
    return (np.abs(x - mid) <= lim.window_mm) & (ap >= 0.0) & (ap <= lim.ap_fraction[1] + 0.15)


def _crop(grid: _Grid, mid: np.ndarray, back: np.ndarray, front: np.ndarray, lim, margin: int):
    """The working grid cut to the search window plus ``margin`` voxels in-plane, with the window inside it, and
    the crop's start (I, J); ``None`` when no slice has a body outline."""
    # the window's in-plane extent, slice by slice on 2D arrays (x, y of a slice are those of the first plus a
    # shift): 3D arrays over the whole grid would cost more than the search itself
    x0, y0 = np.asarray(grid.x[:, :, 0]), np.asarray(grid.y[:, :, 0])
    union = np.zeros(x0.shape, dtype=bool)
    for k in np.flatnonzero(np.isfinite(mid)):
        shift_x, shift_y = grid.x[0, 0, k] - grid.x[0, 0, 0], grid.y[0, 0, k] - grid.y[0, 0, 0]
        union |= _window(x0 + shift_x, y0 + shift_y, mid[k], back[k], front[k], lim)
    box = ndimage.find_objects(union.astype(np.int8))
    if not box:
        return None, (0, 0)
    cut = tuple(slice(max(0, b.start - margin), b.stop + margin) for b in box[0]) + (slice(None),)
    part = dataclasses.replace(
        grid, ff=grid.ff[cut], body=grid.body[cut], x=np.array(grid.x[cut]), y=np.array(grid.y[cut])
    )
    return (part, _window(part.x, part.y, mid, back, front, lim) & part.body), (cut[0].start, cut[1].start)


def _candidates(grid: _Grid, window: np.ndarray, lim: ImageSpineLimits) -> np.ndarray:
    """Voxels of marrow-like FF in the search window: (I, J, K) bool."""
    ff = grid.ff
    marrow = window & (ff >= lim.marrow_ff[0]) & (ff <= lim.marrow_ff[1])
    # a majority vote over 3x3 voxels, not a smoothed FF: smoothing turns every muscle-fat border into "marrow"
    return ndimage.uniform_filter(marrow.astype(np.float32), size=(3, 3, 1)) >= 0.5


def _openings(cand: np.ndarray, radii: list[int]):
    """``cand`` opened in-plane with an octagon of each radius (voxels; a disc to within a voxel), smallest first:
    erosions and dilations by 3x3 crosses and squares, whose cost does not grow with the radius squared as a disc's
    does; each erosion goes on from the previous radius's (erosions by crosses and squares add up in any order)."""
    cross = np.zeros((3, 3, 3), dtype=bool)
    cross[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    square = np.zeros((3, 3, 3), dtype=bool)
    square[:, :, 1] = True
    eroded, done = cand, (0, 0)
    for radius in sorted(radii):
        want = ((radius + 1) // 2, radius - (radius + 1) // 2)  # crosses, squares
        for structure, n in zip((cross, square), np.subtract(want, done)):
            if n > 0:
                eroded = ndimage.binary_erosion(eroded, structure=structure, iterations=int(n))
        done = want
        out = eroded
        for structure, n in zip((cross, square), want):
            if n > 0:
                out = ndimage.binary_dilation(out, structure=structure, iterations=int(n))
        yield radius, out & cand


def _radii(grid: _Grid, lim: ImageSpineLimits) -> list[int]:
    return [max(1, int(round(r / grid.pixel_mm))) for r in lim.opening_mm]


def _spread(lab: np.ndarray, ff: np.ndarray, n: int) -> np.ndarray:
    """Robust spread of the FF within each of ``n`` pieces: interquartile range / 1.349 (a standard deviation for a
    normal spread), in percentage points. Marrow is one tissue, so a body's FF varies little but for its rim of
    partial volume (a minority, which the quartiles ignore); a body merged with fat or muscle is two populations."""
    finite = np.isfinite(ff)
    lab, ff = lab[finite], ff[finite]
    order = np.lexsort((ff, lab))
    lab, ff = lab[order], ff[order]
    count = np.bincount(lab, minlength=n)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    spread = np.full(n, np.inf)
    has = count > 0
    q1 = ff[start[has] + ((count[has] - 1) * 0.25).astype(int)]
    q3 = ff[start[has] + ((count[has] - 1) * 0.75).astype(int)]
    spread[has] = (q3 - q1) / 1.349
    return spread


def _pieces(cand: np.ndarray, grid: _Grid, mid: np.ndarray, back: np.ndarray, front: np.ndarray, lim):
    """Label the in-plane pieces of ``cand`` and score each as a vertebral body: (labels, slice, cx, cy, area
    mm^2, score)."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    labels, n = ndimage.label(cand, structure=structure)
    if n == 0:
        return labels, *(np.zeros(0) for _ in range(5))
    at = np.nonzero(labels)
    lab, x, y = labels[at] - 1, grid.x[at].astype(np.float64), grid.y[at].astype(np.float64)
    count = np.bincount(lab, minlength=n).astype(np.float64)

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(lab, weights=values, minlength=n) / count

    k = np.rint(mean(at[2].astype(np.float64))).astype(int)
    cx, cy = mean(x), mean(y)
    sxx, syy, sxy = mean((x - cx[lab]) ** 2), mean((y - cy[lab]) ** 2), mean((x - cx[lab]) * (y - cy[lab]))
    # the moment ellipse: semi-axes 2 sigma; a filled ellipse has area pi * 4 * s1 * s2
    half_trace, det = (sxx + syy) / 2, np.maximum(sxx * syy - sxy**2, 1e-6)
    root = np.sqrt(np.maximum(half_trace**2 - det, 0.0))
    s1, s2 = np.sqrt(half_trace + root), np.sqrt(np.maximum(half_trace - root, 1e-6))
    area = count * grid.pixel_mm2
    fill = area / (4 * np.pi * s1 * s2)
    offset = np.abs(cx - mid[k])
    ap = (cy - back[k]) / np.maximum(front[k] - back[k], 1.0)
    spread = _spread(lab, grid.ff[at], n)
    lo, hi = lim.ff_spread_pp
    score = (
        np.clip(1.0 - np.abs(fill - 1.0) / 0.4, 0.0, 1.0)
        * np.clip((2.5 - s1 / s2) / 1.2, 0.0, 1.0)
        * np.clip((lim.midline_mm[1] - offset) / (lim.midline_mm[1] - lim.midline_mm[0]), 0.0, 1.0)
        * np.clip((hi - spread) / (hi - lo), 0.0, 1.0)
    )
    gate = (area >= lim.area_mm2[0]) & (area <= lim.area_mm2[1]) & (ap >= lim.ap_fraction[0])
    gate &= (ap <= lim.ap_fraction[1]) & (cy - back[k] >= lim.min_back_mm)
    return labels, k, cx, cy, area, np.where(gate, score, 0.0)


def _all_pieces(part: _Grid, window: np.ndarray, mid, back, front, lim: ImageSpineLimits) -> list[tuple]:
    """Every piece, at every opening radius, whose score as a vertebral body reaches ``min_confidence``:
    (slice index, centre x, y mm, score, area mm^2, its radius's label map, its label)."""
    cand = _candidates(part, window, lim)
    found = []
    for _, opened in _openings(cand, _radii(part, lim)):
        labels, k, cx, cy, area, score = _pieces(opened, part, mid, back, front, lim)
        kept = np.flatnonzero(score >= lim.min_confidence)
        found += [(int(k[i]), cx[i], cy[i], score[i], area[i], labels, i + 1) for i in kept]
    return found


def _column(pieces: list[tuple], z: np.ndarray, lim: ImageSpineLimits) -> list[tuple]:
    """One body per slice along one column: the best-scoring pieces that hold together along the slices
    (:func:`_track`), linked into the longest chain (:func:`_longest_chain`), fix the column; then each slice near
    it takes its best piece within ``track_mm`` of the column's centre interpolated there (a slice whose best piece
    lay elsewhere keeps its body); a piece under ``min_area_share`` of the column's median area is dropped (a blob
    of tissue where the column ends)."""
    best: dict[int, tuple] = {}
    for piece in pieces:
        if piece[0] not in best or piece[3] > best[piece[0]][3]:
            best[piece[0]] = piece
    rows = [best[kk] for kk in sorted(best)]
    if not rows:
        return []
    keep = _track(z[[r[0] for r in rows]], np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), lim)
    rows = _longest_chain([r for r, ok in zip(rows, keep) if ok], z, lim)
    if not rows:
        return []
    zk = z[[r[0] for r in rows]]
    col_x, col_y = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    chosen: dict[int, tuple] = {}
    for piece in pieces:
        zp = z[piece[0]]
        if zp < zk[0] - lim.track_window_mm / 2 or zp > zk[-1] + lim.track_window_mm / 2:
            continue
        near = np.hypot(piece[1] - np.interp(zp, zk, col_x), piece[2] - np.interp(zp, zk, col_y)) <= lim.track_mm
        if near and (piece[0] not in chosen or piece[3] > chosen[piece[0]][3]):
            chosen[piece[0]] = piece
    typical = np.median([piece[4] for piece in chosen.values()]) if chosen else 0.0
    return [chosen[kk] for kk in sorted(chosen) if chosen[kk][4] >= lim.min_area_share * typical]


def _longest_chain(rows: list[tuple], z: np.ndarray, lim: ImageSpineLimits) -> list[tuple]:
    """Link the pieces, in order along z, into chains: each joins the chain one of whose last two pieces lies
    nearest, if less than ``track_mm`` (plus 10 % of the gap along z, for the curve of the spine) away, else starts
    a chain (two pieces, so that one odd slice does not cut the column). The longest chain, sorted by z, is the
    column: a short run of fatty muscle or bowel that holds together beside or beyond the column is no part of it."""
    chains: list[list[tuple]] = []
    for piece in sorted(rows, key=lambda r: z[r[0]]):
        fits = {}
        for i, chain in enumerate(chains):
            for last in chain[-2:]:
                step = np.hypot(piece[1] - last[1], piece[2] - last[2])
                if step <= lim.track_mm + 0.1 * abs(z[piece[0]] - z[last[0]]):
                    fits[i] = min(step, fits.get(i, np.inf))
        if fits:
            chains[min(fits, key=fits.get)].append(piece)
        else:
            chains.append([piece])
    return max(chains, key=len) if chains else []


def _track(z: np.ndarray, cx: np.ndarray, cy: np.ndarray, lim: ImageSpineLimits) -> np.ndarray:
    """Keep the slices whose centre lies within ``track_mm`` of the running median of the others near it."""
    keep = np.ones(len(z), dtype=bool)
    for i in range(len(z)):
        near = (np.abs(z - z[i]) <= lim.track_window_mm / 2) & (np.arange(len(z)) != i)
        if near.sum() < 2:
            keep[i] = False  # a body seen on a slice alone is no column
            continue
        dist = np.hypot(cx[i] - np.median(cx[near]), cy[i] - np.median(cy[near]))
        keep[i] = dist <= lim.track_mm
    return keep


def _decide(k: np.ndarray, score: np.ndarray, z: np.ndarray, lim: ImageSpineLimits) -> tuple[bool, str]:
    """Whether the bodies kept on slices ``k`` make a column, and why, in words."""
    length = float(np.ptp(z[k])) if len(k) else 0.0
    share = len(k) / (np.ptp(k) + 1) if len(k) else 0.0
    what = f"{len(k)} slices over {length:.0f} mm with a vertebral body ({share:.0%} of the slices in that span, "
    what += f"median score {np.median(score) if len(k) else 0.0:.2f})"
    if len(k) >= lim.min_slices and length >= lim.min_length_mm and share >= lim.min_share:
        return True, what
    needs = f"needs {lim.min_slices} slices over {lim.min_length_mm:g} mm, on {lim.min_share:.0%} of them"
    return False, f"only {what}; {needs}"


def find_spine(
    ff: np.ndarray | None,
    affine: np.ndarray,
    body: np.ndarray | None = None,
    limits: ImageSpineLimits | None = None,
) -> ImageSpine:
    """Find the vertebral bodies on an FF map, slice by slice, and decide whether the column was found.

    Args:
        ff: (X, Y, Z) voxel FF in percent (0-100), NaN where excluded, any storage orientation and slice order;
            ``None`` (a single-contrast scan) gives "not found".
        affine: (4, 4) voxel -> RAS world mm of ``ff``.
        body: (X, Y, Z) bool body mask on the same grid; default: the finite voxels of ``ff``.
        limits: the anatomy; default :class:`ImageSpineLimits`.

    Returns:
        An :class:`ImageSpine`; ``found`` is ``False`` with the reason when the column was not found reliably.
    """
    lim = limits or ImageSpineLimits()
    affine = np.asarray(affine, dtype=np.float64)
    if ff is None:
        return _not_found("no FF map (single-contrast input): marrow cannot be told from muscle and fat", 2, (0, 0, 0))
    ff = np.asarray(ff)
    if ff.ndim != 3 or affine.shape != (4, 4):
        raise ValueError(f"the spine search needs a 3D FF map and a 4x4 affine, got {ff.shape} and {affine.shape}")
    axis = _slice_axis(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    coarse = max(spacing[a] for a in range(3) if a != axis)
    if coarse > lim.max_inplane_mm:
        reason = f"in-plane spacing {coarse:.1f} mm is coarser than {lim.max_inplane_mm:g} mm: bodies not resolved"
        return _not_found(reason, axis, ff.shape)
    grid = _working_grid(ff, np.isfinite(ff) if body is None else body, affine, axis, lim.work_mm)
    mid, back, front = _outline(grid)
    cropped, start = _crop(grid, mid, back, front, lim, margin=max(_radii(grid, lim)) + 2)
    if cropped is None:
        return _not_found("no body outline in the FF map", axis, ff.shape, grid.steps)
    part, window = cropped
    rows = _column(_all_pieces(part, window, mid, back, front, lim), grid.z, lim)
    k = np.array([r[0] for r in rows], dtype=np.intp)
    cx, cy, score = (np.array([r[j] for r in rows], dtype=float) for j in (1, 2, 3))
    voxels = []
    for kk, *_, labels, value in rows:
        ij = np.argwhere(labels[:, :, kk] == value)
        voxels.append(np.column_stack([ij, np.full(len(ij), kk)]))
    confidence = np.zeros(ff.shape[axis])
    confidence[k] = score
    found, reason = _decide(k, score, grid.z, lim)
    ijk = np.concatenate(voxels) if voxels else np.zeros((0, 3), dtype=np.intp)
    xyz = np.stack([part.x[tuple(ijk.T)], part.y[tuple(ijk.T)], grid.z[ijk[:, 2]]], axis=1).astype(np.float64)
    in_ff = np.zeros_like(ijk)
    in_ff[:, list(grid.order)] = ijk + np.array([start[0], start[1], 0])  # the FF grid's axes, working-grid steps
    return ImageSpine(
        found=bool(found),
        reason=reason,
        axis=axis,
        confidence=confidence,
        centres={int(kk): (float(x), float(y)) for kk, x, y in zip(k, cx, cy)},
        slice_of=ijk[:, 2].astype(np.intp),
        xyz=xyz,
        shape=tuple(ff.shape),
        steps=grid.steps,
        voxels=in_ff,
    )
