"""Fat-water swap detection in a Dixon water/fat pair: global, per-slice and per-label anatomical rules, for QC.

A swap exchanges water and fat, so FF becomes 1 - FF. :func:`detect_fat_water_swap` flags suspected swaps with
simple anatomical rules (subcutaneous fat is fattier than the body interior; the two sides of one muscle agree;
a water-dominant muscle has no large region mirroring its FF); it flags for review and never corrects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scripts.labels import LEFT_RIGHT_SWAP, NUM_CLASSES
from scripts.quantification.formulas import (
    _DEFAULT_RELATIVE_THRESHOLD,
    _guarded_ratio,
    denominator_threshold,
    water_fat_terms,
)

__all__ = [
    "LabelSwapFlags",
    "SwapReport",
    "detect_fat_water_swap",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelSwapFlags:
    """Swap evidence for one label.

    Attributes:
        label: label value.
        n_voxels: voxels of the label with a valid FF.
        median_ff: median FF (fraction) of the label; NaN when empty.
        contralateral_median_ff: median FF of the same muscle on the other side; NaN when absent or unpaired.
        asymmetric: median FF > 0.6 while the other side is < 0.4 (whole-muscle swap on one side).
        swapped_region: a large connected fat-dominant region whose FF mirrors the rest of the label (1 - FF).
        swapped_region_voxels: voxels in such regions.
    """

    label: int
    n_voxels: int
    median_ff: float
    contralateral_median_ff: float
    asymmetric: bool
    swapped_region: bool
    swapped_region_voxels: int

    @property
    def suspected(self) -> bool:
        """True when any swap rule fired for this label."""
        return self.asymmetric or self.swapped_region


@dataclass(frozen=True)
class SwapReport:
    """Result of :func:`detect_fat_water_swap`: flags for visual QC, not a correction.

    Attributes:
        global_swap: the whole volume looks swapped (periphery less fatty than the interior).
        regional_swap: some slices or labels look swapped while the volume as a whole does not.
        periphery_median_ff: median FF of the outer body shell (subcutaneous fat in a normal scan).
        core_median_ff: median FF of the body interior.
        body_fat_dominant_fraction: share of body voxels with FF > 0.5 (information only; obese bodies exceed 0.5).
        muscle_median_ff: median FF over all labelled voxels; NaN without labels.
        swapped_slices: indices (along ``slice_axis``) of slices whose own periphery/core test says swapped.
        per_label: label value -> :class:`LabelSwapFlags` (empty without labels).
        reasons: one sentence per rule that fired or could not be evaluated.
    """

    global_swap: bool
    regional_swap: bool
    periphery_median_ff: float
    core_median_ff: float
    body_fat_dominant_fraction: float
    muscle_median_ff: float
    swapped_slices: tuple[int, ...]
    per_label: dict[int, LabelSwapFlags]
    reasons: tuple[str, ...]

    @property
    def any_swap(self) -> bool:
        """True when a global or regional swap is suspected."""
        return self.global_swap or self.regional_swap


_MIN_SHELL_VOXELS = 20
_ASYM_HIGH, _ASYM_LOW = 0.6, 0.4
_MIRROR_TOLERANCE = 0.1
_MIN_REGION_SHARE = 0.1


def _slice_index(slice_axis: int, s: int) -> tuple[slice | int, ...]:
    """Index tuple selecting slice ``s`` along ``slice_axis`` of a 3D array."""
    index: list[slice | int] = [slice(None)] * 3
    index[slice_axis] = s
    return tuple(index)


def _box_in_plane(plane: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of a 2D mask grown by one pixel, within the plane; ``None`` for an empty mask.

    Every pixel of the grown ring is outside the mask, so the nearest outside pixel of any mask pixel lies in the
    box (a pixel beyond it, moved onto the ring, comes closer): distances computed in the box are the plane's.
    """
    rows, cols = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    if rows.size == 0:
        return None
    return (
        slice(max(int(rows[0]) - 1, 0), int(rows[-1]) + 2),
        slice(max(int(cols[0]) - 1, 0), int(cols[-1]) + 2),
    )


@dataclass
class _BodyEvidence:
    """What the body-level rules read, gathered slice by slice in :func:`_body_evidence`.

    Attributes:
        shell_ff: per slice, the valid FF values (any order) of the shell, body voxels at in-plane depth
            ``(skin_mm, skin_mm + shell_mm]``.
        core_ff: per slice, the valid FF values of the core, body voxels deeper than that.
        n_valid: body voxels with a valid FF.
        n_fat_dominant: body voxels with FF > 0.5.
    """

    shell_ff: list[np.ndarray]
    core_ff: list[np.ndarray]
    n_valid: int
    n_fat_dominant: int


