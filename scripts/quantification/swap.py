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
    _as_float_pair,
    denominator_threshold,
    fat_fraction_from_water_fat,
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


def _in_plane_depth_mm(body: np.ndarray, slice_axis: int, voxel_size_mm: tuple[float, float, float]) -> np.ndarray:
    """In-plane Euclidean distance (mm) of each body voxel from the outside of the body, slice by slice.

    2D, not 3D, because the first and last slices of a field of view are not the body surface.
    """
    sampling = tuple(float(v) for i, v in enumerate(voxel_size_mm) if i != slice_axis)
    depth = np.zeros(body.shape, dtype=np.float64)
    for s in range(body.shape[slice_axis]):
        idx = _slice_index(slice_axis, s)
        if body[idx].any():
            depth[idx] = ndimage.distance_transform_edt(body[idx], sampling=sampling)
    return depth


def _default_body_mask(water: np.ndarray, fat: np.ndarray, slice_axis: int) -> np.ndarray:
    """Body = ``|W| + |F|`` above 10 % of its robust maximum, holes (gas, bone cortex) filled slice by slice."""
    signal = np.abs(water) + np.abs(fat)
    threshold = denominator_threshold(signal, None, 0.1)
    body = np.isfinite(signal) & (signal >= threshold)
    filled = np.zeros_like(body)
    for s in range(body.shape[slice_axis]):
        idx = _slice_index(slice_axis, s)
        filled[idx] = ndimage.binary_fill_holes(body[idx])
    return filled


def _periphery_says_swapped(ff: np.ndarray, shell: np.ndarray, core: np.ndarray) -> tuple[bool | None, float, float]:
    """Normal anatomy: the body shell (subcutaneous fat) is fatter than the interior. ``None`` if too few voxels."""
    shell_ff, core_ff = ff[shell], ff[core]
    shell_ff, core_ff = shell_ff[np.isfinite(shell_ff)], core_ff[np.isfinite(core_ff)]
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


def _label_flags(ff: np.ndarray, labels: np.ndarray, min_region_voxels: int) -> dict[int, LabelSwapFlags]:
    """Per-label asymmetry and mirrored-region rules (see :func:`detect_fat_water_swap`)."""
    # muscles only: the vertebral context (9-14) is fatty marrow, which no swap rule describes
    values = [int(v) for v in np.unique(labels) if 0 < v < NUM_CLASSES]
    # each label is worked on inside its bounding box: a muscle fills a few percent of the volume, and whole-volume
    # masks and component labelling per label cost seconds per subject at the reference geometry
    boxes = ndimage.find_objects(np.asarray(labels, dtype=np.int64)) if values else []
    crops: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    medians: dict[int, float] = {}
    for v in values:
        box = boxes[v - 1]
        ff_box = ff[box]
        in_label = (labels[box] == v) & np.isfinite(ff_box)
        crops[v] = ff_box, in_label
        sel = ff_box[in_label]
        medians[v] = float(np.median(sel)) if sel.size else float("nan")
    flags: dict[int, LabelSwapFlags] = {}
    for v in values:
        ff_box, in_label = crops[v]
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
    """Water and fat as float64 3D arrays and the voxel spacing (mm), or a ``ValueError`` naming the bad argument."""
    w, f = _as_float_pair(water, fat, "water", "fat")
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


def _body(body_mask: np.ndarray | None, water: np.ndarray, fat: np.ndarray, slice_axis: int) -> np.ndarray:
    """The given body mask as booleans (same shape as ``water`` or ``ValueError``), or the default body mask."""
    if body_mask is None:
        return _default_body_mask(water, fat, slice_axis)
    body = np.asarray(body_mask).astype(bool)
    if body.shape != water.shape:
        raise ValueError(f"body_mask shape {body.shape} differs from water shape {water.shape}")
    return body


def _muscle_evidence(
    ff: np.ndarray, valid: np.ndarray, labels: np.ndarray | None, min_region_voxels: int
) -> tuple[float, dict[int, LabelSwapFlags], np.ndarray | None]:
    """``(median FF over all labelled voxels, per-label flags, label array)``; NaN, empty and None without labels."""
    if labels is None:
        return float("nan"), {}, None
    lab = np.asarray(labels)
    if lab.shape != ff.shape:
        raise ValueError(f"labels shape {lab.shape} differs from water shape {ff.shape}")
    in_muscle = ff[(lab > 0) & (lab < NUM_CLASSES) & valid]  # muscles, not the vertebral context
    muscle_ff = float(np.median(in_muscle)) if in_muscle.size else float("nan")
    return muscle_ff, _label_flags(ff, lab, min_region_voxels), lab


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


def _swapped_slices(ff: np.ndarray, shell: np.ndarray, core: np.ndarray, slice_axis: int) -> list[int]:
    """Indices of the slices along ``slice_axis`` whose own periphery/core test says swapped."""
    swapped: list[int] = []
    for s in range(ff.shape[slice_axis]):
        idx = _slice_index(slice_axis, s)
        says, _, _ = _periphery_says_swapped(ff[idx], shell[idx], core[idx])
        if says:
            swapped.append(s)
    return swapped


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
    ff = fat_fraction_from_water_fat(w, f, min_denominator, relative_threshold, denominator="abs")
    valid = np.isfinite(ff)
    body = _body(body_mask, w, f, slice_axis)
    depth = _in_plane_depth_mm(body, slice_axis, spacing)
    shell = body & (depth > skin_mm) & (depth <= skin_mm + shell_mm)
    core = body & (depth > skin_mm + shell_mm)

    shell_swapped, periphery_ff, core_ff = _periphery_says_swapped(ff, shell, core)
    body_ff = ff[body & valid]
    fat_dom_share = float(np.mean(body_ff > 0.5)) if body_ff.size else float("nan")
    muscle_ff, per_label, lab = _muscle_evidence(ff, valid, labels, min_region_voxels)

    global_swap, reasons = _global_verdict(shell_swapped, periphery_ff, core_ff, muscle_ff, lab is not None)
    swapped_slices = _swapped_slices(ff, shell, core, slice_axis)
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
