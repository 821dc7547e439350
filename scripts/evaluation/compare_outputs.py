"""Agreement of two inference output folders: the same scans run twice (GPU against CPU, two bundle versions, two
machines).

Usage, from the bundle root::

    python -m scripts.evaluation.compare_outputs --run_a eval_cpu --run_b eval_gpu [--out_csv agreement.csv]

Each folder is what ``inference.json`` writes: ``cohort_ff_table.csv`` and ``<subject>/<subject>_seg.nii.gz``.
Subjects are paired by name; a subject missing from either folder is an error (a partial run is not an agreement).
Per subject and label: Dice of the two label maps, and the differences (B minus A) of mean FF (percentage points)
and volume (mL) from the tables. Prints the worst case of each and returns the per-row table.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.evaluation.segmentation_metrics import dice
from scripts.labels import label_name

TABLE = "cohort_ff_table.csv"
KEYS = ["subject", "label", "aggregation"]


def _table(run_dir: Path) -> pd.DataFrame:
    path = run_dir / TABLE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no cohort table; is {run_dir} an inference output folder?")
    df = pd.read_csv(path)
    missing = [c for c in KEYS + ["ff_mean_pct", "volume_ml"] if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} missing")
    return df


def _seg(run_dir: Path, subject: str) -> nib.Nifti1Image:
    path = run_dir / subject / f"{subject}_seg.nii.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label map missing")
    return nib.load(str(path))


def compare_outputs(run_a: str | Path, run_b: str | Path) -> pd.DataFrame:
    """Per subject and label: ``dice``, ``ff_mean_diff_pp`` and ``volume_diff_ml`` (B minus A).

    Args:
        run_a: first inference output folder (the reference).
        run_b: second inference output folder.

    Returns:
        One row per subject and label present in either label map (label maps compared voxel by voxel on their
        common grid; grids that differ in shape or affine are refused).

    Raises:
        FileNotFoundError: a table or label map is missing.
        ValueError: the folders hold different subjects, or a subject's label maps are on different grids.
    """
    a_dir, b_dir = Path(run_a), Path(run_b)
    ta, tb = _table(a_dir), _table(b_dir)
    sa, sb = set(ta["subject"].astype(str)), set(tb["subject"].astype(str))
    if sa != sb:
        raise ValueError(
            f"{a_dir} and {b_dir} hold different subjects: only in A {sorted(sa - sb)}, only in B {sorted(sb - sa)}"
        )
    merged = ta[KEYS + ["ff_mean_pct", "volume_ml"]].merge(
        tb[KEYS + ["ff_mean_pct", "volume_ml"]], on=KEYS, how="outer", suffixes=("_a", "_b")
    )
    merged = merged[merged["aggregation"] == "label"]
    rows = []
    for subject in sorted(sa):
        ia, ib = _seg(a_dir, subject), _seg(b_dir, subject)
        if ia.shape != ib.shape or not np.allclose(ia.affine, ib.affine, atol=1e-4):
            raise ValueError(
                f"{subject}: label maps of {a_dir} and {b_dir} are on different grids ({ia.shape} vs {ib.shape})"
            )
        la, lb = np.asarray(ia.dataobj), np.asarray(ib.dataobj)
        for value in sorted((set(np.unique(la)) | set(np.unique(lb))) - {0}):
            m = merged[(merged["subject"].astype(str) == subject) & (merged["label"] == value)]
            ff_a, ff_b = (m["ff_mean_pct_a"].iloc[0], m["ff_mean_pct_b"].iloc[0]) if len(m) else (np.nan, np.nan)
            v_a, v_b = (m["volume_ml_a"].iloc[0], m["volume_ml_b"].iloc[0]) if len(m) else (np.nan, np.nan)
            rows.append(
                {
                    "subject": subject,
                    "label": int(value),
                    "name": label_name(int(value)),
                    "dice": dice(la == value, lb == value),
                    "ff_mean_a_pct": ff_a,
                    "ff_mean_b_pct": ff_b,
                    "ff_mean_diff_pp": ff_b - ff_a,
                    "volume_diff_ml": v_b - v_a,
                }
            )
    return pd.DataFrame(rows)


def main(run_a: str, run_b: str, out_csv: str | None = None) -> None:
    """Compare two output folders; print and return the summary (worst Dice, largest FF and volume differences)."""
    df = compare_outputs(run_a, run_b)
    if out_csv:
        df.to_csv(out_csv, index=False)
    worst = df.loc[df["dice"].idxmin()]
    ff = df["ff_mean_diff_pp"].abs()
    text = (
        f"{len(df)} labels in {df['subject'].nunique()} subjects ({run_a} vs {run_b}): "
        f"Dice min {worst['dice']:.4f} ({worst['subject']} {worst['name']}), mean {df['dice'].mean():.4f}; "
        f"|FF mean difference| max {ff.max():.3f} pp, mean {ff.mean():.3f} pp; "
        f"|volume difference| max {df['volume_diff_ml'].abs().max():.2f} mL"
    )
    print(text)


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(main))