def _body_evidence(
    ff: np.ndarray,
    body: np.ndarray,
    fill_holes: bool,
    slice_axis: int,
    voxel_size_mm: tuple[float, float, float],
    depth_mm: tuple[float, float],
) -> _BodyEvidence:
    """Shell and core FF values per slice and the body's FF counts, each slice worked on in its body's box.

    Depth is the in-plane Euclidean distance (mm) from the outside of the body, slice by slice: 2D, not 3D,
    because the first and last slices of a field of view are not the body surface. With ``fill_holes`` the body's
    holes (gas, bone cortex) are filled per slice first. Both run in the slice's body box grown by one pixel
    (:func:`_box_in_plane`), which gives the same holes and distances as the whole slice.

    Args:
        ff: 3D FF (fraction, NaN = excluded).
        body: 3D body mask, same shape.
        fill_holes: fill the holes of ``body`` on each slice.
        slice_axis: the axial voxel axis.
        voxel_size_mm: voxel spacing (mm) per array axis.
        depth_mm: ``(skin_mm, skin_mm + shell_mm)``, the shell's depth range.
    """
    sampling = tuple(float(v) for i, v in enumerate(voxel_size_mm) if i != slice_axis)
    skin, deep = depth_mm
    evidence = _BodyEvidence([], [], 0, 0)
    empty = np.empty(0, dtype=ff.dtype)
    for s in range(body.shape[slice_axis]):
        idx = _slice_index(slice_axis, s)
        box = _box_in_plane(body[idx])
        if box is None:
            evidence.shell_ff.append(empty)
            evidence.core_ff.append(empty)
            continue
        inside = ndimage.binary_fill_holes(body[idx][box]) if fill_holes else body[idx][box]
        depth = ndimage.distance_transform_edt(inside, sampling=sampling)
        ff_box = ff[idx][box]
        valid = inside & np.isfinite(ff_box)
        evidence.shell_ff.append(ff_box[valid & (depth > skin) & (depth <= deep)])
        evidence.core_ff.append(ff_box[valid & (depth > deep)])
        evidence.n_valid += int(np.count_nonzero(valid))
        evidence.n_fat_dominant += int(np.count_nonzero(valid & (ff_box > 0.5)))
    return evidence


def _periphery_says_swapped(shell_ff: np.ndarray, core_ff: np.ndarray) -> tuple[bool | None, float, float]:
    """Normal anatomy: the body shell (subcutaneous fat) is fatter than the interior. ``None`` if too few voxels.

    Args:
        shell_ff: the valid FF values (fraction) of the shell, in any order.
        core_ff: the valid FF values of the interior, in any order.
    """
    if shell_ff.size < _MIN_SHELL_VOXELS or core_ff.size < _MIN_SHELL_VOXELS:
        return None, float("nan"), float("nan")
    p, c = float(np.median(shell_ff)), float(np.median(core_ff))
    return bool(p < 0.5 and p < c), p, c


def _mirrored_region_voxels(ff_box: np.ndarray, in_label: np.ndarray, n: int, min_region_voxels: int) -> int:
    """Voxels of the label's large fat-dominant regions whose mean FF mirrors (1 - FF) its water-dominant rest.

    Args:
        ff_box: FF (fraction) inside the label's bounding box.
        in_label: boolean mask of the label's voxels with a valid FF, same shape as ``ff_box``.
        n: number of voxels in ``in_label``.
        min_region_voxels: minimum region size (voxels).

    Returns:
        The voxel count of such regions; 0 when the rest is too small or not water-dominant.
    """
    fat_dom = in_label & (ff_box > 0.5)
    rest = ff_box[in_label & ~fat_dom]
    if rest.size < _MIN_SHELL_VOXELS:
        return 0
    rest_median = float(np.median(rest))
    components, n_comp = ndimage.label(fat_dom)
    if not n_comp:
        return 0
    sizes = np.bincount(components.ravel(), minlength=n_comp + 1)[1:]
    sums = ndimage.sum_labels(ff_box, components, index=np.arange(1, n_comp + 1))
    means = sums / np.maximum(sizes, 1)
    # a swap maps FF -> 1 - FF, so a swapped part of a water-dominant muscle mirrors the rest around 0.5;
    # it must be large (>= 10 % of the label) to set it apart from fat streaks and partial volume
    big = sizes >= max(min_region_voxels, _MIN_REGION_SHARE * n)
    mirrored = np.abs(means - (1.0 - rest_median)) <= _MIRROR_TOLERANCE
    return int(sizes[big & mirrored].sum()) if rest_median < 0.5 else 0


