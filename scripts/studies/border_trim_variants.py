"""How the FF step's border-trim rule moves each muscle's FF error, for other thresholds, on a finished run.

The FF step leaves out a label's border voxels above FF ``trim_ff`` that touch, in-plane, unlabelled fat above
``fat_ff`` (:func:`scripts.quantification.statistics.trim_fat_border`; default 0.7 / 0.8). This study re-measures
each side's mean FF on a run's own label and FF maps under other pairs, against the phantom's exact FF over the true
label, to see whether another rule would fix an error the network's borders make (the iliacus of the embedded
sample, 2.8 pp too fatty: issue #21). Nothing is re-segmented; the mean is the plain mean of the run's FF map over the
kept voxels (the FF table's ``ff_mean_pct`` without its other exclusions)::

    python -m scripts.studies.border_trim_variants --dataset_dir sample_data --run_dir eval --out_csv trim.csv

A variant with a third entry peels instead of trimming once: ``(0.7, 0.8, 2)`` repeats the rule twice, a voxel
trimmed in an earlier pass counting as fat outside (so a fat rim two voxels deep goes, interior marbling still
stays); ``(0.7, 0.8, "2mm")`` repeats it ``round(2 mm / the finer in-plane spacing)`` times (at least once), a band
as deep as the network's 2 mm working voxel whatever the native grid (:func:`peel_fat_border`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.affines import voxel_sizes
from scipy import ndimage
from scripts.grid import slice_axis_from_affine
from scripts.labels import MUSCLE_VALUES, muscle_and_side
from scripts.quantification.statistics import trim_fat_border

__all__ = ["VARIANTS", "peel_passes", "peel_fat_border", "side_errors", "finished_subjects", "run_errors", "summary"]

Variant = tuple[float, float] | tuple[float, float, int | str] | None

#: ``(trim_ff, fat_ff[, passes])``; None is no trim (the paper's plain mean), (0.7, 0.8) the bundle's default
VARIANTS: tuple[Variant, ...] = (
    None,
    (0.7, 0.8),
    (0.7, 0.7),
    (0.6, 0.7),
    (0.6, 0.6),
    (0.5, 0.6),
    (0.7, 0.8, 2),
    (0.7, 0.8, "2mm"),
)


def _name(variant: Variant) -> str:
    if variant is None:
        return "none"
    name = f"{variant[0]:g}/{variant[1]:g}"
    return name if len(variant) == 2 else f"{name} x{variant[2]}"


def peel_passes(passes: int | str, inplane_mm: float) -> int:
    """Number of peel passes: ``passes`` itself, or for ``"<d>mm"`` ``round(d / inplane_mm)``, at least 1."""
    if isinstance(passes, str):
        try:
            depth_mm = float(passes.removesuffix("mm")) if passes.endswith("mm") else math.nan
        except ValueError:
            depth_mm = math.nan
        if not depth_mm > 0:
            raise ValueError(f"passes must be a whole number or a depth such as '2mm', got {passes!r}")
        return max(1, int(np.floor(depth_mm / inplane_mm + 0.5)))
    if int(passes) != passes or passes < 1:
        raise ValueError(f"passes must be a whole number >= 1, got {passes!r}")
    return int(passes)


def peel_fat_border(
    label: np.ndarray, ff: np.ndarray, slice_axis: int, trim_ff: float, fat_ff: float, passes: int
) -> np.ndarray:
    """:func:`trim_fat_border` repeated ``passes`` times, each pass's trimmed voxels counting as fat outside.

    A labelled voxel goes when its FF exceeds ``trim_ff`` and it touches in-plane (4-connected) an unlabelled voxel
    over ``fat_ff`` or a voxel trimmed in an earlier pass; so a rim of fat up to ``passes`` voxels deep leaves the
    label, fat inside the label that no such chain reaches (marbling) stays. One pass is :func:`trim_fat_border`.
    """
    if not 0.0 < trim_ff <= fat_ff <= 1.0:
        raise ValueError(f"need 0 < trim_ff <= fat_ff <= 1, got trim_ff={trim_ff}, fat_ff={fat_ff}")
    out = label.copy()
    f = np.nan_to_num(np.asarray(ff, dtype=np.float32), nan=0.0)
    cross = np.expand_dims(ndimage.generate_binary_structure(2, 1), axis=slice_axis)
    fat = (label == 0) & (f > fat_ff)
    for _ in range(passes):
        trimmed = (out != 0) & ndimage.binary_dilation(fat, structure=cross) & (f > trim_ff)
        if not trimmed.any():
            break
        out[trimmed] = 0
        fat |= trimmed
    return out


def _kept(muscles: np.ndarray, ff: np.ndarray, axis: int, affine: np.ndarray, variant: Variant) -> np.ndarray:
    """The label map a variant measures over."""
    if variant is None:
        return muscles
    if len(variant) == 2:
        return trim_fat_border(muscles, ff, axis, *variant)
    inplane = min(float(s) for i, s in enumerate(voxel_sizes(affine)) if i != axis)
    return peel_fat_border(muscles, ff, axis, variant[0], variant[1], peel_passes(variant[2], inplane))


def side_errors(
    pred: np.ndarray,
    truth: np.ndarray,
    ff_pct: np.ndarray,
    ff_true: np.ndarray,
    affine: np.ndarray,
    variants: Sequence[Variant] = VARIANTS,
) -> list[dict]:
    """Each muscle side's FF error (percentage points, measured minus true) under each variant.

    Args:
        pred: the run's label map (muscles 1-8; other values are treated as unlabelled tissue).
        truth: the phantom's true label map on the same grid.
        ff_pct: the run's FF map in percent (NaN where the FF is not valid).
        ff_true: the phantom's exact voxel FF, fraction.
        affine: the grid's voxel-to-world affine (its axial axis is the trim's plane).
        variants: ``(trim_ff, fat_ff)`` pairs, ``(trim_ff, fat_ff, passes)`` peels (module docstring) or None.

    Returns:
        One dict per side present in the truth and variant: ``label``, ``muscle``, ``side``, ``variant``,
        ``n_voxels`` (kept), ``ff_error_pp``.
    """
    muscles = np.where((pred >= 1) & (pred <= 8), pred, 0).astype(np.uint8)
    ff = np.asarray(ff_pct, dtype=np.float64) / 100.0
    axis = slice_axis_from_affine(np.asarray(affine, dtype=np.float64))
    rows = []
    for variant in variants:
        kept = _kept(muscles, ff, axis, np.asarray(affine, dtype=np.float64), variant)
        for value in MUSCLE_VALUES:
            t = truth == value
            m = (kept == value) & np.isfinite(ff)
            if not t.any() or not m.any():
                continue
            muscle, side = muscle_and_side(value)
            rows.append(
                {
                    "label": value,
                    "muscle": muscle,
                    "side": side,
                    "variant": _name(variant),
                    "n_voxels": int(m.sum()),
                    "ff_error_pp": 100.0 * (float(ff[m].mean()) - float(np.nanmean(ff_true[t]))),
                }
            )
    return rows


def finished_subjects(
    dataset_dir: str, run_dir: str, key: str = "testing"
) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(subject, pred, truth, ff_pct, ff_true, affine)`` for every subject of a phantom cohort's datalist ``key``
    (all sections if it has none) with a finished result in ``run_dir``: the run's label map, the true label map,
    the run's FF map (percent), the exact voxel FF (fraction), the grid's affine; the maps as float64 but the run's.

    Raises:
        FileNotFoundError: no subject of the datalist has a result in ``run_dir``.
    """
    root, run = Path(dataset_dir), Path(run_dir)
    datalist = json.loads((root / "datalist.json").read_text())
    entries = datalist.get(key) or [e for k in ("training", "validation", "testing") for e in datalist.get(k, [])]
    found = False
    for entry in entries:
        subject = entry["subject"]
        seg = run / subject / f"{subject}_seg.nii.gz"
        if not seg.is_file():
            continue
        found = True
        img = nib.load(str(seg))
        arrays = [
            np.asarray(nib.load(str(path)).dataobj, dtype=np.float64)
            for path in (root / entry["label"], run / subject / f"{subject}_ff.nii.gz", root / entry["ff_true"])
        ]
        yield subject, np.asarray(img.dataobj), *arrays, img.affine
    if not found:
        raise FileNotFoundError(f"{run} holds no finished subject of {root / 'datalist.json'}: run inference first")


