"""DICOM studies converted to NIfTI (scripts/io/dicom_study.py), and the plain bundle run on DICOM end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.io.dicom_study import dicom_dataset_entries
from scripts.phantom import Acquisition, generate_subject, write_subject
from scripts.phantom.dicom_export import write_dicom_study

from tests.conftest import BUNDLE_ROOT


def test_dicom_entries_convert_each_study_into_the_cache(studies, tmp_path):
    cache = tmp_path / "cache"
    entries = dicom_dataset_entries(studies["philips"].parent, cache_dir=cache)  # a folder above the study
    assert [e["subject"] for e in entries] == ["sub-0005"]
    assert entries[0]["dixon_set"] == "water_fat+inphase"
    assert Path(entries[0]["water"]).parent == cache / "sub-0005"
    first = Path(entries[0]["water"]).read_bytes()
    dicom_dataset_entries(studies["philips"], cache_dir=cache)
    assert Path(entries[0]["water"]).read_bytes() == first  # deterministic: a repeated run is the same run
    assert not list(studies["philips"].rglob("*.nii*"))  # the user's folder is only read


# ---------------------------------------------------------------------------------------------------------------
# the plain bundle on DICOM
# ---------------------------------------------------------------------------------------------------------------


def _bundle(dataset_dir: Path, output_dir: Path) -> subprocess.CompletedProcess:
    # one pass, without flip ensembling and batch-norm adaptation: the comparison is of the two inputs, not of the
    # network's passes (each is ~10 s on the 2-core CPU)
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        "configs/inference.json",
        "--dataset_dir",
        str(dataset_dir),
        "--output_dir",
        str(output_dir),
        "--write_report",
        "false",
        "--flip_ensemble",
        "false",
        "--adapt_batch_norm",
        "false",
    ]
    return subprocess.run(cmd, cwd=BUNDLE_ROOT, capture_output=True, text=True, timeout=600)


def test_inference_on_dicom_equals_inference_on_nifti(tmp_path):
    subj = generate_subject(3, Acquisition.preset("low"))
    write_dicom_study(subj, tmp_path, vendor="ge")
    write_subject(subj, tmp_path / "nifti", write_ff_true=False)
    runs = {}
    for kind, folder in (("nifti", tmp_path / "nifti"), ("dicom", tmp_path / "dicom")):
        res = _bundle(folder, tmp_path / f"eval_{kind}")
        assert res.returncode == 0, res.stderr[-3000:]
        runs[kind] = tmp_path / f"eval_{kind}" / subj.subject_id
    sid = subj.subject_id
    a = pd.read_csv(runs["nifti"] / f"{sid}_ff_table.csv")
    b = pd.read_csv(runs["dicom"] / f"{sid}_ff_table.csv")
    assert len(a) == 12 and a.ff_mean_pct.notna().all()
    pd.testing.assert_frame_equal(a.drop(columns="ff_source"), b.drop(columns="ff_source"))
    assert b.ff_source[0] == f"water={sid}_water.nii; fat={sid}_fat.nii"
    seg_a, seg_b = nib.load(runs["nifti"] / f"{sid}_seg.nii.gz"), nib.load(runs["dicom"] / f"{sid}_seg.nii.gz")
    np.testing.assert_array_equal(np.asarray(seg_a.dataobj), np.asarray(seg_b.dataobj))
    np.testing.assert_allclose(seg_b.affine, subj.affine, atol=1e-4)
    found = set(np.unique(np.asarray(seg_b.dataobj)).tolist())
    assert set(range(9)) <= found <= set(range(15))  # all eight muscles; bodies and sacrum with the spine network
    json_a = json.loads((runs["nifti"] / f"{sid}_ff_table.json").read_text())
    json_b = json.loads((runs["dicom"] / f"{sid}_ff_table.json").read_text())
    assert json.dumps(json_a).replace(".nii.gz", ".nii") == json.dumps(json_b)
    # the converted files are deterministic: the same DICOM run again into the same folder is the same run
    assert _bundle(tmp_path / "dicom", tmp_path / "eval_dicom").returncode == 0