def _label_crops(ff: np.ndarray, labels: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Muscle label -> ``(FF in its bounding box, mask of its voxels with a valid FF in that box)``.

    Muscles only: the vertebral context (9-14) is fatty marrow, which no swap rule describes. Each label is worked on
    inside its bounding box, found for all labels in one pass (an absent label has none): a muscle fills a few
    percent of the volume, and whole-volume masks and component labelling per label cost seconds per subject at the
    reference geometry.
    """
    lab = labels if np.issubdtype(labels.dtype, np.integer) else np.asarray(labels, dtype=np.int64)
    boxes = ndimage.find_objects(lab, max_label=NUM_CLASSES - 1)
    crops: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for v in range(1, NUM_CLASSES):
        box = boxes[v - 1]
        if box is not None:
            ff_box = ff[box]
            crops[v] = ff_box, (labels[box] == v) & np.isfinite(ff_box)
    return crops


def _label_flags(crops: dict[int, tuple[np.ndarray, np.ndarray]], min_region_voxels: int) -> dict[int, LabelSwapFlags]:
    """Per-label asymmetry and mirrored-region rules (see :func:`detect_fat_water_swap`) on :func:`_label_crops`."""
    medians: dict[int, float] = {}
    for v, (ff_box, in_label) in crops.items():
        sel = ff_box[in_label]
        medians[v] = float(np.median(sel)) if sel.size else float("nan")
    flags: dict[int, LabelSwapFlags] = {}
    for v, (ff_box, in_label) in crops.items():
        n = int(in_label.sum())
        other = LEFT_RIGHT_SWAP.get(v)
        contra = medians.get(other, float("nan")) if other not in (None, 0, v) else float("nan")
        asym = bool(medians[v] > _ASYM_HIGH and contra < _ASYM_LOW)  # NaN comparisons are False
        region_voxels = _mirrored_region_voxels(ff_box, in_label, n, min_region_voxels)
        flags[v] = LabelSwapFlags(
            label=v,
            n_voxels=n,
            median_ff=medians[v],
            contralateral_median_ff=contra,
            asymmetric=asym,
            swapped_region=region_voxels > 0,
            swapped_region_voxels=region_voxels,
        )
    return flags


def _checked_pair(
    water: np.ndarray,
    fat: np.ndarray,
    slice_axis: int,
    voxel_size_mm: tuple[float, float, float] | None,
    skin_mm: float,
    shell_mm: float,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Water and fat as 3D arrays and the voxel spacing (mm), or a ``ValueError`` naming the bad argument."""
    w, f = np.asarray(water), np.asarray(fat)
    if w.shape != f.shape:
        raise ValueError(f"water and fat must have the same shape, got {w.shape} and {f.shape}")
    if w.ndim != 3:
        raise ValueError(f"water and fat must be 3D, got shape {w.shape}")
    if slice_axis not in (0, 1, 2):
        raise ValueError(f"slice_axis must be 0, 1 or 2, got {slice_axis}")
    if skin_mm < 0 or shell_mm <= 0:
        raise ValueError(f"skin_mm must be >= 0 and shell_mm > 0, got skin_mm={skin_mm}, shell_mm={shell_mm}")
    sizes = [1.0, 1.0, 1.0] if voxel_size_mm is None else [float(v) for v in voxel_size_mm]
    if len(sizes) != 3 or min(sizes) <= 0:
        raise ValueError(f"voxel_size_mm must be three positive spacings in mm, got {voxel_size_mm}")
    return w, f, (sizes[0], sizes[1], sizes[2])


def _body(body_mask: np.ndarray | None, signal: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(body mask, fill its holes)``: the given mask as booleans (same shape as ``signal`` = ``|W| + |F|``, or
    ``ValueError``), or by default ``signal`` above 10 % of its robust maximum, whose holes (gas, bone cortex) are
    to be filled slice by slice."""
    if body_mask is None:
        return np.isfinite(signal) & (signal >= denominator_threshold(signal, None, 0.1)), True
    body = np.asarray(body_mask).astype(bool)
    if body.shape != signal.shape:
        raise ValueError(f"body_mask shape {body.shape} differs from water shape {signal.shape}")
    return body, False


def _muscle_evidence(
    ff: np.ndarray, labels: np.ndarray | None, min_region_voxels: int
) -> tuple[float, dict[int, LabelSwapFlags], np.ndarray | None]:
    """``(median FF over all labelled voxels, per-label flags, label array)``; NaN, empty and None without labels."""
    if labels is None:
        return float("nan"), {}, None
    lab = np.asarray(labels)
    if lab.shape != ff.shape:
        raise ValueError(f"labels shape {lab.shape} differs from water shape {ff.shape}")
    crops = _label_crops(ff, lab)
    # the muscles' valid voxels, label by label (the median does not depend on their order)
    in_muscle = np.concatenate([ff_box[in_label] for ff_box, in_label in crops.values()] or [np.empty(0, ff.dtype)])
    muscle_ff = float(np.median(in_muscle)) if in_muscle.size else float("nan")
    return muscle_ff, _label_flags(crops, min_region_voxels), lab


def _global_verdict(
    shell_swapped: bool | None, periphery_ff: float, core_ff: float, muscle_ff: float, has_labels: bool
) -> tuple[bool, list[str]]:
    """The global rule of :func:`detect_fat_water_swap` (periphery/core, else muscle labels) and its reasons."""
    reasons: list[str] = []
    muscle_swapped = bool(muscle_ff > 0.5)  # False for NaN
    if shell_swapped is None:
        reasons.append("body periphery/core test not possible (too few voxels)")
        if muscle_swapped:
            reasons.append(f"global swap: median FF over muscle labels is {muscle_ff:.2f} > 0.5")
        return muscle_swapped, reasons
    if shell_swapped:
        reasons.append(
            f"global swap: periphery median FF {periphery_ff:.2f} < 0.5 and below the interior's {core_ff:.2f}"
        )
    if has_labels and np.isfinite(muscle_ff) and muscle_swapped != shell_swapped:
        reasons.append(
            f"muscle labels disagree with the periphery test (median muscle FF {muscle_ff:.2f}): severe fatty "
            "infiltration, a regional swap or wrong labels; review visually"
        )
    return shell_swapped, reasons


def _swapped_slices(shell_by_slice: list[np.ndarray], core_by_slice: list[np.ndarray]) -> list[int]:
    """Indices of the slices whose own periphery/core test says swapped (values from :func:`_body_evidence`)."""
    return [s for s, (sh, co) in enumerate(zip(shell_by_slice, core_by_slice)) if _periphery_says_swapped(sh, co)[0]]


def _label_reasons(per_label: dict[int, LabelSwapFlags]) -> list[str]:
    """One sentence per label rule that fired."""
    reasons: list[str] = []
    for v, flag in per_label.items():
        if flag.asymmetric:
            reasons.append(
                f"label {v}: median FF {flag.median_ff:.2f} > {_ASYM_HIGH} while the other side is "
                f"{flag.contralateral_median_ff:.2f} < {_ASYM_LOW}"
            )
        if flag.swapped_region:
            reasons.append(f"label {v}: {flag.swapped_region_voxels} voxels form a region with FF mirrored (1 - FF)")
    return reasons


def detect_fat_water_swap(
    water: np.ndarray,
    fat: np.ndarray,
    body_mask: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    slice_axis: int = 2,
    voxel_size_mm: tuple[float, float, float] | None = None,
    skin_mm: float = 3.0,
    shell_mm: float = 6.0,
    min_region_voxels: int = 50,
    min_denominator: float | None = None,
    relative_threshold: float = _DEFAULT_RELATIVE_THRESHOLD,
) -> SwapReport:
    """Flag global and regional fat-water swaps in a Dixon water/fat pair with simple anatomical rules.

    A swap exchanges W and F, so FF becomes 1 - FF. Rules (FF = ``|F| / (|F| + |W|)``, dominance of magnitudes):

    - **Global** (no labels needed): in normal anatomy the body periphery, the shell from ``skin_mm`` to
      ``skin_mm + shell_mm`` below the surface (subcutaneous fat), is fat-dominant and fattier than the interior
      (muscle, organs). The volume is flagged when the shell's median FF is < 0.5 *and* below the interior's.
      The skin (water-dominant, with partial volume: median FF ~0.4 in the outer 2.4 mm of the real GE thigh) is
      skipped so it does not pull the shell below 0.5. The ordering survives obesity (a large visceral fat area
      can make most of the body fat-dominant, so "most voxels fat-dominant" alone would flag normal obese scans)
      and leanness (a thin fat layer lowers the shell median, but the interior stays lower). Without a usable
      shell, the muscle rule decides: median FF over all labelled voxels > 0.5.
    - **Per slice**: the same shell/core test on each slice along ``slice_axis``; slices flagged while the volume
      is not give a regional swap (stations or slabs reconstructed with the wrong sign).
    - **Per label** (``labels`` given): *asymmetry*, label median FF > 0.6 while the same muscle on the other
      side (:data:`scripts.labels.LEFT_RIGHT_SWAP`) is < 0.4; *mirrored region*, a connected fat-dominant region
      of at least ``max(min_region_voxels, 10 % of the label)`` voxels whose mean FF is within 0.1 of
      ``1 - median FF`` of the water-dominant rest of a water-dominant label.

    Warning:
        These are heuristics for QC. Severe fatty infiltration (muscle FF > 50 %) can look like a regional swap,
        and large confluent fat inside a muscle can trigger the mirrored-region rule. In a *swapped* scan of a
        severely fat-replaced limb the interior may be as water-like as the swapped subcutaneous fat, so the
        global rule can miss it (it did flag the swapped real GE thigh: shell 0.07 vs interior 0.14). A swap in
        fat-dominant tissue only is not detected. Flag and review; do not correct automatically.

    Args:
        water: 3D water image, intensity units.
        fat: 3D fat image, same shape and grid.
        body_mask: optional 3D boolean body mask; by default ``|W| + |F|`` above 10 % of its robust maximum with
            holes filled per slice.
        labels: optional 3D label map on the same grid (values of :mod:`scripts.labels`).
        slice_axis: axial voxel axis (see :func:`scripts.grid.slice_axis_from_affine`); depth is measured in-plane only.
        voxel_size_mm: voxel spacing (mm) per array axis, e.g. the NIfTI zooms; ``None`` assumes 1 mm.
        skin_mm: depth (mm) below the body surface skipped as skin.
        shell_mm: thickness (mm) of the periphery shell below the skin.
        min_region_voxels: minimum size (voxels) of a mirrored region inside a label.
        min_denominator: FF denominator threshold
            (see :func:`scripts.quantification.formulas.fat_fraction_from_water_fat`).
        relative_threshold: relative FF denominator threshold.

    Returns:
        A :class:`SwapReport`.
    """
    w, f, spacing = _checked_pair(water, fat, slice_axis, voxel_size_mm, skin_mm, shell_mm)
    # |F| + |W| is both the FF denominator and the body signal: formed once
    num, signal = water_fat_terms(w, f, denominator="abs")
    threshold = denominator_threshold(signal, min_denominator, relative_threshold)
    # in the images' memory order: every rule below is a count or a median, which do not depend on it
    ff = _guarded_ratio(num, signal, threshold, c_order=False)
    body, fill_holes = _body(body_mask, signal)
    ev = _body_evidence(ff, body, fill_holes, slice_axis, spacing, (skin_mm, skin_mm + shell_mm))

    # medians do not depend on the order of the values: the slices' values together are the volume's
    shell_all, core_all = np.concatenate(ev.shell_ff), np.concatenate(ev.core_ff)
    shell_swapped, periphery_ff, core_ff = _periphery_says_swapped(shell_all, core_all)
    fat_dom_share = ev.n_fat_dominant / ev.n_valid if ev.n_valid else float("nan")
    muscle_ff, per_label, lab = _muscle_evidence(ff, labels, min_region_voxels)

    global_swap, reasons = _global_verdict(shell_swapped, periphery_ff, core_ff, muscle_ff, lab is not None)
    swapped_slices = _swapped_slices(ev.shell_ff, ev.core_ff)
    if swapped_slices and not global_swap:
        reasons.append(f"regional swap: slices {swapped_slices} fail the periphery/core test")
    reasons.extend(_label_reasons(per_label))
    regional_swap = not global_swap and (bool(swapped_slices) or any(fl.suspected for fl in per_label.values()))
    if global_swap or regional_swap:
        logger.warning("fat-water swap suspected: %s", "; ".join(reasons))
    return SwapReport(
        global_swap=global_swap,
        regional_swap=regional_swap,
        periphery_median_ff=periphery_ff,
        core_median_ff=core_ff,
        body_fat_dominant_fraction=fat_dom_share,
        muscle_median_ff=muscle_ff,
        swapped_slices=tuple(swapped_slices),
        per_label=per_label,
        reasons=tuple(reasons),
    )