def run_errors(dataset_dir: str, run_dir: str, key: str = "testing") -> pd.DataFrame:
    """:func:`side_errors` for every subject of :func:`finished_subjects`."""
    rows = []
    for subject, pred, truth, ff_pct, ff_true, affine in finished_subjects(dataset_dir, run_dir, key):
        rows += [{"subject": subject, **row} for row in side_errors(pred, truth, ff_pct, ff_true, affine)]
    return pd.DataFrame(rows)


def summary(errors: pd.DataFrame) -> pd.DataFrame:
    """Per variant and muscle (sides pooled): median and 95th percentile of |error| and the mean error (pp)."""
    order = [_name(v) for v in VARIANTS]
    table = errors.assign(abs_error=errors.ff_error_pp.abs()).groupby(["variant", "muscle"], sort=False)
    out = table.agg(
        median_abs_pp=("abs_error", "median"),
        p95_abs_pp=("abs_error", lambda x: x.quantile(0.95)),
        bias_pp=("ff_error_pp", "mean"),
        sides=("ff_error_pp", "size"),
    ).reset_index()
    out["variant"] = pd.Categorical(out["variant"], [v for v in order if v in set(out["variant"])], ordered=True)
    return out.sort_values(["variant", "muscle"]).reset_index(drop=True)


def main(dataset_dir: str, run_dir: str, out_csv: str | None = None, key: str = "testing") -> None:
    """Print the summary; with ``out_csv`` also write the per-side errors there."""
    errors = run_errors(dataset_dir, run_dir, key)
    if out_csv:
        errors.to_csv(out_csv, index=False, float_format="%.4f")
    print(summary(errors).round(2).to_string(index=False))


if __name__ == "__main__":
    import fire

    fire.Fire(main)
