"""evaluate_phantom on an anatomy-complete phantom: muscles always, the vertebral context when predicted."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scripts.evaluation.evaluate_phantom import evaluate_run, summarise
from scripts.phantom.cohort import generate_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("complete")
    generate_cohort(root / "ph", n=1, seed=5, geometry="tiny", n_validation=0, n_testing=1, anatomy="complete")
    return root / "ph"


def _predict(cohort: Path, out: Path, with_context: bool) -> None:
    """A perfect 'prediction': the truth label map (merged with the vertebrae when asked) and the true FF table."""
    entry = json.loads((cohort / "datalist.json").read_text())["testing"][0]
    sid = entry["subject"]
    label = nib.load(cohort / entry["label"])
    arr = np.asarray(label.dataobj)
    if with_context:
        arr = np.where(arr == 0, np.asarray(nib.load(cohort / entry["vertebrae"]).dataobj), arr)
    (out / sid).mkdir(parents=True)
    nib.save(nib.Nifti1Image(arr.astype(np.uint8), label.affine), out / sid / f"{sid}_seg.nii.gz")
    truth = pd.read_csv(cohort / "ground_truth.csv", dtype={"subject": str})
    truth[truth.subject == sid][["muscle", "side", "ff_mean_pct", "volume_ml"]].to_csv(
        out / sid / f"{sid}_ff_table.csv", index=False
    )


def test_vertebral_context_is_scored_when_predicted(cohort: Path, tmp_path: Path) -> None:
    _predict(cohort, tmp_path / "ctx", with_context=True)
    seg, ff = evaluate_run(str(cohort), str(tmp_path / "ctx"))
    midline = seg[seg.side == "midline"].dropna(subset=["dice"])
    assert len(midline) >= 3 and (midline.dice == 1.0).all()  # the tiny phantom covers several bodies
    assert (seg[seg.side == "mean"].dice == 1.0).all()
    text = summarise(seg, ff)
    assert "| vertebral context |" in text and "vertebral_body_L3" in text


def test_muscle_only_prediction_is_not_scored_on_the_spine(cohort: Path, tmp_path: Path) -> None:
    _predict(cohort, tmp_path / "muscles", with_context=False)
    seg, ff = evaluate_run(str(cohort), str(tmp_path / "muscles"))
    assert set(seg.side) == {"left", "right", "mean"} and (seg.dice.dropna() == 1.0).all()
    assert "vertebral context" not in summarise(seg, ff)
