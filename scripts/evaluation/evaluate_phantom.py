"""Accuracy of a finished inference run against phantom ground truth: segmentation metrics and FF agreement.

Usage (after ``python -m monai.bundle run --config_file configs/inference.json --dataset_dir D --output_dir P``)::

    python -m scripts.evaluation.evaluate_phantom --dataset_dir D --pred_dir P --out_dir P/accuracy

Writes ``segmentation_metrics.csv`` (per subject, label and L/R mean: Dice, RVD, HD, HD95, ASSD),
``ff_agreement.csv`` (per subject, muscle and side: predicted and true mean FF) and ``summary.md``, and returns
the summary table as Markdown.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.evaluation.agreement import bland_altman, linear_regression
from scripts.evaluation.segmentation_metrics import compute_label_metrics
from scripts.grid import check_same_grid
from scripts.io.atomic import atomic_write_text
from scripts.labels import MUSCLE_VALUES, MUSCLES, NUM_CLASSES, VERTEBRAL_LABELS

__all__ = ["evaluate_run", "summarise"]

logger = logging.getLogger(__name__)


def evaluate_run(dataset_dir: str, pred_dir: str, datalist_key: str = "testing") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare every subject of ``dataset_dir``'s datalist that ``pred_dir`` holds a result for.

    Returns:
        (segmentation metrics, FF agreement) long tables.
    """
    root = Path(dataset_dir)
    entries = json.loads((root / "datalist.json").read_text())[datalist_key]
    truth = pd.read_csv(root / "ground_truth.csv", dtype={"subject": str})
    seg_rows, ff_rows = [], []
    for e in entries:
        sid = e["subject"]
        sdir = Path(pred_dir) / sid
        seg_path = sdir / f"{sid}_seg.nii.gz"
        if not seg_path.is_file():
            logger.warning("%s: no prediction in %s", sid, sdir)
            continue
        pred = nib.load(seg_path)
        ref = nib.load(root / e["label"])
        check_same_grid(pred.shape, pred.affine, ref.shape, ref.affine, name_a=str(seg_path), name_b=e["label"])
        pred_arr, ref_arr, labels = _with_context(np.asarray(pred.dataobj), np.asarray(ref.dataobj), root, e)
        m = compute_label_metrics(pred_arr, ref_arr, ref.header.get_zooms()[:3], labels)
        m.insert(0, "subject", sid)
        seg_rows.append(m)
        table = pd.read_csv(sdir / f"{sid}_ff_table.csv")
        t = truth[truth.subject == sid]
        merged = table[["muscle", "side", "ff_mean_pct", "volume_ml"]].merge(
            t[["muscle", "side", "ff_mean_pct", "ff_true_pct", "volume_ml"]],
            on=["muscle", "side"],
            suffixes=("_pred", "_truth"),
        )
        merged.insert(0, "subject", sid)
        ff_rows.append(merged)
    if not seg_rows:
        raise ValueError(f"no predictions for the {datalist_key!r} subjects of {dataset_dir} found in {pred_dir}")
    return pd.concat(seg_rows, ignore_index=True), pd.concat(ff_rows, ignore_index=True)


