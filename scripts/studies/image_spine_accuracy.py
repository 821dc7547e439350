"""How accurately :func:`scripts.quality.image_spine.find_spine` finds the vertebral bodies in the FF map, against the
truth of an anatomy-complete phantom cohort (``python -m scripts.phantom cohort ... --anatomy complete``, whose
datalist entries carry a ``tissue`` map).

The FF map is computed as the pipeline computes it (:func:`scripts.io.load.load_dixon`, then
:func:`scripts.quantification.ff_map.compute_ff` from water and fat, with their noise). Truth per axial slice: the
median world x, y of the vertebral bodies L1-L5, T12 and T11 (tissue ids 9-13, 15, 16) on slices where they cover at
least 300 mm^2 (a body's cross-section, not the partial-volume edge of an end plate); the column: those bodies,
the discs and the sacrum (ids 9-17). Reported per subject and pooled: whether the column was found, the share of
true-body slices with a detected centre, and within 10 mm of the true one, the left-right and antero-posterior
errors (mm), detections lying more than 15 mm from every column voxel of their slice (a wrong anchor), and the
search's time. ``figure`` draws the bodies found on a real scan, slice by slice, for a check by eye::

    python -m scripts.studies.image_spine_accuracy accuracy \
        --datalist /work/data/vert/phantom_test_complete/datalist.json --key testing --out_dir /tmp/image_spine
    python -m scripts.studies.image_spine_accuracy figure --out_png docs/images/image_spine_chaos.png \
        --inphase /work/shared/real-samples/chaos_t1dual_ipop/chaos_mr11_inphase.nii.gz \
        --opposed /work/shared/real-samples/chaos_t1dual_ipop/chaos_mr11_opposed.nii.gz
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.io.load import load_dixon
from scripts.quality.image_spine import find_spine
from scripts.quantification.ff_map import compute_ff

BODY_IDS = (9, 10, 11, 12, 13, 15, 16)
COLUMN_IDS = (9, 10, 11, 12, 13, 14, 15, 16, 17)
MIN_BODY_MM2 = 300.0


def _world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def subject_rows(ff: np.ndarray, affine: np.ndarray, tissue: np.ndarray) -> tuple[dict, list[dict]]:
    """One subject: its summary and one row per true-body slice (the detected centre's error where found)."""
    start = time.perf_counter()
    spine = find_spine(ff, affine)
    seconds = time.perf_counter() - start
    axis = spine.axis
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    pixel_mm2 = float(np.prod(spacing) / spacing[axis])
    ijk = np.argwhere(np.isin(tissue, BODY_IDS))
    xyz, k = _world(affine, ijk.astype(np.float64)), ijk[:, axis]
    rows = []
    for s in np.unique(k):
        on = k == s
        if on.sum() * pixel_mm2 < MIN_BODY_MM2:
            continue
        true = np.median(xyz[on, :2], axis=0)
        row = {"slice": int(s), "true_x": true[0], "true_y": true[1], "found": s in spine.centres}
        if row["found"]:
            row["dx"], row["dy"] = np.asarray(spine.centres[s]) - true
        rows.append(row)
    column = np.argwhere(np.isin(tissue, COLUMN_IDS))
    cxyz, ck = _world(affine, column.astype(np.float64)), column[:, axis]
    off = 0
    for s, centre in spine.centres.items():
        near = cxyz[ck == s, :2]
        off += int(not len(near) or np.hypot(*(near - np.asarray(centre)).T).min() > 15.0)
    summary = {
        "found": spine.found,
        "reason": spine.reason,
        "seconds": round(seconds, 3),
        "shape": "x".join(map(str, ff.shape)),
        "detections": len(spine.centres),
        "off_column": off,
    }
    return summary, rows


def run(datalist: str, key: str = "testing", n: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-subject summaries and per-slice rows for the first ``n`` entries of ``key`` in ``datalist``."""
    root = Path(datalist).parent
    entries = json.loads(Path(datalist).read_text())[key][:n]
    subjects, slices = [], []
    for e in entries:
        scan = load_dixon({"subject": e["subject"], "water": root / e["water"], "fat": root / e["fat"]})
        ffr = compute_ff(scan)
        tissue = np.asarray(nib.load(root / e["tissue"]).dataobj)
        summary, rows = subject_rows(ffr.ff * 100.0, ffr.affine, tissue)
        subjects.append({"subject": e["subject"], **summary})
        slices += [{"subject": e["subject"], **r} for r in rows]
        print(f"{e['subject']}: {summary['reason']} ({summary['seconds']:.2f} s)", flush=True)
    return pd.DataFrame(subjects), pd.DataFrame(slices)


def summarise(subjects: pd.DataFrame, slices: pd.DataFrame) -> str:
    """The pooled figures, in words."""
    found = slices[slices["found"]]
    dist = np.hypot(found["dx"], found["dy"])
    lines = [
        f"subjects: {len(subjects)}, column found in {int(subjects['found'].sum())}",
        f"true-body slices: {len(slices)}; with a detected centre {len(found) / len(slices):.1%}; "
        f"within 10 mm of the true centre {(dist <= 10).sum() / len(slices):.1%} "
        f"(of the detected: {(dist <= 10).mean():.1%})",
        f"left-right error mm: median {found['dx'].abs().median():.1f}, 95th percentile "
        f"{found['dx'].abs().quantile(0.95):.1f}; antero-posterior: median {found['dy'].abs().median():.1f}, "
        f"95th percentile {found['dy'].abs().quantile(0.95):.1f}",
        f"detections: {int(subjects['detections'].sum())}, more than 15 mm from the true column: "
        f"{int(subjects['off_column'].sum())}",
        f"search time s: median {subjects['seconds'].median():.2f}, max {subjects['seconds'].max():.2f}",
    ]
    return "\n".join(lines)


def main(datalist: str, key: str = "testing", n: int | None = None, out_dir: str | None = None) -> str:
    subjects, slices = run(datalist, key, n)
    text = summarise(subjects, slices)
    print(text)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        subjects.to_csv(out / "image_spine_subjects.csv", index=False)
        slices.to_csv(out / "image_spine_slices.csv", index=False)
        (out / "image_spine_summary.txt").write_text(text + "\n")
    return text


def figure(out_png: str, half_width_mm: float = 60.0, columns: int = 7, **images: str) -> str:
    """Montage of every axial slice of one scan, cut to ``half_width_mm`` about the bodies found: the FF map
    (grey, 0-60 %) with the bodies found outlined in red and each slice's score.

    Args:
        out_png: the PNG to write.
        half_width_mm: half the side of the square shown about the bodies found (else the body outline) (mm).
        columns: panels per row.
        images: role -> NIfTI path (``water``/``fat`` or ``inphase``/``opposed``), as :func:`load_dixon` takes them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scan = load_dixon({"subject": Path(out_png).stem, **images})
    ffr = compute_ff(scan)
    ff = ffr.ff * 100.0
    spine = find_spine(ff, ffr.affine)
    mask = spine.body_mask()
    axis = spine.axis
    plane = [a for a in range(3) if a != axis]
    pixel = np.linalg.norm(ffr.affine[:3, :3], axis=0)[plane]
    # about the bodies found (else the body outline's centre)
    shown = mask if mask.any() else np.isfinite(ff)
    centre = [int(np.median(np.nonzero(shown.any(axis=tuple(b for b in range(3) if b != a)))[0])) for a in plane]
    half = [int(half_width_mm / p) for p in pixel]
    cut = [slice(max(0, c - h), c + h) for c, h in zip(centre, half)]
    n = ff.shape[axis]
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.6 * rows))
    for k, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if k >= n:
            continue
        image = np.take(ff, k, axis=axis)[tuple(cut)]
        found = np.take(mask, k, axis=axis)[tuple(cut)]
        ax.imshow(np.nan_to_num(image, nan=0.0).T, cmap="gray", vmin=0, vmax=60, interpolation="nearest")
        if found.any():
            ax.contour(found.T, [0.5], colors="red", linewidths=0.8)
        ax.set_title(f"{k}: {spine.confidence[k]:.2f}" if found.any() else f"{k}: -", fontsize=7)
    fig.suptitle(f"{Path(out_png).stem}: {'found' if spine.found else 'not found'}, {spine.reason}", fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=72)
    plt.close(fig)
    print(spine.reason)
    return spine.reason


if __name__ == "__main__":
    import fire

    fire.Fire({"accuracy": main, "figure": figure})
