"""Subjects from glob patterns per role (scripts/io/glob_mapping.py, through discover_subjects)."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.io.discover import discover_subjects

from tests.io.dixon_files import SHAPE, write, write_json


def test_discover_with_explicit_mapping(tmp_path):
    data = np.full(SHAPE, 50.0, np.float32)
    for sid in ("A7", "B9"):
        for echo in ("e3", "e4"):
            write(tmp_path / sid / f"{sid}_mag_{echo}.nii.gz", data)
    with pytest.raises(ValueError, match="no Dixon images recognised"):
        discover_subjects(tmp_path)  # echo numbers say nothing about water or fat
    # a pattern without "/" matches file names at any depth; one with "/" matches the path under dataset_dir
    mapping = {"water": "*_mag_e3.nii.gz", "fat": "*/*_MAG_E4.nii.gz"}
    for given in (mapping, write_json(tmp_path.parent / "mapping.json", mapping)):
        entries = discover_subjects(tmp_path, mapping=given)
        assert [e["subject"] for e in entries] == ["A7", "B9"]
        assert entries[1]["water"] == str(tmp_path / "B9" / "B9_mag_e3.nii.gz")
        assert entries[1]["fat"] == str(tmp_path / "B9" / "B9_mag_e4.nii.gz")
        assert entries[1]["dixon_set"] == "water_fat"
        assert entries[1]["image"] == [entries[1]["water"], entries[1]["fat"]]
