"""Subjects from a MONAI datalist (scripts/io/datalist.py, through discover_subjects)."""

from __future__ import annotations

from pathlib import Path

from scripts.io.discover import discover_subjects


def test_discover_from_phantom_datalist(cohort):
    entries = discover_subjects(cohort, datalist=cohort / "datalist.json", datalist_key="testing")
    assert [e["subject"] for e in entries] == ["sub-0002"]
    e = entries[0]
    assert e["dixon_set"] == "water_fat+inphase"
    for role in ("water", "fat", "inphase", "opposed", "ff", "label"):
        assert Path(e[role]).is_absolute() and Path(e[role]).is_file()
        assert Path(e[role]).name == f"sub-0002_{role}.nii.gz"
    assert e["image"] == e["inphase"]
    # an absent key falls back to every section, with a warning in the log
    assert [x["subject"] for x in discover_subjects(None, cohort / "datalist.json", "holdout")] == [
        "sub-0001",
        "sub-0002",
    ]
