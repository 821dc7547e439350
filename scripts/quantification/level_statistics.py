"""Per-level FF, volume and cross-section area of every muscle side: the rows of the per-level table.

The levels come from :func:`scripts.quantification.levels.assign_levels` (world z bounds, RAS mm). For FF and voxel
counts, each muscle voxel of the FF grid belongs to the level whose ``[z_low, z_high)`` holds its centre's world z, so
the split follows the axial planes whatever the storage orientation. Volume and CSA weight each voxel by the share of
its slab (centre +- half the slice step, in world z) inside the level, so the volumes of adjacent levels add up to the
muscle's and follow a bound smoothly instead of in whole slices. The conventions are those of the per-muscle table
(:func:`scripts.quantification.statistics.quantify_muscles`): the label map reaches the FF grid through the affines
(nearest neighbour), the FF map is a fraction 0-1 with NaN for excluded voxels, the border-trim rule
(:func:`scripts.quantification.statistics.trim_fat_border`) leaves the same voxels out, and a level side below
``min_volume_ml`` is ``too_small`` with no FF. ``ff_mean_pct`` and ``ff_median_pct`` are the plain mean and median over
the level side's valid voxels, no erosion.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scripts.grid import map_labels_to_grid, slice_axis_from_affine
from scripts.labels import MUSCLE_VALUES, muscle_and_side
from scripts.quantification.levels import LevelAssignment, field_of_view_z
from scripts.quantification.statistics import trim_fat_border

__all__ = ["LEVEL_COLUMNS", "LEVEL_UNITS", "level_statistics"]

#: columns of the per-level table, in order
LEVEL_COLUMNS: tuple[str, ...] = (
    "subject",
    "level",
    "muscle",
    "side",
    "label",
    "ff_mean_pct",
    "ff_median_pct",
    "volume_ml",
    "csa_mean_cm2",
    "csa_mid_cm2",
    "n_voxels",
    "n_excluded_voxels",
    "n_trimmed_voxels",
    "status",
    "level_z_low_mm",
    "level_z_high_mm",
    "level_coverage",
    "level_status",
    "level_reasons",
    "level_anchor",
    "boundary_rule",
)
#: column -> unit and rule, for the JSON
LEVEL_UNITS: dict[str, str] = {
    "ff_mean_pct": "percent; plain mean of F/(F+W) over the level side's valid voxels, no erosion",
    "ff_median_pct": "percent; median over the same voxels",
    "volume_ml": "mL; label voxels (valid FF or not) x voxel volume x the share of each voxel's slab inside the level",
    "csa_mean_cm2": "cm^2; volume in the level / the level's height inside the field of view (0 where absent)",
    "csa_mid_cm2": "cm^2; area at the level's mid-plane, interpolated between the two nearest slices (NaN outside FOV)",
    "level_z_low_mm": "mm, world z (RAS, superior +) of the level's caudal bound",
    "level_z_high_mm": "mm, world z of the level's cranial bound",
    "level_coverage": "0-1, share of the level's cranio-caudal extent inside the field of view",
    "level_anchor": "what the level names stand on: sacrum (counted up from it) or stated lowest body L1-L5",
}
#: a fraction map has P95 <= 1.05 even with noisy edges (as in the per-muscle statistics)
_MAX_FRACTION_P95 = 1.5


def _status(n_voxels: int, n_valid: int, too_small: bool) -> str:
    if n_voxels == 0:
        return "missing"
    if too_small:
        return "too_small"
    return "no_valid_ff" if n_valid == 0 else "ok"


def _row(
    values: np.ndarray, z: np.ndarray, ffv: np.ndarray, level, v: int, geom: dict[str, float], min_volume_ml: float
) -> dict:
    """One level side: ``values``/``z``/``ffv`` are the label, world z and FF of every muscle voxel."""
    mine = values == v
    sel = mine & (z >= level.z_low) & (z < level.z_high)
    n = int(sel.sum())
    f = ffv[sel]
    valid = f[np.isfinite(f)]
    step = geom["step"]
    # Why weights: a 4-5 mm slice that straddles a bound belongs partly to each level; counting it whole by its
    # centre moves a level's volume in steps of a slice (12-15 % of a 34 mm level) for a bound shifted by 1 mm.
    zm = z[mine]
    share = (np.minimum(zm + 0.5 * step, level.z_high) - np.maximum(zm - 0.5 * step, level.z_low)) / step
    volume = float(np.clip(share, 0.0, 1.0).sum()) * geom["voxel_ml"]
    too_small = 0 < volume < min_volume_ml
    use = valid if not too_small else np.empty(0)
    inside_cm = max(0.0, min(level.z_high, geom["fov_high"]) - max(level.z_low, geom["fov_low"])) / 10.0
    mid = level.z_mid
    if geom["fov_low"] <= mid <= geom["fov_high"]:
        # linear interpolation between the two slices around the mid-plane, renormalised where one of them lies
        # outside the field of view
        centres = np.arange(geom["fov_low"] + 0.5 * step, geom["fov_high"], step)
        norm = float(np.clip(1.0 - np.abs(centres - mid) / step, 0.0, None).sum())
        weight = float(np.clip(1.0 - np.abs(zm - mid) / step, 0.0, None).sum())
        csa_mid = weight / norm * geom["voxel_ml"] / (step / 10.0) if norm > 0 else math.nan
    else:
        csa_mid = math.nan
    muscle, side = muscle_and_side(v)
    return {
        "level": level.name,
        "muscle": muscle,
        "side": side,
        "label": v,
        "ff_mean_pct": 100.0 * float(np.mean(use)) if use.size else math.nan,
        "ff_median_pct": 100.0 * float(np.median(use)) if use.size else math.nan,
        "volume_ml": volume,
        "csa_mean_cm2": volume / inside_cm if inside_cm > 0 else math.nan,
        "csa_mid_cm2": csa_mid,
        "n_voxels": n,
        "n_excluded_voxels": int(n - valid.size),
        "status": _status(n, int(valid.size), too_small),
        "level_z_low_mm": level.z_low,
        "level_z_high_mm": level.z_high,
        "level_coverage": level.coverage,
        "level_status": level.status,
    }


def level_statistics(
    label: np.ndarray,
    label_affine: np.ndarray,
    ff: np.ndarray,
    ff_affine: np.ndarray,
    assignment: LevelAssignment,
    subject: str | None = None,
    min_volume_ml: float = 0.0,
    border_trim_ff: float | None = None,
) -> pd.DataFrame:
    """FF, volume and cross-section area of every muscle side in every level.

    Args:
        label: 3D label map (muscles 1-8 are measured; other values are ignored) on any grid.
        label_affine: 4x4 voxel-to-world (RAS, mm) affine of ``label``.
        ff: 3D FF map as a fraction 0-1, NaN where excluded; the grid of the statistics.
        ff_affine: 4x4 voxel-to-world (RAS, mm) affine of ``ff``.
        assignment: the levels (:func:`scripts.quantification.levels.assign_levels`).
        subject: written in the ``subject`` column.
        min_volume_ml: a level side smaller than this (but not empty) is ``too_small`` and gets no FF.
        border_trim_ff: as in :func:`scripts.quantification.statistics.quantify_muscles` (None: keep every voxel).

    Returns:
        One row per level (cranial to caudal) and muscle side (label 1-8), columns :data:`LEVEL_COLUMNS`.
        ``csa_mean_cm2`` averages the area over the level's height inside the field of view (zero where the muscle
        is absent, so a muscle that starts inside the level has a smaller mean); ``csa_mid_cm2`` is the area at
        the level's mid-plane (NaN when the plane is outside the field of view). ``level_reasons`` repeats the
        assignment's reasons and the level's notes; ``level_anchor`` says what the names stand on (a cohort of
        several protocols can keep the levels counted from the sacrum apart from those named from a statement).

    Raises:
        ValueError: non-3D arrays, or an FF map that is not a fraction (P95 inside the labels above 1.5).
    """
    ffa = np.asarray(ff, dtype=np.float64)
    lab = np.asarray(label)
    if lab.ndim != 3 or ffa.ndim != 3:
        raise ValueError(f"label and ff must be 3D, got shapes {lab.shape} and {ffa.shape}")
    aff = np.asarray(ff_affine, dtype=np.float64)
    mapped = map_labels_to_grid(lab, label_affine, ffa.shape, aff)
    mapped = np.where(np.isin(mapped, MUSCLE_VALUES), mapped, 0).astype(np.uint8)
    untrimmed = mapped
    if border_trim_ff is not None:
        mapped = trim_fat_border(mapped, ffa, slice_axis_from_affine(aff), trim_ff=border_trim_ff)
    flat = np.flatnonzero(mapped)
    values = mapped.ravel()[flat]
    ffv = ffa.ravel()[flat]
    finite = ffv[np.isfinite(ffv)]
    if finite.size and float(np.percentile(finite, 95)) > _MAX_FRACTION_P95:
        raise ValueError(
            f"ff must be a fraction 0-1, but the 95th percentile inside the labels is {np.percentile(finite, 95):.4g}"
        )
    idx = np.unravel_index(flat, ffa.shape)
    z = aff[2, 0] * idx[0] + aff[2, 1] * idx[1] + aff[2, 2] * idx[2] + aff[2, 3]
    fov_low, fov_high = field_of_view_z(aff, ffa.shape)
    geom = {
        "voxel_ml": abs(float(np.linalg.det(aff[:3, :3]))) / 1000.0,
        "step": abs(float(aff[2, slice_axis_from_affine(aff)])),
        "fov_low": fov_low,
        "fov_high": fov_high,
    }
    trimmed = untrimmed[(mapped != untrimmed)]
    zt = None
    if trimmed.size:
        tidx = np.nonzero(mapped != untrimmed)
        zt = aff[2, 0] * tidx[0] + aff[2, 1] * tidx[1] + aff[2, 2] * tidx[2] + aff[2, 3]
    rows = []
    for level in assignment.levels:
        reasons = "; ".join([*assignment.reasons, *level.notes])
        for v in MUSCLE_VALUES:
            row = _row(values, z, ffv, level, v, geom, min_volume_ml)
            n_trim = 0 if zt is None else int(((trimmed == v) & (zt >= level.z_low) & (zt < level.z_high)).sum())
            row.update(
                subject=subject,
                n_trimmed_voxels=n_trim,
                level_reasons=reasons,
                level_anchor=assignment.anchor,
                boundary_rule=assignment.rule,
            )
            rows.append(row)
    table = pd.DataFrame(rows, columns=list(LEVEL_COLUMNS))
    return table.astype({"label": "int64", "n_voxels": "int64", "n_excluded_voxels": "int64"})
