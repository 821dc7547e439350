"""Per-muscle fat-fraction (FF) statistics of one subject: the rows of the FF table and their per-slice profiles.

:func:`quantify_muscles` turns a label map and an FF map (fraction 0-1, NaN = excluded voxel) into two long-format
tables: one row per label (muscle and side) plus one L/R-mean row per muscle, and one row per label and axial
slice. The label map reaches the FF grid through the affines (:func:`scripts.grid.map_labels_to_grid`, nearest
neighbour), never by array index. The default per-muscle value, ``ff_mean_pct``, is the plain mean of
``F / (F + W)`` over the whole label with no erosion, as in the paper this bundle reproduces (BMC Medical Imaging
2026, doi 10.1186/s12880-026-02329-9); an eroded-core mean, the median, the SD and the quartiles sit beside it.

The columns and units are in :mod:`scripts.quantification.columns`, the status and flag rules in
:mod:`scripts.quantification.status`, the writers in :mod:`scripts.quantification.tables`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage
from scripts.grid import check_same_grid, map_labels_to_grid, slice_axis_from_affine, truncation_flags
from scripts.label_values import present_values
from scripts.labels import MUSCLES, NUM_CLASSES, VERTEBRAL_LABELS, label_value, muscle_and_side
from scripts.quantification.columns import (
    _AGG_LABEL,
    _AGG_LR_MEAN,
    _MEAN_SIDE,
    _STAT_COLUMNS,
    _SWAP_COLUMNS,
    PROVENANCE_KEYS,
    SLICE_COLUMNS,
    TABLE_COLUMNS,
    UNITS,
    _typed_table,
)
from scripts.quantification.profiles import _slice_profile_rows
from scripts.quantification.status import _finish_flags, _status, _swap_fields, _worse_status
from scripts.quantification.swap import SwapReport

__all__ = [
    "QuantResult",
    "quantify_muscles",
    "trim_fat_border",
]

logger = logging.getLogger(__name__)

#: A fraction map has P95 <= 1.05 even with noisy edges; P95 above 1.5 means percent or permille was passed.
_MAX_FRACTION_P95 = 1.5


@dataclass
class QuantResult:
    """Output of :func:`quantify_muscles`.

    Attributes:
        table: one row per label (8 rows: 4 muscles x left/right) then one L/R-mean row per muscle (side
            ``"mean"``); columns :data:`scripts.quantification.columns.TABLE_COLUMNS` plus any extra provenance keys.
        slices: one row per label and axial slice on which the label has voxels; columns
            :data:`scripts.quantification.columns.SLICE_COLUMNS`.
        meta: provenance, units, the FF grid, the label mapping, the erosion and aggregation rules (JSON-ready).
    """

    table: pd.DataFrame
    slices: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _FFGrid:
    """The geometry of the FF grid that the statistics use.

    Attributes:
        affine: 4x4 voxel-to-world (RAS, mm) affine.
        shape: spatial shape ``(I, J, K)``.
        slice_axis: axial voxel axis (:func:`scripts.grid.slice_axis_from_affine`).
        spacing: ``(3,)`` voxel spacing (mm) per array axis.
        voxel_ml: voxel volume (mL).
        pixel_cm2: in-plane voxel area (cm^2) of an axial slice.
        z_of_slice: ``(shape[slice_axis],)`` world z (mm) of every axial slice at the in-plane centre.
    """

    affine: np.ndarray
    shape: tuple[int, ...]
    slice_axis: int
    spacing: np.ndarray
    voxel_ml: float
    pixel_cm2: float
    z_of_slice: np.ndarray


def _ff_grid(affine: np.ndarray, shape: tuple[int, ...], slice_axis: int) -> _FFGrid:
    """Spacing, voxel volume, pixel area and slice positions of the FF grid (volumes from the affine's determinant)."""
    plane_axes = [a for a in range(3) if a != slice_axis]
    cols = affine[:3, :3]
    return _FFGrid(
        affine=affine,
        shape=shape,
        slice_axis=slice_axis,
        spacing=np.linalg.norm(cols, axis=0),
        voxel_ml=abs(float(np.linalg.det(cols))) / 1000.0,
        pixel_cm2=float(np.linalg.norm(np.cross(cols[:, plane_axes[0]], cols[:, plane_axes[1]]))) / 100.0,
        z_of_slice=_slice_z_mm(affine, shape, slice_axis),
    )


def _in_plane_structure(slice_axis: int, spacing: np.ndarray, erosion_mm: float | None) -> np.ndarray:
    """3D structuring element that is flat along ``slice_axis``: a 2D erosion on every axial slice.

    ``None`` gives the 4-connected cross (1 voxel in-plane, SciPy's default 2D element). A radius in mm gives the
    in-plane ellipse ``(a s_a)^2 + (b s_b)^2 <= r^2`` in voxel offsets ``(a, b)``, so anisotropic pixels erode the
    same physical depth on both axes; a radius below the pixel size erodes nothing on that axis.
    """
    plane_axes = [a for a in range(3) if a != slice_axis]
    if erosion_mm is None:
        plane = ndimage.generate_binary_structure(2, 1)
    else:
        s_a, s_b = float(spacing[plane_axes[0]]), float(spacing[plane_axes[1]])
        ra, rb = int(math.floor(erosion_mm / s_a + 1e-9)), int(math.floor(erosion_mm / s_b + 1e-9))
        a, b = np.meshgrid(np.arange(-ra, ra + 1), np.arange(-rb, rb + 1), indexing="ij")
        plane = (a * s_a) ** 2 + (b * s_b) ** 2 <= erosion_mm**2 + 1e-9
    return np.expand_dims(plane, axis=slice_axis)


def _slice_z_mm(affine: np.ndarray, shape: tuple[int, ...], slice_axis: int) -> np.ndarray:
    """World z (RAS, mm) of every axial slice, taken at the in-plane centre of the grid (oblique slices tilt)."""
    n = shape[slice_axis]
    vox = np.tile((np.asarray(shape[:3], dtype=np.float64) - 1.0) / 2.0, (n, 1))
    vox[:, slice_axis] = np.arange(n)
    return affine[2, :3] @ vox.T + affine[2, 3]


def _check_ff_fraction(values: np.ndarray) -> None:
    finite = values[np.isfinite(values)]
    if finite.size and float(np.percentile(finite, 95)) > _MAX_FRACTION_P95:
        raise ValueError(
            f"ff must be a fraction 0-1, but the 95th percentile inside the labels is {np.percentile(finite, 95):.4g}; "
            "convert a percent or permille map with scripts.quantification.ff_scale.normalise_ff_map first"
        )


def _erosion_text(erosion_mm: float | None) -> str:
    return "1 voxel in-plane" if erosion_mm is None else f"{erosion_mm:g} mm in-plane"


def trim_fat_border(
    label: np.ndarray, ff: np.ndarray, slice_axis: int, trim_ff: float = 0.7, fat_ff: float = 0.8
) -> np.ndarray:
    """Drop the label's border voxels that are mostly fat: the partial-volume rule a reader applies at a fascia.

    A labelled voxel is removed when its FF exceeds ``trim_ff`` and it touches, in-plane (4-connected), an
    unlabelled voxel of fat (FF above ``fat_ff``). With muscle at FF ~0.1-0.3 and fat at ~0.9, such a voxel holds
    less than a third of muscle. One pass only: interior fat (marbling) is never touched, and neither is a border
    against non-fat tissue. Why: the network works on a 2x2x4 mm grid, so its boundary on the native grid is
    uncertain by about a voxel, and the voxels it wrongly includes on the fat side are the ones that move a muscle's
    mean FF (on held-out phantoms, +0.9 pp on average before this step).

    Args:
        label: 3D label map on the FF grid (0 = background).
        ff: 3D FF fraction map (NaN = excluded, never counted as fat).
        slice_axis: axial voxel axis of the grid.
        trim_ff: FF above which a border voxel next to fat is removed.
        fat_ff: FF above which an unlabelled voxel counts as fat.

    Returns:
        A new label map with the trimmed voxels set to 0.
    """
    if not 0.0 < trim_ff <= fat_ff <= 1.0:
        raise ValueError(f"need 0 < trim_ff <= fat_ff <= 1, got trim_ff={trim_ff}, fat_ff={fat_ff}")
    out = label.copy()
    box = _labelled_box(label, slice_axis)
    if box is None:
        return out
    # a labelled voxel's in-plane neighbours all lie in the labels' box grown by one pixel in-plane, so the rule
    # worked in that box is the rule on the whole grid (outside the grid counts as "not fat" in both)
    lab = label[box]
    f = np.nan_to_num(np.asarray(ff[box], dtype=np.float32), nan=0.0)
    fat_outside = (lab == 0) & (f > fat_ff)
    near_fat = ndimage.binary_dilation(fat_outside, structure=_in_plane_structure(slice_axis, np.ones(3), None))
    out[box][(lab != 0) & near_fat & (f > trim_ff)] = 0
    return out


def _labelled_box(label: np.ndarray, slice_axis: int) -> tuple[slice, ...] | None:
    """Bounding box of the labelled voxels, grown by one voxel along the two in-plane axes; ``None`` without any."""
    labelled = label != 0
    box = []
    for axis in range(label.ndim):
        present = np.flatnonzero(labelled.any(axis=tuple(a for a in range(label.ndim) if a != axis)))
        if present.size == 0:
            return None
        grow = 0 if axis == slice_axis else 1
        box.append(slice(max(int(present[0]) - grow, 0), int(present[-1]) + 1 + grow))
    return tuple(box)


def _stats_pct(values: np.ndarray) -> dict[str, float]:
    """Mean, median, SD (ddof 0), P25 and P75 of FF fractions, in percent; NaN for no value."""
    if values.size == 0:
        return dict.fromkeys(_STAT_COLUMNS[:-1], math.nan)
    p25, p50, p75 = np.percentile(values, [25.0, 50.0, 75.0])
    return {
        "ff_mean_pct": 100.0 * float(np.mean(values)),
        "ff_median_pct": 100.0 * float(p50),
        "ff_sd_pct": 100.0 * float(np.std(values)),
        "ff_p25_pct": 100.0 * float(p25),
        "ff_p75_pct": 100.0 * float(p75),
    }


def _checked_provenance(provenance: Mapping[str, Any]) -> dict[str, str]:
    """The provenance as text columns (``None`` -> ``"none"``), or ``ValueError`` for a missing or clashing key."""
    missing_keys = [k for k in PROVENANCE_KEYS if k not in provenance]
    if missing_keys:
        raise ValueError(
            f"provenance lacks {missing_keys}; every row must say how its FF was made "
            f"(required keys: {PROVENANCE_KEYS})"
        )
    clash = sorted(set(provenance) & (set(TABLE_COLUMNS) - set(PROVENANCE_KEYS)))
    if clash:
        raise ValueError(f"provenance keys {clash} clash with table columns")
    return {str(k): ("none" if v is None else str(v)) for k, v in provenance.items()}


def _trim_text(border_trim_ff: float | None) -> str:
    """The ``border_trim`` column: the rule that left border voxels out, or ``"none"``."""
    if border_trim_ff is None:
        return "none"
    return f"border voxels with FF > {border_trim_ff:g} touching unlabelled fat (FF > 0.8) in-plane left out"


def _core_ff(idx: tuple[np.ndarray, ...], ffa: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Valid FF values of the label's core: its voxels ``idx`` eroded in-plane by ``structure``.

    Args:
        idx: voxel indices of the label on the FF grid, one ``(N,)`` array per axis (``N > 0``).
        ffa: 3D FF map (fraction, NaN = excluded).
        structure: 3D structuring element flat along the slice axis (:func:`_in_plane_structure`).

    Returns:
        ``(M,)`` finite FF values of the eroded voxels.
    """
    lo = [int(c.min()) for c in idx]
    hi = [int(c.max()) + 1 for c in idx]
    # pad the bounding box by one voxel so the erosion sees background around the label
    box = np.zeros([h - lo_ + 2 for lo_, h in zip(lo, hi)], dtype=bool)
    box[tuple(c - lo_ + 1 for c, lo_ in zip(idx, lo))] = True
    core = ndimage.binary_erosion(box, structure=structure)
    core_idx = tuple(c + lo_ - 1 for c, lo_ in zip(np.nonzero(core), lo))
    core_ff = np.asarray(ffa[core_idx], dtype=np.float64)
    return core_ff[np.isfinite(core_ff)]


def _label_row(
    v: int,
    idx: tuple[np.ndarray, ...],
    ffa: np.ndarray,
    grid: _FFGrid,
    structure: np.ndarray,
    subject: str | None,
    min_volume_ml: float,
) -> dict[str, Any]:
    """Statistics, volume, counts and slice range of label ``v`` from its voxels ``idx`` on the FF grid.

    The row also holds a ``too_small`` key, read by the status and flag rules and then dropped.
    """
    muscle, side = muscle_and_side(v)
    n_vox = int(idx[0].size)
    vox_ff = np.asarray(ffa[idx], dtype=np.float64) if n_vox else np.empty(0)
    valid = np.isfinite(vox_ff)
    row: dict[str, Any] = {"subject": subject, "label": v, "muscle": muscle, "side": side, "aggregation": _AGG_LABEL}
    too_small = 0 < n_vox * grid.voxel_ml < min_volume_ml
    row["too_small"] = too_small
    row.update(_stats_pct(vox_ff[valid] if not too_small else np.empty(0)))
    core_mean, n_core = math.nan, 0
    first: int | None = None
    last: int | None = None
    if n_vox:
        core_ff = _core_ff(idx, ffa, structure)
        n_core = int(core_ff.size)
        core_mean = 100.0 * float(np.mean(core_ff)) if n_core and not too_small else math.nan
        s_idx = idx[grid.slice_axis]
        first, last = int(s_idx.min()), int(s_idx.max())
    row.update(
        {
            "ff_core_mean_pct": core_mean,
            "volume_ml": n_vox * grid.voxel_ml,
            "n_voxels": n_vox,
            "n_excluded_voxels": int(n_vox - valid.sum()),
            "n_core_voxels": n_core,
            "slice_first": first,
            "slice_last": last,
            "z_first_mm": float(grid.z_of_slice[first]) if first is not None else math.nan,
            "z_last_mm": float(grid.z_of_slice[last]) if last is not None else math.nan,
        }
    )
    return row


def _truncation_fields(
    v: int, n_voxels: int, trunc_ff: dict[int, dict[str, bool]], trunc_own: dict[int, dict[str, bool]]
) -> dict[str, bool]:
    """Truncation of label ``v``: at an end slice of the FF grid or of its own grid; never for an absent label."""
    return {
        key: bool(trunc_ff[v][key] or trunc_own[v][key]) and n_voxels > 0
        for key in ("truncated_inferior", "truncated_superior")
    }


def _meta(
    subject: str | None,
    prov: dict[str, str],
    erosion_mm: float | None,
    grid: _FFGrid,
    resampled: bool,
    swap_report: SwapReport | None,
) -> dict[str, Any]:
    """The JSON ``meta`` block of :class:`QuantResult`: provenance, units, the FF grid and every rule applied."""
    return {
        "subject": subject,
        "provenance": prov,
        "units": dict(UNITS),
        "statistic_default": "ff_mean_pct: plain mean of F/(F+W) over the whole label, excluded (NaN) voxels left "
        "out, no erosion (the paper's statistic)",
        "erosion": {
            "ff_mean_pct": "none",
            "ff_core_mean_pct": _erosion_text(erosion_mm),
            "core_rule": "2D binary erosion of every axial slice; outside the field of view is background",
        },
        "aggregation": {
            "label": "statistics over the voxels of one label",
            "lr_mean": "FF columns: mean of the left and right values (NaN unless both exist), the "
            "paper's convention; counts and volume: sum of both sides; flags: either side",
        },
        "percentile_method": "numpy.percentile, linear interpolation; SD with ddof 0",
        "ff_grid": {
            "shape": [int(s) for s in grid.shape],
            "affine": grid.affine.tolist(),
            "voxel_size_mm": [float(s) for s in grid.spacing],
            "slice_axis": grid.slice_axis,
            "voxel_volume_ml": grid.voxel_ml,
            "pixel_area_cm2": grid.pixel_cm2,
        },
        "label_mapping": (
            "nearest neighbour through the affines (scripts.grid.map_labels_to_grid)"
            if resampled
            else "label map on the FF grid (same grid within tolerance)"
        ),
        "swap_checked": swap_report is not None,
        "swap_reasons": list(swap_report.reasons) if swap_report is not None else [],
    }


def _lr_mean_rows(rows: list[dict[str, Any]], subject: str | None, z_of_slice: np.ndarray) -> list[dict[str, Any]]:
    """One L/R-mean row per muscle from the two side rows (see :func:`quantify_muscles`)."""
    by_value = {r["label"]: r for r in rows}
    out: list[dict[str, Any]] = []
    for muscle in MUSCLES:
        left, right = by_value[label_value(muscle, "left")], by_value[label_value(muscle, "right")]
        row: dict[str, Any] = {
            "subject": subject,
            "label": None,
            "muscle": muscle,
            "side": _MEAN_SIDE,
            "aggregation": _AGG_LR_MEAN,
        }
        for c in _STAT_COLUMNS:
            row[c] = 0.5 * (left[c] + right[c])  # NaN unless both sides have a value
        for c in ("volume_ml", "n_voxels", "n_excluded_voxels", "n_core_voxels", "n_trimmed_voxels"):
            row[c] = left[c] + right[c]
        firsts = [r["slice_first"] for r in (left, right) if r["slice_first"] is not None]
        lasts = [r["slice_last"] for r in (left, right) if r["slice_last"] is not None]
        row["slice_first"] = min(firsts) if firsts else None
        row["slice_last"] = max(lasts) if lasts else None
        row["z_first_mm"] = float(z_of_slice[row["slice_first"]]) if firsts else math.nan
        row["z_last_mm"] = float(z_of_slice[row["slice_last"]]) if lasts else math.nan
        for c in ("truncated_inferior", "truncated_superior"):
            row[c] = bool(left[c] or right[c])
        for c in _SWAP_COLUMNS:
            lv, rv = left[c], right[c]
            row[c] = pd.NA if lv is pd.NA or rv is pd.NA else bool(lv or rv)
        row["status"] = _worse_status(left["status"], right["status"])
        flags = [f"{side}:{f}" for side, r in (("left", left), ("right", right)) for f in r["flags"].split(";") if f]
        row["flags"] = ";".join(flags)
        out.append(row)
    return out


def quantify_muscles(
    label: np.ndarray,
    label_affine: np.ndarray,
    ff: np.ndarray,
    ff_affine: np.ndarray,
    provenance: Mapping[str, Any],
    erosion_mm: float | None = None,
    subject: str | None = None,
    swap_report: SwapReport | None = None,
    min_volume_ml: float = 0.0,
    border_trim_ff: float | None = None,
) -> QuantResult:
    """Per-muscle FF statistics, volumes, slice ranges and per-slice profiles of one subject.

    The label map is mapped onto the FF grid by nearest neighbour through both affines, then, per label value of
    :data:`scripts.labels.LABELS` (all 8 are always reported):

    - ``ff_mean_pct``: plain mean of the FF over the whole label, excluded (NaN) voxels left out, no erosion: the
      paper's statistic and the value to compare with the normative reference.
    - ``ff_median_pct``, ``ff_sd_pct`` (population SD, ddof 0, of the voxel values), ``ff_p25_pct`` and
      ``ff_p75_pct`` (NumPy ``percentile``, linear interpolation) over the same voxels.
    - ``ff_core_mean_pct``: mean over the label eroded in-plane only, i.e. a 2D erosion of every axial slice
      (``erosion_mm=None``: by 1 voxel with the 4-connected cross; otherwise by an in-plane ellipse of that
      radius in mm). The erosion is 2D because the thick axial slices of a Dixon volume would lose whole end
      slices in 3D. Voxels outside the field of view count as background.
    - ``volume_ml`` = ``n_voxels`` x voxel volume of the FF grid (excluded voxels are still muscle, so they count);
      ``n_excluded_voxels``: label voxels with NaN FF; ``n_core_voxels``: eroded voxels with a valid FF.
    - ``slice_first``/``slice_last``: lowest/highest axial index of the FF grid holding the label, with the world
      z of those slices (``z_first_mm``/``z_last_mm``; ``slice_first`` is inferior only when z grows with the index).
    - ``truncated_inferior``/``truncated_superior``: the label touches the inferior/superior end slice of the FF grid
      or of its own grid (:func:`scripts.grid.truncation_flags`): the muscle may be cut off, so
      its volume is
      partial (FF is less affected).
    - swap columns (from ``swap_report``, computed on the FF grid with the mapped labels): ``swap_global``,
      ``swap_asymmetric`` and ``swap_region`` (per-label rules), ``swap_slices`` (the label spans a slice flagged
      as swapped), ``swap_suspected`` (any of them); empty (NA) without a report, because unchecked is not "no swap".
    - ``status``: ``missing`` (no voxel: every FF value NaN, ``n_voxels`` 0, never 0 %), ``no_valid_ff`` (every
      voxel excluded), ``too_small`` (fewer than ``min_volume_ml``: FF columns NaN, volume kept), ``swap_suspected``,
      ``truncated`` or ``ok``, in that priority; ``flags`` lists every condition (semicolon-separated), including
      ``core_empty`` and ``volume_asymmetry`` (one side under half the other's volume: a likely segmentation
      failure or a one-sided truncation; review).

    L/R-mean rows (side ``"mean"``, ``aggregation`` ``"lr_mean"``, label NA), the paper's convention: each FF column
    is the mean of the left and right values (NaN unless both sides have one; the median/SD/quartile columns are
    means of the per-side statistics, not pooled statistics); counts and volume are the sum of both sides; slice
    range the union; truncation and swap flags are true if true on either side; status is the worse of the sides.

    Args:
        label: 3D label map (values of :mod:`scripts.labels`) on any grid.
        label_affine: 4x4 voxel-to-world (RAS, mm) affine of ``label``.
        ff: 3D FF map as a fraction 0-1 (float), NaN where excluded (near-zero denominator); the grid of the
            statistics.
        ff_affine: 4x4 voxel-to-world (RAS, mm) affine of ``ff``.
        provenance: how the FF map was made; must hold :data:`scripts.quantification.columns.PROVENANCE_KEYS`
            (``ff_method``, ``ff_source``, ``ff_scale_detected``, ``assumption``; ``None`` values are written as
            ``"none"``). Extra keys become extra columns too.
        erosion_mm: in-plane erosion radius (mm) of the core mean; ``None`` erodes 1 voxel in-plane.
        subject: subject identifier written in the ``subject`` column.
        swap_report: optional :func:`scripts.quantification.swap.detect_fat_water_swap` result on the FF grid.
        min_volume_ml: a label side smaller than this (but not empty) gets status ``too_small`` and no FF: a few
            stray voxels say nothing about a muscle (a failed segmentation gave 1 voxel and "4 %" for an iliacus
            of 11 mL and 25 % FF). One axial slice of the smallest muscle here (QL, ~3 cm^2 x 3 mm) is ~1 mL, the
            bundle's setting (inference.json ``min_muscle_volume_ml``); the default 0 keeps every label.
        border_trim_ff: with a value, border voxels above this FF that touch unlabelled fat are left out of every
            statistic and of the volume (:func:`trim_fat_border`; the bundle uses 0.7); ``n_trimmed_voxels`` counts
            them and ``border_trim`` says the rule. ``None`` (default): every label voxel counts, the paper's rule.

    Returns:
        A :class:`QuantResult` with ``table``, ``slices`` and ``meta``.

    Raises:
        ValueError: non-3D arrays, a bad affine, a missing provenance key, a provenance key that clashes with a
            table column, a negative ``erosion_mm``, or an FF map that is not a fraction (P95 inside labels > 1.5).

    Example:
        >>> import numpy as np
        >>> lab = np.zeros((6, 6, 3), np.uint8); lab[1:5, 1:5, :] = 1
        >>> ff = np.full(lab.shape, 0.2, np.float32)
        >>> prov = dict(ff_method="water_fat", ff_source="test", ff_scale_detected="fraction", assumption="none")
        >>> res = quantify_muscles(lab, np.eye(4), ff, np.eye(4), prov)
        >>> round(float(res.table.loc[0, "ff_mean_pct"]), 3), int(res.table.loc[0, "n_core_voxels"])
        (20.0, 12)
    """
    lab = np.asarray(label)
    # float32 FF maps are read as they are (a float64 copy of the volume cost more than the statistics); every value
    # taken from it is widened to float64 (exactly) before any sum, so the statistics are the float64 ones
    ffa = np.asarray(ff)
    if not np.issubdtype(ffa.dtype, np.floating):
        ffa = ffa.astype(np.float64)
    if lab.ndim != 3 or ffa.ndim != 3:
        raise ValueError(f"label and ff must be 3D, got shapes {lab.shape} and {ffa.shape}")
    if erosion_mm is not None and (not math.isfinite(erosion_mm) or erosion_mm < 0):
        raise ValueError(f"erosion_mm must be None or a finite value >= 0 (mm), got {erosion_mm}")
    prov = _checked_provenance(provenance)

    aff = np.asarray(ff_affine, dtype=np.float64)
    mapped = map_labels_to_grid(lab, label_affine, ffa.shape, aff)
    try:
        check_same_grid(lab.shape, label_affine, ffa.shape, aff)
        resampled = False
    except ValueError:
        resampled = True
    grid = _ff_grid(aff, ffa.shape, slice_axis_from_affine(aff))
    untrimmed = mapped
    if border_trim_ff is not None:
        mapped = trim_fat_border(mapped, ffa, grid.slice_axis, trim_ff=border_trim_ff)
    trimmed_per_label = np.bincount(untrimmed[mapped != untrimmed].ravel(), minlength=NUM_CLASSES)
    structure = _in_plane_structure(grid.slice_axis, grid.spacing, erosion_mm)
    values = list(range(1, NUM_CLASSES))
    trunc_ff = truncation_flags(mapped, values, aff)
    trunc_own = truncation_flags(lab, values, np.asarray(label_affine, dtype=np.float64))

    labelled = np.flatnonzero(mapped)
    lab_vals = mapped.ravel()[labelled]
    _check_ff_fraction(np.asarray(ffa.ravel()[labelled], dtype=np.float64))
    coords_all = np.unravel_index(labelled, ffa.shape)
    unknown = sorted(set(present_values(lab_vals)) - set(values) - set(VERTEBRAL_LABELS))
    if unknown:
        logger.warning("label values %s are not muscles of scripts.labels and are ignored", unknown)

    rows: list[dict[str, Any]] = []
    slice_rows: list[dict[str, Any]] = []
    for v in values:
        sel = lab_vals == v
        idx = tuple(c[sel] for c in coords_all)
        row = _label_row(v, idx, ffa, grid, structure, subject, min_volume_ml)
        if row["n_voxels"]:
            values = np.asarray(ffa[idx], dtype=np.float64)
            slice_rows.extend(_slice_profile_rows(row, idx[grid.slice_axis], values, grid.z_of_slice, grid.pixel_cm2))
        row.update(_truncation_fields(v, row["n_voxels"], trunc_ff, trunc_own))
        row.update(_swap_fields(v, row["slice_first"], row["slice_last"], swap_report))
        n_valid = row["n_voxels"] - row["n_excluded_voxels"]
        truncated = row["truncated_inferior"] or row["truncated_superior"]
        row["status"] = _status(row["n_voxels"], n_valid, truncated, row["swap_suspected"], row["too_small"])
        row["n_trimmed_voxels"] = int(trimmed_per_label[v])
        rows.append(row)
    _finish_flags(rows)

    rows.extend(_lr_mean_rows(rows, subject, grid.z_of_slice))
    for row in rows:
        row.update(prov)
        row["erosion"] = "none"
        row["core_erosion"] = _erosion_text(erosion_mm)
        row["border_trim"] = _trim_text(border_trim_ff)
    extra = [k for k in prov if k not in PROVENANCE_KEYS]
    table = _typed_table(pd.DataFrame(rows, columns=[*TABLE_COLUMNS, *extra]))
    slices = pd.DataFrame(slice_rows, columns=list(SLICE_COLUMNS))
    slices = slices.astype({"label": "int64", "slice": "int64", "n_voxels": "int64", "n_excluded_voxels": "int64"})
    return QuantResult(table=table, slices=slices, meta=_meta(subject, prov, erosion_mm, grid, resampled, swap_report))
