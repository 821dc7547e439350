"""Naming and picking the Dixon series of a study (scripts/io/dicom_select.py): vendor styles, user rules, ambiguity."""

from __future__ import annotations

import json
import shutil

import pydicom
import pytest
from scripts.io.dicom_rules import load_rules
from scripts.io.dicom_select import classify_series, select_dixon_series
from scripts.io.dicom_series import scan_dicom_folder
from scripts.io.discover import discover_subjects
from scripts.io.errors import DixonInputError
from scripts.phantom.dicom_export import VENDOR_STYLES

from tests.io.dicom_studies import ROLES, anonymise, copy_study, edit

# ---------------------------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", sorted(VENDOR_STYLES))
def test_each_vendor_style_is_classified(studies, vendor):
    series = scan_dicom_folder(studies[vendor])
    assert len(series) == 5
    selected = select_dixon_series(series)
    assert set(selected) == set(ROLES)
    for role, s in selected.items():
        assert s.description == VENDOR_STYLES[vendor].description[role]
    # GE writes no role into ImageType: its roles come from the description prefix
    reason = classify_series(selected["fat"])[1]
    assert reason.startswith("SeriesDescription" if vendor == "ge" else "ImageType")


# ---------------------------------------------------------------------------------------------------------------
# user rules
# ---------------------------------------------------------------------------------------------------------------


def test_user_rules_select_series_without_role_hints(studies, tmp_path):
    study = copy_study(studies["siemens"], tmp_path / "study")
    anonymise(study)
    series = scan_dicom_folder(study)
    with pytest.raises(DixonInputError, match=r"(?s)no usable Dixon set.*series 1 'series 1'.*no role"):
        select_dixon_series(series)
    rules = {
        "water": {"SeriesNumber": "^1$"},
        "fat": {"SeriesDescription": "series 2$"},
        "inphase": {"SeriesNumber": "^3$", "Modality": "MR"},
    }
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(rules))
    selected = select_dixon_series(series, rules_file)
    assert {r: s.header["SeriesNumber"] for r, s in selected.items()} == {"water": 1, "fat": 2, "inphase": 3}
    # the same through the plain bundle's discovery: mapping carries the rules for a DICOM folder
    entries = discover_subjects(study, mapping=rules, datalist=None)
    assert entries[0]["dixon_set"] == "water_fat+inphase"
    assert entries[0]["opposed"] is None


def test_user_rules_take_precedence_over_vendor_tokens(studies):
    series = scan_dicom_folder(studies["siemens"])
    # swap water and fat on purpose: the user decides both roles, the ImageType no longer counts for them
    rules = load_rules({"water": {"SeriesDescription": "_F$"}, "fat": {"SeriesDescription": "_W$"}})
    selected = select_dixon_series(series, rules)
    assert selected["water"].description.endswith("_F") and selected["fat"].description.endswith("_W")
    assert selected["inphase"].description.endswith("_in")  # roles without a rule keep the vendor tokens


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------


def test_two_series_for_one_role_name_both(studies, tmp_path):
    study = copy_study(studies["ge"], tmp_path / "study")
    shutil.copytree(next(study.glob("01_*")), study / "99_copy")
    files = sorted((study / "99_copy").iterdir())
    edit(files, SeriesInstanceUID=pydicom.uid.generate_uid(), SeriesNumber=99)
    with pytest.raises(
        DixonInputError,
        match=r"(?s)2 series qualify as the water image: series 1 'WATER: Ax LAVA-Flex'"
        r".*series 99 'WATER: Ax LAVA-Flex'.*SeriesNumber",
    ):
        select_dixon_series(scan_dicom_folder(study))