def _with_context(
    pred: np.ndarray, ref: np.ndarray, root: Path, entry: dict
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``(pred, ref, labels to score)``: the muscles, plus the vertebral context (9-14) when the prediction holds
    it and the phantom wrote its vertebral map (anatomy-complete phantoms); the truth map then gets the vertebral
    values where it is background, as training merges them."""
    labels = list(MUSCLE_VALUES)
    if not entry.get("vertebrae") or not (pred >= NUM_CLASSES).any():
        return pred, ref, labels
    vertebrae = np.asarray(nib.load(root / entry["vertebrae"]).dataobj)
    if vertebrae.shape != ref.shape:
        raise ValueError(f"{entry['vertebrae']}: shape {vertebrae.shape} differs from {entry['label']} {ref.shape}")
    ref = np.where(ref == 0, vertebrae, ref).astype(ref.dtype)
    return pred, ref, labels + sorted(VERTEBRAL_LABELS)


def summarise(seg: pd.DataFrame, ff: pd.DataFrame) -> str:
    """Per-muscle (L/R mean) Dice and HD95, FF absolute error, and FF regression/Bland-Altman, as Markdown."""
    lines = [
        f"Subjects: {seg.subject.nunique()}",
        "",
        "| muscle (L/R mean) | Dice mean | Dice min | HD95 mm mean | HD95 mm max | RVD mean | "
        "FF abs error pp median | FF abs error pp max | per side: FF abs error pp median | P95 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    mean_rows = seg[seg.side == "mean"]
    ffm = ff[ff.side == "mean"].copy()
    ffm["abs_err"] = (ffm.ff_mean_pct_pred - ffm.ff_mean_pct_truth).abs()
    sides = ff[ff.side != "mean"].dropna(subset=["ff_mean_pct_pred", "ff_mean_pct_truth"])
    side_err = (sides.ff_mean_pct_pred - sides.ff_mean_pct_truth).abs()
    for m in MUSCLES:
        s = mean_rows[mean_rows.muscle == m]
        f = ffm[ffm.muscle == m]
        e = side_err[sides.muscle == m]
        lines.append(
            f"| {m} | {s.dice.mean():.3f} | {s.dice.min():.3f} | {s.hd95_mm.mean():.2f} | "
            f"{s.hd95_mm.max():.2f} | {s.rvd.mean():+.3f} | {f.abs_err.median():.2f} | {f.abs_err.max():.2f} | "
            f"{e.median():.2f} | {e.quantile(0.95):.2f} |"
        )
    context = seg[seg.side == "midline"].dropna(subset=["dice"])
    if len(context):
        lines += ["", "| vertebral context | n | Dice mean | Dice min | HD95 mm mean |", "|---|---|---|---|---|"]
        for name, rows in context.groupby("muscle", sort=False):
            lines.append(
                f"| {name} | {len(rows)} | {rows.dice.mean():.3f} | {rows.dice.min():.3f} | {rows.hd95_mm.mean():.2f} |"
            )
    err = (sides.ff_mean_pct_pred - sides.ff_mean_pct_truth).abs()
    reg = linear_regression(sides.ff_mean_pct_truth, sides.ff_mean_pct_pred)
    ba = bland_altman(sides.ff_mean_pct_pred, sides.ff_mean_pct_truth)
    lines += [
        "",
        f"FF per muscle and side (n = {reg.n}): absolute error median {err.median():.2f} pp, "
        f"P95 {err.quantile(0.95):.2f} pp; regression predicted = {reg.slope:.3f} x truth "
        f"{reg.intercept:+.2f}, R^2 = {reg.r2:.4f}; Bland-Altman bias {ba.bias:+.2f} pp, limits of agreement "
        f"{ba.loa_lower:+.2f} to {ba.loa_upper:+.2f} pp.",
    ]
    return "\n".join(lines)


def main(dataset_dir: str, pred_dir: str, out_dir: str | None = None, datalist_key: str = "testing") -> str:
    """Evaluate, write the tables and the summary under ``out_dir`` (default ``<pred_dir>/accuracy``)."""
    seg, ff = evaluate_run(dataset_dir, pred_dir, datalist_key)
    out = Path(out_dir or Path(pred_dir) / "accuracy")
    out.mkdir(parents=True, exist_ok=True)
    text = summarise(seg, ff)
    atomic_write_text(out / "segmentation_metrics.csv", seg.to_csv(index=False), overwrite=True)
    atomic_write_text(out / "ff_agreement.csv", ff.to_csv(index=False), overwrite=True)
    atomic_write_text(out / "summary.md", text + "\n", overwrite=True)
    return text


if __name__ == "__main__":
    import fire

    logging.basicConfig(level=logging.INFO)
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(main))
