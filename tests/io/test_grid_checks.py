"""One voxel grid per subject (scripts/io/grid_checks.py): mismatches refused, jitter recorded, the header override."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.io.errors import DixonInputError
from scripts.io.load import load_dixon

from tests.io.dixon_files import SHAPE, affine, water_fat


def test_shape_mismatch_refused(tmp_path):
    entry = water_fat(tmp_path, fat=np.full((12, 10, 5), 20.0, np.float32))
    with pytest.raises(
        DixonInputError,
        match=r"grid mismatch between water image '.*S1_water\.nii\.gz' and fat "
        r"image '.*S1_fat\.nii\.gz': shape \(12, 10, 6\) vs \(12, 10, 5\)",
    ):
        load_dixon(entry)


def test_spacing_mismatch_one_percent_refused_five_hundredths_accepted(tmp_path):
    fat = np.full(SHAPE, 20.0, np.float32)
    entry = water_fat(tmp_path, fat=(fat, affine((2.0 * 1.01, 2.0, 5.0))))
    with pytest.raises(DixonInputError, match=r"S1_fat\.nii\.gz'.*voxel spacing .*relative difference 0\.990%"):
        load_dixon(entry)
    entry = water_fat(tmp_path, fat=(fat, affine((2.0 * 1.0005, 2.0, 5.0))))
    scan = load_dixon(entry)
    np.testing.assert_array_equal(scan.affine, affine())  # the reference (water) affine is the common one


def test_origin_only_mismatch_names_the_override_which_adopts_the_trusted_header(tmp_path):
    # failed check 8: water and fat differing only in origin were refused with no way forward
    shifted = affine()
    shifted[:3, 3] += (3.0, 0.0, 0.0)
    entry = water_fat(tmp_path, fat=(np.full(SHAPE, 20.0, np.float32), shifted))
    with pytest.raises(DixonInputError, match="--trust_voxel_grid water"):
        load_dixon(entry)
    with pytest.warns(RuntimeWarning, match="header replaced"):
        scan = load_dixon(entry, trust_voxel_grid="water")
    np.testing.assert_array_equal(scan.affine, affine())
    assert scan.corrections == ["grid_adopted_from_water"]
    # the override never hides a real difference of shape
    entry = water_fat(tmp_path, fat=np.full((12, 10, 5), 20.0, np.float32))
    with pytest.raises(DixonInputError, match="shape") as err:
        load_dixon(entry, trust_voxel_grid="water")
    assert "trust_voxel_grid" not in str(err.value)


def test_header_jitter_within_tolerance_is_recorded(tmp_path):
    fat = np.full(SHAPE, 20.0, np.float32)
    scan = load_dixon(water_fat(tmp_path, fat=(fat, affine((2.0 * 1.0005, 2.0, 5.0)))))
    assert scan.corrections == ["grid_within_tolerance"]
