"""read_entries (scripts/studies/cv_splits.py): every file role of a phantom cohort's datalist becomes an absolute path,
so entries of two cohorts can share one datalist (same subject names, different folders)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripts.studies.cv_splits import PATH_KEYS, read_entries, write_study_datalist


def test_anatomy_complete_roles_become_absolute_paths(tmp_path: Path):
    cohort = tmp_path / "complete"
    roles = {"image": "inphase", "label": "label", "vertebrae": "vertebrae", "tissue": "tissue", "water": "water"}
    entry = {"subject": "sub-0001", "age": 40}
    for role, name in roles.items():
        path = cohort / "sub-0001" / f"sub-0001_{name}.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        entry[role] = f"sub-0001/sub-0001_{name}.nii.gz"
    (cohort / "datalist.json").write_text(json.dumps({"training": [entry]}))
    (got,) = read_entries(cohort, "training")
    for role, name in roles.items():
        assert role in PATH_KEYS
        assert got[role] == str((cohort / "sub-0001" / f"sub-0001_{name}.nii.gz").resolve())
    assert got["age"] == 40 and got["subject"] == "sub-0001"


def test_a_study_datalist_is_written_once_and_never_replaced(tmp_path: Path):
    data = {"training": [{"subject": "a"}]}
    path = write_study_datalist(tmp_path / "run", data)
    assert json.loads(path.read_text()) == data
    assert write_study_datalist(tmp_path / "run", data) == path  # a resumed study finds its own
    with pytest.raises(ValueError, match="exists with other subjects"):
        write_study_datalist(tmp_path / "run", {"training": [{"subject": "b"}]})
    assert json.loads(path.read_text()) == data
