"""Reading one Dixon image (scripts/io/nifti_volume.py): each refused file named, with the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scripts.io.errors import DixonInputError
from scripts.io.load import load_dixon

from tests.io.dixon_files import SHAPE, water_fat, write


def test_missing_file(tmp_path):
    entry = water_fat(tmp_path)
    entry["fat"] = str(tmp_path / "S1_nofat.nii.gz")
    with pytest.raises(DixonInputError, match=r"fat image '.*S1_nofat\.nii\.gz': file not found") as info:
        load_dixon(entry)
    assert info.value.file == entry["fat"]


def test_garbage_bytes_are_not_nifti(tmp_path):
    entry = water_fat(tmp_path)
    (tmp_path / "S1_garbage.nii.gz").write_bytes(b"this is not a NIfTI file at all" * 20)
    entry["water"] = str(tmp_path / "S1_garbage.nii.gz")
    with pytest.raises(DixonInputError, match=r"water image '.*S1_garbage\.nii\.gz': not a NIfTI file"):
        load_dixon(entry)


def test_uncompressed_garbage_and_wrong_extension_are_not_nifti(tmp_path):
    entry = water_fat(tmp_path)
    (tmp_path / "S1_raw.nii").write_bytes(bytes(400))
    entry["water"] = str(tmp_path / "S1_raw.nii")
    with pytest.raises(DixonInputError, match=r"S1_raw\.nii': not a NIfTI file \(no NIfTI-1/NIfTI-2 magic"):
        load_dixon(entry)
    (tmp_path / "S1_water.mha").write_bytes(b"ObjectType = Image\n")
    entry["water"] = str(tmp_path / "S1_water.mha")
    with pytest.raises(DixonInputError, match=r"S1_water\.mha': not a NIfTI file \(extension '\.mha'"):
        load_dixon(entry)


def test_4d_refused_but_trailing_singleton_accepted(tmp_path):
    entry = water_fat(tmp_path, water=np.full((*SHAPE, 3), 80.0, np.float32))
    with pytest.raises(DixonInputError, match=r"water image '.*S1_water\.nii\.gz': is 4D with 3 volumes"):
        load_dixon(entry)
    entry = water_fat(tmp_path, water=np.full((*SHAPE, 1), 80.0, np.float32))
    scan = load_dixon(entry)
    assert scan.images["water"].shape == SHAPE and scan.shape == SHAPE


def test_a_2d_image_is_not_told_to_split_echoes(tmp_path):
    entry = water_fat(tmp_path)
    write(Path(entry["water"]), np.full((12, 10), 80.0, np.float32))
    with pytest.raises(DixonInputError, match="single slice") as err:
        load_dixon(entry)
    assert "multi-echo" not in str(err.value)
