"""Grouping DICOM files into series (scripts/io/dicom_series.py): a series mixing image types is split."""

from __future__ import annotations

import pydicom
from scripts.io.dicom_select import select_dixon_series
from scripts.io.dicom_series import scan_dicom_folder

from tests.io.dicom_studies import ROLES, copy_study, edit


def test_philips_series_mixing_image_types_is_split(studies, tmp_path):
    study = copy_study(studies["philips"], tmp_path / "study")
    water = next(study.glob("01_*"))
    uid = pydicom.dcmread(next(water.iterdir())).SeriesInstanceUID
    for folder in study.iterdir():  # one SeriesInstanceUID for all five images, told apart by ImageType
        edit(sorted(folder.iterdir()), SeriesInstanceUID=uid, SeriesDescription="T1 mDIXON tra")
    series = scan_dicom_folder(study)
    assert len(series) == 5
    selected = select_dixon_series(series)
    assert {r: s.key.split("#")[1] for r, s in selected.items()} == {r: r for r in ROLES}
