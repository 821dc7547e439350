"""The quality verdict of every muscle side the network drew on the single-contrast real samples.

:mod:`scripts.studies.evaluate_real_samples` writes the predicted label map of each real sample
(``<out_dir>/<sample>_pred.nii.gz``, on the sample's grid) and its QC montages. The samples have no water and fat
images, so the bundle gives them no FF map and no verdict; this study judges their label maps with the same rules
(:func:`scripts.quality.verdict.assess_segmentation`) without the FF-signal checks (no FF) and without the network's
confidence (the study's segmentation does not keep the softmax). The body outline is the image above the FF map's
denominator rule (5 % of the 99th percentile), as the FF map would have it. Commands::

    python -m scripts.studies.evaluate_real_samples --shared_dir ../shared --out_dir real_qc --out_csv real.csv
    python -m scripts.studies.real_sample_verdicts --shared_dir ../shared --pred_dir real_qc --out_csv verdicts.csv
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.quality.verdict import assess_segmentation
from scripts.quantification.formulas import denominator_threshold
from scripts.studies.evaluate_real_samples import SAMPLES

__all__ = ["sample_verdicts", "main"]


def sample_verdicts(image_path: str, pred_path: str) -> pd.DataFrame:
    """One row per muscle side of the predicted label map: voxels, volume (mL), status, score and reasons.

    Args:
        image_path: the sample's image (NIfTI; its grid is the label map's).
        pred_path: the predicted label map (values 0-8, optionally 9-14), on the image's grid.

    Raises:
        ValueError: the label map and the image do not share a shape.
    """
    img, pred_img = nib.load(image_path), nib.load(pred_path)
    image = np.asarray(img.dataobj, dtype=np.float32)
    pred = np.asarray(pred_img.dataobj).astype(np.int16)
    if pred.shape != image.shape:
        raise ValueError(f"{pred_path}: label map shape {pred.shape} differs from the image's {image.shape}")
    body = image >= denominator_threshold(image)
    verdicts = assess_segmentation(pred, pred_img.affine, ff=None, body=body)
    voxel_ml = float(np.prod(pred_img.header.get_zooms()[:3])) / 1000.0
    rows = []
    for value, v in sorted(verdicts.items()):
        n = int((pred == value).sum())
        rows.append(
            {
                "label": value,
                "muscle": v.muscle,
                "side": v.side,
                "n_voxels": n,
                "volume_ml": round(n * voxel_ml, 2),
                "qc_status": v.status,
                "qc_score": round(v.score, 3),
                "qc_reasons": "; ".join(v.reasons),
            }
        )
    return pd.DataFrame(rows)


def main(shared_dir: str = "../shared", pred_dir: str = "real_qc", out_csv: str | None = None) -> str:
    """Judge every sample of :data:`SAMPLES` whose prediction is in ``pred_dir``; return the table as text."""
    root, preds = Path(shared_dir) / "real-samples", Path(pred_dir)
    tables = []
    for name, (image_rel, _, _) in SAMPLES.items():
        pred = preds / f"{name}_pred.nii.gz"
        if pred.is_file():
            tables.append(sample_verdicts(str(root / image_rel), str(pred)).assign(sample=name))
    if not tables:
        raise FileNotFoundError(
            f"{preds} holds no <sample>_pred.nii.gz: run python -m scripts.studies.evaluate_real_samples --out_dir "
            f"{preds} first"
        )
    table = pd.concat(tables, ignore_index=True)
    if out_csv:
        table.to_csv(out_csv, index=False)
    return table.to_string(max_colwidth=200)


if __name__ == "__main__":
    import fire

    fire.Fire(main)
