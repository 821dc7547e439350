"""Find DICOM Part 10 files, and tell a folder of DICOM input from a folder of NIfTI files."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["is_dicom_file", "find_dicom_files", "folder_holds_dicom"]


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """Whether a file is DICOM Part 10: the ``DICM`` magic after the 128-byte preamble.

    Files without the preamble (raw data sets from old exporters) are not detected; convert them with a DICOM
    tool first (e.g. ``dcmconv``) or name them in a datalist of NIfTI files.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def find_dicom_files(folder: str | os.PathLike[str]) -> list[Path]:
    """All DICOM Part 10 files under ``folder`` (recursive; hidden files and folders skipped), sorted."""
    root = Path(folder)
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if is_dicom_file(p):
            out.append(p)
    return out


def folder_holds_dicom(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is DICOM input: no NIfTI file in it and at least one DICOM Part 10 file.

    A folder with NIfTI files is left to the NIfTI discovery, so a DICOM file lying beside NIfTI inputs (a
    secondary capture, an exported report) never changes how a NIfTI dataset is read.
    """
    root = Path(folder)
    if not root.is_dir():
        return False
    found_dicom = False
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        low = p.name.lower()
        if low.endswith((".nii", ".nii.gz")):
            return False
        if not found_dicom and is_dicom_file(p):
            found_dicom = True
    return found_dicom
