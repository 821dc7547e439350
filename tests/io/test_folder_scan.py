"""Subjects from a folder of NIfTI files (scripts/io/folder_scan.py, through discover_subjects)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scripts.io.discover import discover_subjects
from scripts.io.roles import dixon_set_of

from tests.io.dixon_files import SHAPE, write


def test_discover_folder_with_subject_subfolders(cohort):
    entries = discover_subjects(cohort)  # datalist.json, csv and tsv at the top are not NIfTI; ff_true is ignored
    assert [e["subject"] for e in entries] == ["sub-0001", "sub-0002"]
    assert all(e["dixon_set"] == "water_fat+inphase" for e in entries)
    assert Path(entries[0]["ff"]).name == "sub-0001_ff.nii.gz"
    assert Path(entries[0]["label"]).name == "sub-0001_label.nii.gz"


def test_discover_flat_folder_and_network_input(tmp_path):
    data = np.full(SHAPE, 50.0, np.float32)
    for name in ("P01_W", "P01_F", "P01_IP", "P02_W", "P02_F", "P03_IP", "P03_OP", "P04_IP", "P04_FF"):
        write(tmp_path / f"{name}.nii.gz", data)
    (tmp_path / "README.txt").write_text("scans")
    entries = {e["subject"]: e for e in discover_subjects(tmp_path)}
    assert sorted(entries) == ["P01", "P02", "P03", "P04"]
    assert entries["P01"]["dixon_set"] == "water_fat+inphase"
    assert entries["P01"]["image"] == str(tmp_path / "P01_IP.nii.gz")  # in-phase when present
    assert entries["P02"]["dixon_set"] == "water_fat" and entries["P02"]["inphase"] is None
    assert entries["P02"]["image"] == [str(tmp_path / "P02_W.nii.gz"), str(tmp_path / "P02_F.nii.gz")]
    assert entries["P03"]["dixon_set"] == "inphase_opposed"
    assert entries["P04"]["dixon_set"] == "ff_map+inphase"
    assert dixon_set_of(["water", "ff"]) is None


def test_ambiguous_names_raise_naming_both_files(tmp_path):
    data = np.full(SHAPE, 50.0, np.float32)
    for name in ("P01_W", "P01_water", "P01_F"):
        write(tmp_path / f"{name}.nii.gz", data)
    with pytest.raises(
        ValueError,
        match=r"ambiguous water image for subject 'P01'.*P01_W\.nii\.gz' and " r"'.*P01_water\.nii\.gz' both match",
    ):
        discover_subjects(tmp_path)


def test_unrecognisable_folder(tmp_path):
    data = np.full(SHAPE, 50.0, np.float32)
    write(tmp_path / "scan_series3.nii.gz", data)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(
        ValueError,
        match=r"no Dixon images recognised in .*found 1 NIfTI file\(s\) "
        r"\(scan_series3\.nii\.gz\) and 1 other file\(s\) \(notes\.txt\).*mapping=",
    ):
        discover_subjects(tmp_path)


def test_role_letters_in_subject_names_and_symlinked_folders_are_discovered(tmp_path):
    data = np.full(SHAPE, 50.0, np.float32)
    root = tmp_path / "data"
    for name in ("f_trunc_W", "f_trunc_F", "P01_W", "P01_F"):
        write(root / f"{name}.nii.gz", data)
    elsewhere = tmp_path / "export" / "P02"
    for name in ("water", "fat"):
        write(elsewhere / f"{name}.nii.gz", data)
    (root / "P02").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(root, target_is_directory=True)  # a link cycle is read once
    entries = {e["subject"]: e for e in discover_subjects(root)}
    assert sorted(entries) == ["P01", "P02", "f_trunc"]
    assert entries["P02"]["dixon_set"] == "water_fat"
