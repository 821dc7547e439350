"""DICOM Dixon input: vendor role classification, user rules, geometry (RAS affine), bad input, bundle end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from scripts.io.dicom import (
    classify_series,
    description_tokens,
    dicom_dataset_entries,
    folder_holds_dicom,
    load_rules,
    scan_dicom_folder,
    select_dixon_series,
    stack_series,
)
from scripts.io.dixon_inputs import DixonInputError, discover_subjects
from scripts.phantom import Acquisition, generate_subject, write_subject
from scripts.phantom.dicom_export import VENDOR_STYLES, write_dicom_study

from tests.conftest import BUNDLE_ROOT

ROLES = ("water", "fat", "inphase", "opposed", "ff")


@pytest.fixture(scope="module")
def tiny_subject():
    return generate_subject(5, Acquisition.preset("tiny"))


@pytest.fixture(scope="module")
def studies(tiny_subject, tmp_path_factory) -> dict[str, Path]:
    """One tiny study per vendor style (read-only: tests that damage a study copy it first)."""
    out = {}
    for vendor in VENDOR_STYLES:
        root = tmp_path_factory.mktemp(vendor)
        write_dicom_study(tiny_subject, root, vendor=vendor)
        out[vendor] = root / "dicom"
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit(files, **values) -> None:
    for f in files:
        ds = pydicom.dcmread(f)
        for k, v in values.items():
            setattr(ds, k, v)
        ds.save_as(f)


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


@pytest.mark.parametrize(
    "description, role",
    [
        ("t1_vibe_dixon_tra_W", "water"),
        ("t1_vibe_dixon_tra_F", "fat"),
        ("t1_vibe_dixon_tra_in", "inphase"),
        ("t1_vibe_dixon_tra_opp", "opposed"),
        ("WATER: Ax LAVA-Flex", "water"),
        ("FAT: Ax LAVA-Flex", "fat"),
        ("InPhase: Ax LAVA-Flex", "inphase"),
        ("OutPhase: Ax LAVA-Flex", "opposed"),
        ("FatFrac: Ax IDEAL IQ", "ff"),
        ("mDIXON W", "water"),
        ("mDIXON IP", "inphase"),
        ("mDIXON OP", "opposed"),
        ("Fat fraction map", "ff"),
        ("out of phase", "opposed"),
        ("T2 FAT SAT ax", None),
        ("t2_tse_tra", None),
        ("localizer", None),
    ],
)
def test_description_tokens_name_the_role(description, role):
    from scripts.io.dicom import _role_from_description

    assert _role_from_description(description)[0] == role, description_tokens(description)


def test_philips_series_mixing_image_types_is_split(studies, tmp_path):
    study = _copy(studies["philips"], tmp_path / "study")
    water = next(study.glob("01_*"))
    uid = pydicom.dcmread(next(water.iterdir())).SeriesInstanceUID
    for folder in study.iterdir():  # one SeriesInstanceUID for all five images, told apart by ImageType
        _edit(sorted(folder.iterdir()), SeriesInstanceUID=uid, SeriesDescription="T1 mDIXON tra")
    series = scan_dicom_folder(study)
    assert len(series) == 5
    selected = select_dixon_series(series)
    assert {r: s.key.split("#")[1] for r, s in selected.items()} == {r: r for r in ROLES}


# ---------------------------------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", ["RAS", "LPS"])
def test_dicom_round_trip_gives_the_nifti_voxels_and_affine(orientation, tmp_path):
    subj = generate_subject(
        2,
        Acquisition(
            shape=(40, 32, 12), spacing=(3.1, 2.7, 5.5), orientation=orientation, fov_shift_mm=(7.3, -4.1, 11.9)
        ),
    )
    write_dicom_study(subj, tmp_path, vendor="siemens")
    selected = select_dixon_series(scan_dicom_folder(tmp_path / "dicom"))
    for role in ("water", "inphase", "ff"):
        volume, affine, datasets = stack_series(selected[role])
        assert volume.shape == subj.images[role].shape
        np.testing.assert_allclose(affine, subj.affine, atol=1e-4)
        expected = subj.images[role] * (100.0 if role == "ff" else 1.0)  # the FF series stores percent
        np.testing.assert_allclose(volume, expected, atol=0.05 if role == "ff" else 0)
        assert len(datasets) == volume.shape[2]
    # the label written beside the study sits on the same grid: a voxel's world position agrees
    label = nib.load(tmp_path / "truth" / f"{subj.subject_id}_label.nii.gz")
    np.testing.assert_allclose(label.affine, affine, atol=1e-4)


def test_slices_are_sorted_in_space_not_by_file_name(studies, tmp_path):
    study = _copy(studies["siemens"], tmp_path / "study")
    water = next(study.glob("01_*"))
    files = sorted(water.iterdir())
    for i, f in enumerate(files):  # reverse the file names and instance numbers
        f.rename(water / f"x{len(files) - i:04d}.dcm")
    ref, ref_affine, _ = stack_series(sorted(next(studies["siemens"].glob("01_*")).iterdir()))
    volume, affine, _ = stack_series(sorted(water.iterdir()))
    np.testing.assert_array_equal(volume, ref)
    np.testing.assert_allclose(affine, ref_affine)


# ---------------------------------------------------------------------------------------------------------------
# user rules
# ---------------------------------------------------------------------------------------------------------------


def _anonymous(study: Path) -> None:
    """Strip every role hint: ImageType generic, descriptions 'series N'."""
    for folder in sorted(study.iterdir()):
        files = sorted(folder.iterdir())
        n = pydicom.dcmread(files[0]).SeriesNumber
        _edit(files, ImageType=["ORIGINAL", "PRIMARY", "M"], SeriesDescription=f"series {n}")


def test_user_rules_select_series_without_role_hints(studies, tmp_path):
    study = _copy(studies["siemens"], tmp_path / "study")
    _anonymous(study)
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


def test_bad_rules_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="unknown role 'waterr'"):
        load_rules({"waterr": {"SeriesDescription": "W"}})
    with pytest.raises(ValueError, match=r"water.SeriesDescription regex '\(' is invalid"):
        load_rules({"water": {"SeriesDescription": "("}})
    with pytest.raises(ValueError, match="cannot read the series rules file"):
        load_rules(str(tmp_path / "missing.json"))


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------


def test_two_series_for_one_role_name_both(studies, tmp_path):
    study = _copy(studies["ge"], tmp_path / "study")
    shutil.copytree(next(study.glob("01_*")), study / "99_copy")
    files = sorted((study / "99_copy").iterdir())
    _edit(files, SeriesInstanceUID=pydicom.uid.generate_uid(), SeriesNumber=99)
    with pytest.raises(
        DixonInputError,
        match=r"(?s)2 series qualify as the water image: series 1 'WATER: Ax LAVA-Flex'"
        r".*series 99 'WATER: Ax LAVA-Flex'.*SeriesNumber",
    ):
        select_dixon_series(scan_dicom_folder(study))


def test_missing_slice_is_refused_as_non_uniform_spacing(studies, tmp_path):
    study = _copy(studies["siemens"], tmp_path / "study")
    water = next(study.glob("01_*"))
    (water / "IM_0010.dcm").unlink()
    with pytest.raises(DixonInputError, match=r"non-uniform slice spacing: gaps from 11.800 to 23.600 mm.*IM_0009"):
        stack_series(scan_dicom_folder(study)[0])


def test_mixed_orientations_are_refused(studies, tmp_path):
    study = _copy(studies["siemens"], tmp_path / "study")
    victim = next(study.glob("01_*")) / "IM_0005.dcm"
    _edit([victim], ImageOrientationPatient=[0, 1, 0, 0, 0, -1])
    with pytest.raises(DixonInputError, match=r"mixed slice orientations: IM_0005.dcm has ImageOrientationPatient"):
        stack_series(scan_dicom_folder(study)[0])


def test_duplicate_positions_and_no_dicom_are_explained(studies, tmp_path):
    study = _copy(studies["siemens"], tmp_path / "study")
    water = next(study.glob("01_*"))
    shutil.copy(water / "IM_0003.dcm", water / "IM_0003_echo2.dcm")
    with pytest.raises(DixonInputError, match=r"two slices at one position .*several images per location"):
        stack_series(scan_dicom_folder(study)[0])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DixonInputError, match=r"no DICOM Part 10 file .* found under .*empty"):
        scan_dicom_folder(tmp_path / "empty")


def test_nifti_folders_are_not_taken_for_dicom(studies, tiny_subject, tmp_path):
    write_subject(tiny_subject, tmp_path / "nifti")
    shutil.copytree(studies["siemens"], tmp_path / "nifti" / "dicom_beside")  # NIfTI wins over stray DICOM
    assert not folder_holds_dicom(tmp_path / "nifti")
    assert folder_holds_dicom(studies["siemens"])
    assert discover_subjects(tmp_path / "nifti")[0]["water"].endswith(".nii.gz")


def test_dicom_entries_convert_each_study_into_the_cache(studies, tmp_path):
    cache = tmp_path / "cache"
    entries = dicom_dataset_entries(studies["philips"].parent, cache_dir=cache)  # a folder above the study
    assert [e["subject"] for e in entries] == ["sub-0005"]
    assert entries[0]["dixon_set"] == "water_fat+inphase"
    assert Path(entries[0]["water"]).parent == cache / "sub-0005"
    first = Path(entries[0]["water"]).read_bytes()
    dicom_dataset_entries(studies["philips"], cache_dir=cache)
    assert Path(entries[0]["water"]).read_bytes() == first  # deterministic: a repeated run is the same run
    assert not list(studies["philips"].rglob("*.nii*"))  # the user's folder is only read


# ---------------------------------------------------------------------------------------------------------------
# the plain bundle on DICOM
# ---------------------------------------------------------------------------------------------------------------


def _bundle(dataset_dir: Path, output_dir: Path) -> subprocess.CompletedProcess:
    # one pass without flip ensembling: the comparison is of the two inputs, not of the ensemble
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        "configs/inference.json",
        "--dataset_dir",
        str(dataset_dir),
        "--output_dir",
        str(output_dir),
        "--write_report",
        "false",
        "--flip_ensemble",
        "false",
    ]
    return subprocess.run(cmd, cwd=BUNDLE_ROOT, capture_output=True, text=True, timeout=600)


def test_inference_on_dicom_equals_inference_on_nifti(tmp_path):
    subj = generate_subject(3, Acquisition.preset("low"))
    write_dicom_study(subj, tmp_path, vendor="ge")
    write_subject(subj, tmp_path / "nifti", write_ff_true=False)
    runs = {}
    for kind, folder in (("nifti", tmp_path / "nifti"), ("dicom", tmp_path / "dicom")):
        res = _bundle(folder, tmp_path / f"eval_{kind}")
        assert res.returncode == 0, res.stderr[-3000:]
        runs[kind] = tmp_path / f"eval_{kind}" / subj.subject_id
    sid = subj.subject_id
    a = pd.read_csv(runs["nifti"] / f"{sid}_ff_table.csv")
    b = pd.read_csv(runs["dicom"] / f"{sid}_ff_table.csv")
    assert len(a) == 12 and a.ff_mean_pct.notna().all()
    pd.testing.assert_frame_equal(a.drop(columns="ff_source"), b.drop(columns="ff_source"))
    assert b.ff_source[0] == f"water={sid}_water.nii; fat={sid}_fat.nii"
    seg_a, seg_b = nib.load(runs["nifti"] / f"{sid}_seg.nii.gz"), nib.load(runs["dicom"] / f"{sid}_seg.nii.gz")
    np.testing.assert_array_equal(np.asarray(seg_a.dataobj), np.asarray(seg_b.dataobj))
    np.testing.assert_allclose(seg_b.affine, subj.affine, atol=1e-4)
    assert len(np.unique(np.asarray(seg_b.dataobj))) == 9  # the shipped model finds all eight muscles
    json_a = json.loads((runs["nifti"] / f"{sid}_ff_table.json").read_text())
    json_b = json.loads((runs["dicom"] / f"{sid}_ff_table.json").read_text())
    assert json.dumps(json_a).replace(".nii.gz", ".nii") == json.dumps(json_b)
    # the converted files are deterministic: the same DICOM run again into the same folder is the same run
    assert _bundle(tmp_path / "dicom", tmp_path / "eval_dicom").returncode == 0
