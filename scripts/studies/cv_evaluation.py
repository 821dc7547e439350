"""Evaluation step of the cross-validation study: every method's label maps of a split against the reference labels,
segmentation metrics and the fat fraction under each label, one long table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.evaluation.segmentation_metrics import compute_label_metrics
from scripts.grid import check_same_grid
from scripts.io.load import load_dixon
from scripts.quantification.ff_map import compute_ff
from scripts.quantification.statistics import quantify_muscles

__all__ = ["EVALUATION_FORMAT", "evaluate_split"]

#: part of the evaluation step's inputs: change it when evaluate_split's columns change, so that resuming a finished
#: study with a newer bundle redoes the (cheap) evaluation and the report, not the training
EVALUATION_FORMAT = "2"


def _ff_means(
    label: np.ndarray, affine: np.ndarray, ff: Any, subject: str, border_trim_ff: float | None = None
) -> pd.DataFrame:
    res = quantify_muscles(
        label, affine, ff.ff, ff.affine, ff.provenance, subject=subject, border_trim_ff=border_trim_ff
    )
    return res.table[["muscle", "side", "ff_mean_pct"]]


def evaluate_split(
    test: Sequence[Mapping[str, Any]],
    predictions: Mapping[str, Path],
    seconds: Mapping[str, Mapping[str, float]],
    truth: pd.DataFrame | None,
    border_trim_ff: float | None = None,
) -> pd.DataFrame:
    """Metrics of every method's label maps against the reference labels of the test subjects.

    Args:
        test: datalist entries (absolute paths) of the split's test subjects.
        predictions: method -> folder holding ``<subject>/<subject>_seg.nii.gz`` per subject.
        seconds: method -> subject -> segmentation time in s.
        truth: the dataset's ``ground_truth.csv`` (phantoms), whose ``ff_true_pct`` is added when given.
        border_trim_ff: the bundle's fat-border rule (:func:`bundle_border_trim_ff`) for the ``*_trim_*`` columns;
            ``None`` leaves them out.

    Returns:
        long table: subject, method, label, muscle, side, the metric columns of
        :func:`scripts.evaluation.segmentation_metrics.compute_label_metrics`, ``ff_method_pct`` (FF under the method's
        label,
        plain mean: the paper's rule), ``ff_ref_pct`` (under the reference label, same FF map, plain mean),
        ``ff_error_pp`` (their difference), ``ff_method_trim_pct`` and ``ff_error_trim_pp`` (FF under the method's
        label by the bundle's rule, which leaves out mostly-fat border voxels, against the same plain reference),
        ``ff_true_pct`` (phantom truth, if any), ``seconds``.
    """
    rows = []
    for e in test:
        sid = e["subject"]
        ref_img = nib.load(e["label"])
        ref = np.asarray(ref_img.dataobj).astype(np.uint8)
        spacing = tuple(float(z) for z in ref_img.header.get_zooms()[:3])
        scan = load_dixon({k: v for k, v in e.items() if k in ("subject", "water", "fat", "inphase", "opposed", "ff")})
        ff = compute_ff(scan)
        ff_ref = _ff_means(ref, ref_img.affine, ff, sid).rename(columns={"ff_mean_pct": "ff_ref_pct"})
        for method, folder in predictions.items():
            path = folder / sid / f"{sid}_seg.nii.gz"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: the {method} label map of {sid} is missing")
            pred_img = nib.load(path)
            check_same_grid(
                pred_img.shape[:3],
                pred_img.affine,
                ref_img.shape[:3],
                ref_img.affine,
                name_a=str(path),
                name_b=e["label"],
            )
            pred = np.asarray(pred_img.dataobj).reshape(ref.shape).astype(np.uint8)
            m = compute_label_metrics(pred, ref, spacing)
            m = m.merge(
                _ff_means(pred, pred_img.affine, ff, sid).rename(columns={"ff_mean_pct": "ff_method_pct"}),
                on=["muscle", "side"],
                how="left",
            ).merge(ff_ref, on=["muscle", "side"], how="left")
            m["ff_error_pp"] = m.ff_method_pct - m.ff_ref_pct
            if border_trim_ff is not None:
                trim = _ff_means(pred, pred_img.affine, ff, sid, border_trim_ff)
                m = m.merge(
                    trim.rename(columns={"ff_mean_pct": "ff_method_trim_pct"}), on=["muscle", "side"], how="left"
                )
                m["ff_error_trim_pp"] = m.ff_method_trim_pct - m.ff_ref_pct
            if truth is not None:
                t = truth[truth.subject == sid][["muscle", "side", "ff_true_pct"]]
                if not (t.side == "mean").any():
                    t = pd.concat([t, t.groupby("muscle", as_index=False).ff_true_pct.mean().assign(side="mean")])
                m = m.merge(t, on=["muscle", "side"], how="left")
            m.insert(0, "method", method)
            m.insert(0, "subject", sid)
            m["seconds"] = seconds[method][sid]
            rows.append(m)
    return pd.concat(rows, ignore_index=True)
