"""Stacking a DICOM series (scripts/io/dicom_stack.py): the RAS affine and voxels, slice order, refused stacks."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
from scripts.io.dicom_select import select_dixon_series
from scripts.io.dicom_series import scan_dicom_folder
from scripts.io.dicom_stack import stack_series
from scripts.io.errors import DixonInputError
from scripts.phantom import Acquisition, generate_subject
from scripts.phantom.dicom_export import write_dicom_study

from tests.io.dicom_studies import copy_study, edit

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
    study = copy_study(studies["siemens"], tmp_path / "study")
    water = next(study.glob("01_*"))
    files = sorted(water.iterdir())
    for i, f in enumerate(files):  # reverse the file names and instance numbers
        f.rename(water / f"x{len(files) - i:04d}.dcm")
    ref, ref_affine, _ = stack_series(sorted(next(studies["siemens"].glob("01_*")).iterdir()))
    volume, affine, _ = stack_series(sorted(water.iterdir()))
    np.testing.assert_array_equal(volume, ref)
    np.testing.assert_allclose(affine, ref_affine)


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------


def test_missing_slice_is_refused_as_non_uniform_spacing(studies, tmp_path):
    study = copy_study(studies["siemens"], tmp_path / "study")
    water = next(study.glob("01_*"))
    (water / "IM_0010.dcm").unlink()
    with pytest.raises(DixonInputError, match=r"non-uniform slice spacing: gaps from 11.800 to 23.600 mm.*IM_0009"):
        stack_series(scan_dicom_folder(study)[0])


def test_mixed_orientations_are_refused(studies, tmp_path):
    study = copy_study(studies["siemens"], tmp_path / "study")
    victim = next(study.glob("01_*")) / "IM_0005.dcm"
    edit([victim], ImageOrientationPatient=[0, 1, 0, 0, 0, -1])
    with pytest.raises(DixonInputError, match=r"mixed slice orientations: IM_0005.dcm has ImageOrientationPatient"):
        stack_series(scan_dicom_folder(study)[0])


def test_duplicate_positions_and_no_dicom_are_explained(studies, tmp_path):
    study = copy_study(studies["siemens"], tmp_path / "study")
    water = next(study.glob("01_*"))
    shutil.copy(water / "IM_0003.dcm", water / "IM_0003_echo2.dcm")
    with pytest.raises(DixonInputError, match=r"two slices at one position .*several images per location"):
        stack_series(scan_dicom_folder(study)[0])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DixonInputError, match=r"no DICOM Part 10 file .* found under .*empty"):
        scan_dicom_folder(tmp_path / "empty")
