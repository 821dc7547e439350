"""Tiny DICOM Dixon studies and ways to damage copies of them, shared by the DICOM tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from scripts.phantom.dicom_export import VENDOR_STYLES, write_dicom_study

ROLES = ("water", "fat", "inphase", "opposed", "ff")


def write_vendor_studies(subject, tmp_path_factory) -> dict[str, Path]:
    """One study of ``subject`` per vendor style: vendor -> its ``dicom`` folder."""
    out = {}
    for vendor in VENDOR_STYLES:
        root = tmp_path_factory.mktemp(vendor)
        write_dicom_study(subject, root, vendor=vendor)
        out[vendor] = root / "dicom"
    return out


def copy_study(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit(files, **values) -> None:
    """Set DICOM attributes in place in each file."""
    for f in files:
        ds = pydicom.dcmread(f)
        for k, v in values.items():
            setattr(ds, k, v)
        ds.save_as(f)


def anonymise(study: Path) -> None:
    """Strip every role hint: ImageType generic, descriptions 'series N'."""
    for folder in sorted(study.iterdir()):
        files = sorted(folder.iterdir())
        n = pydicom.dcmread(files[0]).SeriesNumber
        edit(files, ImageType=["ORIGINAL", "PRIMARY", "M"], SeriesDescription=f"series {n}")
