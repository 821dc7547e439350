"""Slice geometry of a Dixon scan (scripts/io/slice_checks.py): axial slices, field of view, slice thickness."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scripts.io.errors import DixonInputError
from scripts.io.load import load_dixon

from tests.io.dixon_files import SHAPE, affine, water_fat


def test_non_axial_refused_and_oblique_warned(tmp_path):
    def rotated(deg: float) -> np.ndarray:
        c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
        rot = np.eye(4)
        rot[1:3, 1:3] = [[c, -s], [s, c]]  # about world x
        return rot @ affine()

    water, fat = np.full(SHAPE, 80.0, np.float32), np.full(SHAPE, 20.0, np.float32)
    entry = water_fat(tmp_path, water=(water, rotated(45)), fat=(fat, rotated(45)))
    with pytest.raises(
        DixonInputError,
        match=r"water image '.*S1_water\.nii\.gz': slices are not axial: .* 45\.0 " r"degrees from world z",
    ):
        load_dixon(entry)
    entry = water_fat(tmp_path, water=(water, rotated(20)), fat=(fat, rotated(20)))
    with pytest.warns(RuntimeWarning, match="oblique slices"):
        scan = load_dixon(entry)
    assert scan.slice_axis == 2 and abs(scan.slice_tilt_deg - 20.0) < 1e-4  # NIfTI stores the affine as float32
    assert scan.corrections == ["oblique_slices"]  # tolerated, and said so in the tables' flags


def test_field_of_view_smaller_than_minimum(tmp_path):
    entry = water_fat(tmp_path)  # FOV 24 x 20 x 30 mm
    expected = (
        r"water image '.*S1_water\.nii\.gz': field of view 24\.0 x 20\.0 x 30\.0 mm .* smaller than the "
        r"minimum 20\.0 x 20\.0 x 40\.0 mm along z"
    )
    with pytest.raises(DixonInputError, match=expected):
        load_dixon(entry, min_shape_mm=(20.0, 20.0, 40.0))
    assert load_dixon(entry, min_shape_mm=20.0).shape == SHAPE


def test_very_thick_slices_are_warned(tmp_path):
    thick = affine((2.0, 2.0, 20.0))
    entry = water_fat(
        tmp_path, water=(np.full(SHAPE, 80.0, np.float32), thick), fat=(np.full(SHAPE, 20.0, np.float32), thick)
    )
    with pytest.warns(RuntimeWarning, match=r"very thick slices \(20 mm"):
        scan = load_dixon(entry)
    assert "thick_slices" in scan.corrections
