"""The verdict's border measure (:mod:`scripts.quality.border_tissue`) on a phantom cohort's true labels, on the
same labels eroded in-plane by one and two voxels, and on a finished run's labels.

Per muscle side: the share of the unlabelled tissue one voxel outside the label whose FF lies within 10 pp of the
label's own median FF (FF from the stored water and fat images, in percent), and the side's Dice against the truth.
The summary gives, per variant, the 5th percentile, median and maximum of the share and the share of sides over a
level. It measured where the verdict's review level sits (docs/studies/quality_control.md, "The tissue just outside
a label")::

    python -m scripts.studies.border_tissue_cases --dataset_dir phantom_test_complete --out_csv border.csv \\
        [--run_dir complete_eval]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage
from scripts.grid import slice_axis_from_affine
from scripts.labels import MUSCLE_VALUES
from scripts.quality.border_tissue import border_like_share
from scripts.quantification.formulas import fat_fraction_from_water_fat

__all__ = ["eroded_in_plane", "side_shares", "summary", "main"]


def eroded_in_plane(labels: np.ndarray, axis: int, voxels: int) -> np.ndarray:
    """``labels`` with every muscle side eroded by ``voxels`` in the plane normal to ``axis`` (4-neighbourhood)."""
    element = np.expand_dims(ndimage.generate_binary_structure(2, 1), axis)
    out = np.zeros_like(labels)
    for value in MUSCLE_VALUES:
        out[ndimage.binary_erosion(labels == value, element, iterations=voxels)] = value
    return out


def side_shares(labels: np.ndarray, truth: np.ndarray, ff_pct: np.ndarray, axis: int) -> list[dict]:
    """One row per muscle side of ``labels`` (at least 50 voxels): its border share and its Dice against ``truth``."""
    body = np.isfinite(ff_pct)
    boxes = ndimage.find_objects(np.where(np.isin(labels, MUSCLE_VALUES), labels, 0).astype(np.int32))
    rows = []
    for value in MUSCLE_VALUES:
        if value > len(boxes) or boxes[value - 1] is None or (labels == value).sum() < 50:
            continue
        share, median, n = border_like_share(labels, value, ff_pct, body, boxes[value - 1], axis)
        mine, true = labels == value, truth == value
        dice = 2.0 * float((mine & true).sum()) / float(mine.sum() + true.sum())
        rows.append({"label": value, "share": share, "median_ff_pct": median, "n_ring": n, "dice": dice})
    return rows


def _subject(dataset_dir: Path, sid: str, run_dir: Path | None) -> list[dict]:
    folder = dataset_dir / sid
    img = nib.load(str(folder / f"{sid}_water.nii.gz"))
    water = np.asarray(img.dataobj, dtype=np.float32)
    fat = np.asarray(nib.load(str(folder / f"{sid}_fat.nii.gz")).dataobj, dtype=np.float32)
    ff = fat_fraction_from_water_fat(water, fat) * 100.0
    truth = np.asarray(nib.load(str(folder / f"{sid}_label.nii.gz")).dataobj).astype(np.uint8)
    truth[~np.isin(truth, MUSCLE_VALUES)] = 0
    axis = slice_axis_from_affine(img.affine)
    variants = {
        "truth": truth,
        "eroded_1": eroded_in_plane(truth, axis, 1),
        "eroded_2": eroded_in_plane(truth, axis, 2),
    }
    if run_dir is not None:
        pred = np.asarray(nib.load(str(run_dir / sid / f"{sid}_seg.nii.gz")).dataobj).astype(np.uint8)
        if pred.shape != truth.shape:
            raise ValueError(f"{run_dir / sid}: label map {pred.shape} is not on the phantom's grid {truth.shape}")
        pred[~np.isin(pred, MUSCLE_VALUES)] = 0
        variants["run"] = pred
    return [
        {"subject": sid, "variant": name, **row}
        for name, labels in variants.items()
        for row in side_shares(labels, truth, ff, axis)
    ]


def summary(rows: pd.DataFrame, levels: tuple[float, ...] = (0.5, 0.6)) -> pd.DataFrame:
    """Per variant: sides, 5th percentile, median and maximum of the share, and the share of sides over each level."""
    out = []
    for variant, g in rows.groupby("variant", sort=False):
        share = g["share"].dropna()
        row = {
            "variant": variant,
            "sides": len(share),
            "p05": float(share.quantile(0.05)),
            "median": float(share.median()),
            "max": float(share.max()),
        }
        row.update({f"over_{level:g}": float((share > level).mean()) for level in levels})
        out.append(row)
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", required=True, help="phantom cohort (participants.tsv, sub-*/)")
    parser.add_argument("--out_csv", required=True, help="per-side table")
    parser.add_argument("--run_dir", default=None, help="an inference run on the cohort: its labels as a variant")
    args = parser.parse_args(argv)
    dataset_dir = Path(args.dataset_dir)
    subjects = pd.read_csv(dataset_dir / "participants.tsv", sep="\t")["participant_id"]
    run_dir = Path(args.run_dir) if args.run_dir else None
    rows = pd.DataFrame([r for sid in subjects for r in _subject(dataset_dir, str(sid), run_dir)])
    rows.to_csv(args.out_csv, index=False)
    print(summary(rows).round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
