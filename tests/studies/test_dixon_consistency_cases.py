"""scripts.studies.dixon_consistency_cases on a two-subject tiny phantom cohort written here: the as-generated input
passes, the water image given as in-phase and the strongest noise are reviewed, the fat image is a note only."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scripts.phantom import Acquisition, generate_subject
from scripts.studies.dixon_consistency_cases import degraded_inphase, main, measure_cohort, write_cases


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    entries = []
    for seed in (3, 4):
        subj = generate_subject(seed, Acquisition.preset("tiny"))
        entry = {"subject": f"sub-{seed}"}
        for role in ("water", "fat", "inphase", "opposed", "label", "ff_true"):
            entry[role] = f"sub-{seed}_{role}.nii.gz"
            nib.save(nib.Nifti1Image(np.asarray(subj.images[role], np.float32), subj.affine), str(root / entry[role]))
        entries.append(entry)
    (root / "datalist.json").write_text(json.dumps({"training": entries, "validation": [], "testing": []}))
    return root


def test_each_case_gets_the_finding_it_should(cohort):
    table = measure_cohort(str(cohort)).set_index(["subject", "case"])
    for subject in ("sub-3", "sub-4"):
        clean = table.loc[(subject, "as_generated")]
        assert not clean["review"] and clean["findings"] == "" and clean["contrast"] == pytest.approx(1.0, abs=0.03)
        assert table.loc[(subject, "water_as_inphase"), "review"]
        assert table.loc[(subject, "water_as_inphase"), "contrast"] < 0.3
        assert table.loc[(subject, "noise_0.5"), "review"]
        fat = table.loc[(subject, "fat_as_inphase")]
        assert not fat["review"] and fat["findings"].startswith("note:")
    summary = main(str(cohort), out_csv=str(cohort / "out.csv"))
    assert "water_as_inphase" in summary and (cohort / "out.csv").is_file()


def test_unknown_cases_and_folders_are_refused(cohort, tmp_path):
    with pytest.raises(ValueError, match="unknown case 'blur'"):
        degraded_inphase({"inphase": np.ones((2, 2, 2))}, "blur", np.random.default_rng(0))
    with pytest.raises(FileNotFoundError, match="no datalist.json"):
        measure_cohort(str(tmp_path))
    with pytest.raises(ValueError, match="unknown case"):
        write_cases(str(cohort), str(tmp_path / "copy"), ["blur"])


def test_a_degraded_copy_holds_each_subject_and_case(cohort, tmp_path):
    path = write_cases(str(cohort), str(tmp_path / "copy"), ["water_as_inphase", "noise_0.25"])
    datalist = json.loads(Path(path).read_text())
    subjects = [e["subject"] for e in datalist["testing"]]
    assert subjects == ["sub-3-waterasinphase", "sub-3-noise025", "sub-4-waterasinphase", "sub-4-noise025"]
    entry = datalist["testing"][0]
    inphase = np.asarray(nib.load(str(tmp_path / "copy" / entry["image"])).dataobj)
    water = np.asarray(nib.load(str(tmp_path / "copy" / entry["water"])).dataobj)
    np.testing.assert_array_equal(inphase, water)
    with pytest.raises(FileExistsError, match="not empty"):
        write_cases(str(cohort), str(tmp_path / "copy"), ["noise_0.25"])
