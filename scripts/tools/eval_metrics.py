"""``eval_metrics`` of configs/metadata.json, computed from the held-out evaluation's per-case tables.

The model zoo shows ``eval_metrics`` as the bundle's accuracy, so it must be what was measured for the shipped
version, not numbers typed by hand. The held-out evaluation (``python -m scripts.evaluation.evaluate_phantom``,
docs/studies/
heldout_phantoms.md) writes per-case tables; this module reduces them and writes or checks metadata.json::

    python -m scripts.tools.eval_metrics --version 0.13.0            # print what the tables give
    python -m scripts.tools.eval_metrics --version 0.13.0 --write    # put it into configs/metadata.json

Every value is over the held-out phantoms: Dice and HD95 (mm) per muscle as the mean of the subjects' left/right
means, and the FF error (percentage points, prediction minus the mean FF over the true label) over the muscle sides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import fire
import numpy as np
import pandas as pd
from scripts.evaluation.agreement import bland_altman, linear_regression
from scripts.io.atomic import atomic_write_text
from scripts.labels import MUSCLES

BUNDLE_ROOT = Path(__file__).resolve().parents[2]
HELDOUT_DIR = BUNDLE_ROOT / "docs" / "studies" / "validation" / "heldout"
# which evaluation's tables describe a version (the same weights and default settings give the same tables)
SOURCE_NOTE_KEY = "held_out_phantom_source"


def heldout_tables(version: str, heldout_dir: str | Path = HELDOUT_DIR) -> tuple[Path, Path]:
    """The per-case tables of ``version``'s held-out evaluation (``segmentation_metrics_<v>.csv``,
    ``ff_agreement_<v>.csv``).

    Raises:
        FileNotFoundError: naming the missing table and the commands that make it.
    """
    folder = Path(heldout_dir)
    seg, ff = folder / f"segmentation_metrics_{version}.csv", folder / f"ff_agreement_{version}.csv"
    for path in (seg, ff):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no held-out table for version {version}. Make it with the held-out evaluation "
                "(docs/studies/heldout_phantoms.md: `python -m monai.bundle run --config_file configs/inference.json "
                "--dataset_dir phantom_test --output_dir eval_test` then `python -m "
                "scripts.evaluation.evaluate_phantom "
                f"--dataset_dir phantom_test --pred_dir eval_test --out_dir <dir>`) and copy its two CSVs there "
                f"with the suffix _{version}."
            )
    return seg, ff


def compute_eval_metrics(seg: pd.DataFrame, ff: pd.DataFrame) -> dict[str, float]:
    """Reduce per-case tables to ``eval_metrics``.

    Args:
        seg: ``segmentation_metrics.csv`` rows (subject, muscle, side in left/right/mean, dice, hd95_mm, ...).
        ff: ``ff_agreement.csv`` rows (subject, muscle, side, ff_mean_pct_pred, ff_mean_pct_truth).

    Returns:
        Keys ``held_out_phantom_dice_<muscle>``, ``held_out_phantom_hd95_mm_<muscle>``,
        ``held_out_phantom_ff_abs_error_median_pp``, ``..._ff_abs_error_p95_pp``, ``..._ff_r2``,
        ``..._ff_bias_pp``, ``held_out_phantom_subjects``; rounded as the model card prints them.
    """
    if seg.empty or ff.empty:
        raise ValueError("the held-out tables are empty: nothing to compute eval_metrics from")
    means = seg[seg.side == "mean"]
    out: dict[str, float] = {}
    for muscle in MUSCLES:
        rows = means[means.muscle == muscle]
        if rows.empty:
            raise ValueError(f"the held-out segmentation table has no L/R mean rows for {muscle}")
        out[f"held_out_phantom_dice_{muscle}"] = round(float(rows.dice.mean()), 3)
        out[f"held_out_phantom_hd95_mm_{muscle}"] = round(float(rows.hd95_mm.mean()), 2)
    sides = ff[ff.side != "mean"].dropna(subset=["ff_mean_pct_pred", "ff_mean_pct_truth"])
    err = (sides.ff_mean_pct_pred - sides.ff_mean_pct_truth).abs()
    reg = linear_regression(sides.ff_mean_pct_truth, sides.ff_mean_pct_pred)
    ba = bland_altman(sides.ff_mean_pct_pred, sides.ff_mean_pct_truth)
    out["held_out_phantom_ff_abs_error_median_pp"] = round(float(err.median()), 2)
    out["held_out_phantom_ff_abs_error_p95_pp"] = round(float(np.quantile(err, 0.95)), 2)
    out["held_out_phantom_ff_r2"] = round(float(reg.r2), 4)
    out["held_out_phantom_ff_bias_pp"] = round(float(ba.bias), 2)
    out["held_out_phantom_subjects"] = int(seg.subject.nunique())
    return out


def eval_metrics_for(version: str, heldout_dir: str | Path = HELDOUT_DIR) -> dict[str, float | str]:
    """``eval_metrics`` for ``version`` from its held-out tables, with the tables named under SOURCE_NOTE_KEY."""
    seg_path, ff_path = heldout_tables(version, heldout_dir)
    metrics: dict[str, float | str] = dict(compute_eval_metrics(pd.read_csv(seg_path), pd.read_csv(ff_path)))
    root = BUNDLE_ROOT if Path(heldout_dir).resolve().is_relative_to(BUNDLE_ROOT) else Path(heldout_dir)
    metrics[SOURCE_NOTE_KEY] = f"{seg_path.resolve().relative_to(root)}, {ff_path.resolve().relative_to(root)}"
    return metrics


def stated_tables(metadata: Mapping) -> tuple[Path, Path]:
    """The two per-case tables that ``metadata['eval_metrics']`` names as its source (bundle-relative paths)."""
    note = str(metadata.get("eval_metrics", {}).get(SOURCE_NOTE_KEY, ""))
    parts = [p.strip() for p in note.split(",") if p.strip()]
    if len(parts) != 2:
        raise ValueError(
            f"metadata eval_metrics lacks {SOURCE_NOTE_KEY!r} naming its two held-out tables; "
            "regenerate them: python -m scripts.tools.eval_metrics --version <version> --write"
        )
    return BUNDLE_ROOT / parts[0], BUNDLE_ROOT / parts[1]


def metadata_mismatch(metadata: Mapping) -> list[str]:
    """Keys of ``metadata['eval_metrics']`` that differ from what its named tables give (missing or extra too)."""
    seg_path, ff_path = stated_tables(metadata)
    measured = compute_eval_metrics(pd.read_csv(seg_path), pd.read_csv(ff_path))
    stated = {k: v for k, v in metadata.get("eval_metrics", {}).items() if k != SOURCE_NOTE_KEY}
    return sorted(k for k in set(stated) | set(measured) if stated.get(k) != measured.get(k))


def main(version: str, write: bool = False, meta_file: str | None = None, heldout_dir: str | None = None) -> dict:
    """Print ``version``'s eval_metrics; with ``write``, replace metadata.json's ``eval_metrics`` by them.

    ``meta_file`` defaults to the bundle's configs/metadata.json, ``heldout_dir`` to docs/studies/validation/heldout.
    """
    meta_file = meta_file or str(BUNDLE_ROOT / "configs" / "metadata.json")
    heldout_dir = heldout_dir or str(HELDOUT_DIR)
    measured = eval_metrics_for(version, heldout_dir)
    if write:
        meta = json.loads(Path(meta_file).read_text())
        meta["eval_metrics"] = measured
        atomic_write_text(meta_file, json.dumps(meta, indent=4, ensure_ascii=False) + "\n", overwrite=True)
    return measured


if __name__ == "__main__":
    fire.Fire(main)
