"""Telling DICOM input from NIfTI input (scripts/io/dicom_files.py)."""

from __future__ import annotations

import shutil

from scripts.io.dicom_files import folder_holds_dicom
from scripts.io.discover import discover_subjects
from scripts.phantom import write_subject


def test_nifti_folders_are_not_taken_for_dicom(studies, tiny_subject, tmp_path):
    write_subject(tiny_subject, tmp_path / "nifti")
    shutil.copytree(studies["siemens"], tmp_path / "nifti" / "dicom_beside")  # NIfTI wins over stray DICOM
    assert not folder_holds_dicom(tmp_path / "nifti")
    assert folder_holds_dicom(studies["siemens"])
    assert discover_subjects(tmp_path / "nifti")[0]["water"].endswith(".nii.gz")
