"""How the FF step's border-trim rule moves each muscle's FF error, for other thresholds, on a finished run.

The FF step leaves out a label's border voxels above FF ``trim_ff`` that touch, in-plane, unlabelled fat above
``fat_ff`` (:func:`scripts.quantification.statistics.trim_fat_border`; default 0.7 / 0.8). This study re-measures
each side's mean FF on a run's own label and FF maps under other pairs, against the phantom's exact FF over the true
label, to see whether another rule would fix an error the network's borders make (the iliacus of the embedded
sample, 2.8 pp too fatty: issue #21). Nothing is re-segmented; the mean is the plain mean of the run's FF map over the
kept voxels (the FF table's ``ff_mean_pct`` without its other exclusions)::

    python -m scripts.studies.border_trim_variants --dataset_dir sample_data --run_dir eval --out_csv trim.csv
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.grid import slice_axis_from_affine
from scripts.labels import MUSCLE_VALUES, muscle_and_side
from scripts.quantification.statistics import trim_fat_border

__all__ = ["VARIANTS", "side_errors", "run_errors", "summary"]

#: ``(trim_ff, fat_ff)`` pairs; None is no trim (the paper's plain mean), (0.7, 0.8) the bundle's default
VARIANTS: tuple[tuple[float, float] | None, ...] = (None, (0.7, 0.8), (0.7, 0.7), (0.6, 0.7), (0.6, 0.6), (0.5, 0.6))


def _name(variant: tuple[float, float] | None) -> str:
    return "none" if variant is None else f"{variant[0]:g}/{variant[1]:g}"


def side_errors(
    pred: np.ndarray,
    truth: np.ndarray,
    ff_pct: np.ndarray,
    ff_true: np.ndarray,
    affine: np.ndarray,
    variants: Sequence[tuple[float, float] | None] = VARIANTS,
) -> list[dict]:
    """Each muscle side's FF error (percentage points, measured minus true) under each variant.

    Args:
        pred: the run's label map (muscles 1-8; other values are treated as unlabelled tissue).
        truth: the phantom's true label map on the same grid.
        ff_pct: the run's FF map in percent (NaN where the FF is not valid).
        ff_true: the phantom's exact voxel FF, fraction.
        affine: the grid's voxel-to-world affine (its axial axis is the trim's plane).
        variants: ``(trim_ff, fat_ff)`` pairs or None.

    Returns:
        One dict per side present in the truth and variant: ``label``, ``muscle``, ``side``, ``variant``,
        ``n_voxels`` (kept), ``ff_error_pp``.
    """
    muscles = np.where((pred >= 1) & (pred <= 8), pred, 0).astype(np.uint8)
    ff = np.asarray(ff_pct, dtype=np.float64) / 100.0
    axis = slice_axis_from_affine(np.asarray(affine, dtype=np.float64))
    rows = []
    for variant in variants:
        kept = muscles if variant is None else trim_fat_border(muscles, ff, axis, *variant)
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
                    "ff_error_pp": 100.0 * (float(ff[m].mean()) - float(np.mean(ff_true[t]))),
                }
            )
    return rows


def run_errors(dataset_dir: str, run_dir: str, key: str = "testing") -> pd.DataFrame:
    """:func:`side_errors` for every subject of a phantom cohort's datalist with a finished result in ``run_dir``.

    Raises:
        FileNotFoundError: no subject of the datalist has a result in ``run_dir``.
    """
    root, run = Path(dataset_dir), Path(run_dir)
    datalist = json.loads((root / "datalist.json").read_text())
    entries = datalist.get(key) or [e for k in ("training", "validation", "testing") for e in datalist.get(k, [])]
    rows = []
    for entry in entries:
        subject = entry["subject"]
        seg = run / subject / f"{subject}_seg.nii.gz"
        if not seg.is_file():
            continue
        img = nib.load(str(seg))
        arrays = [np.asarray(img.dataobj)]
        for path in (root / entry["label"], run / subject / f"{subject}_ff.nii.gz", root / entry["ff_true"]):
            arrays.append(np.asarray(nib.load(str(path)).dataobj, dtype=np.float64))
        for row in side_errors(arrays[0], arrays[1], arrays[2], arrays[3], img.affine):
            rows.append({"subject": subject, **row})
    if not rows:
        raise FileNotFoundError(f"{run} holds no finished subject of {root / 'datalist.json'}: run inference first")
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
