"""scripts.studies.image_spine_accuracy on a two-subject anatomy-complete cohort made here (low geometry): the column
is found, the errors are small and no detection lies off the true column; a subject whose FF map holds no marrow
contrast counts as not found, with no detection."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scripts.phantom import Acquisition, generate_subject
from scripts.phantom.cohort import generate_cohort
from scripts.studies.image_spine_accuracy import subject_rows, summarise

from tests.conftest import BUNDLE_ROOT


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("complete") / "cohort"
    generate_cohort(out, n=2, seed=5, geometry="low", n_validation=0, progress=False, anatomy="complete")
    return out


def test_the_study_on_a_small_cohort(cohort, tmp_path):
    datalist = cohort / "datalist.json"
    cmd = [
        sys.executable,
        "-m",
        "scripts.studies.image_spine_accuracy",
        "accuracy",
        "--datalist",
        str(datalist),
        "--key",
        "training",
        "--out_dir",
        str(tmp_path),
    ]
    done = subprocess.run(cmd, cwd=BUNDLE_ROOT, check=True, capture_output=True, text=True)
    assert "column found in 2" in done.stdout, done.stdout
    text = (tmp_path / "image_spine_summary.txt").read_text()
    within = float(text.split("within 10 mm of the true centre ")[1].split("%")[0])
    assert within >= 80.0, text
    assert "more than 15 mm from the true column: 0" in text, text


def test_no_marrow_contrast_is_not_found():
    subj = generate_subject(5, Acquisition.preset("low"), anatomy="complete")
    flat = np.where(subj.images["ff_true"] > 0.01, 8.0, np.nan)
    summary, rows = subject_rows(flat, subj.affine, subj.images["tissue"])
    assert not summary["found"] and summary["detections"] == 0 and summary["off_column"] == 0
    assert rows and not any(r["found"] for r in rows)
    text = summarise(pd.DataFrame([summary]), pd.DataFrame(rows).assign(dx=np.nan, dy=np.nan))
    assert "column found in 0" in text and "with a detected centre 0.0%" in text
