"""Phantom cohorts (``scripts.phantom.cohort``): the CLI's tables and datalist, and worker processes changing
nothing in the files."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scripts.phantom import generate_cohort

from tests.conftest import BUNDLE_ROOT


def test_cohort_cli_writes_datalist_participants_and_truth(tmp_path):
    out = tmp_path / "cohort"
    cmd = [
        sys.executable,
        "-m",
        "scripts.phantom",
        "cohort",
        "--out_dir",
        str(out),
        "--n",
        "5",
        "--seed",
        "3",
        "--geometry",
        "tiny",
        "--n_testing",
        "1",
        "--progress",
        "False",
    ]
    subprocess.run(cmd, cwd=BUNDLE_ROOT, check=True, capture_output=True)
    dl = json.loads((out / "datalist.json").read_text())
    assert [len(dl[k]) for k in ("training", "validation", "testing")] == [3, 1, 1]
    for entry in dl["training"]:
        for key in ("image", "label", "water", "fat", "inphase", "opposed", "ff"):
            assert (out / entry[key]).is_file()
    parts = pd.read_csv(out / "participants.tsv", sep="\t")
    assert list(parts.columns[:5]) == ["participant_id", "sex", "age", "activity", "bmi"]
    assert parts.age.between(20, 70).all()
    gt = pd.read_csv(out / "ground_truth.csv")
    assert len(gt) == 5 * 12 and set(gt.side) == {"left", "right", "mean"}
    again = subprocess.run(cmd, cwd=BUNDLE_ROOT, capture_output=True, text=True)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr


def test_cohort_with_worker_processes_writes_the_same_files(tmp_path):
    a, b = tmp_path / "serial", tmp_path / "parallel"
    generate_cohort(a, n=3, seed=4, geometry="tiny", n_validation=1, progress=False)
    generate_cohort(b, n=3, seed=4, geometry="tiny", n_validation=1, progress=False, workers=2)
    for name in ("datalist.json", "participants.tsv", "ground_truth.csv"):
        assert (a / name).read_text() == (b / name).read_text()
    for sub in ("sub-0001", "sub-0002", "sub-0003"):
        for f in sorted((a / sub).iterdir()):
            ia, ib = nib.load(f), nib.load(b / sub / f.name)
            np.testing.assert_array_equal(np.asarray(ia.dataobj), np.asarray(ib.dataobj))
            np.testing.assert_array_equal(ia.affine, ib.affine)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        generate_cohort(tmp_path / "bad", n=1, progress=False, workers=0)
