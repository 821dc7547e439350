"""Intensity checks of the Dixon loader (scripts/io/intensity_checks.py): Inf/NaN, no signal, negative magnitudes."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.io.errors import DixonInputError
from scripts.io.load import load_dixon

from tests.io.dixon_files import SHAPE, water_fat


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_non_finite_refused(tmp_path, bad, word):
    fat = np.full(SHAPE, 20.0, np.float32)
    fat[3, 4, 2] = bad
    entry = water_fat(tmp_path, fat=fat)
    with pytest.raises(DixonInputError, match=rf"fat image '.*S1_fat\.nii\.gz': contains 1 {word}"):
        load_dixon(entry)


def test_negative_magnitude_refused_small_negatives_clipped(tmp_path):
    rng = np.random.default_rng(0)
    phase_like = rng.uniform(-np.pi, np.pi, SHAPE).astype(np.float32)  # about half the voxels far below zero
    entry = water_fat(tmp_path, water=phase_like)
    with pytest.raises(DixonInputError, match=r"water image '.*S1_water\.nii\.gz': has negative intensities: "):
        load_dixon(entry)
    # one voxel slightly negative, as noise gives in a signed (GE) reconstruction: clipped with a warning
    water = np.full(SHAPE, 80.0, np.float32)
    water[0, 0, 0] = -3.0
    entry = water_fat(tmp_path, water=water)
    with pytest.warns(RuntimeWarning, match="1 negative value"):
        scan = load_dixon(entry)
    assert scan.images["water"].min() == 0.0
    assert any("clipped to 0" in w and "S1_water.nii.gz" in w for w in scan.warnings)


def test_all_zero_refused(tmp_path):
    entry = water_fat(tmp_path, fat=np.zeros(SHAPE, np.float32))
    with pytest.raises(DixonInputError, match=r"fat image '.*S1_fat\.nii\.gz': is all zero"):
        load_dixon(entry)


def test_half_negative_water_is_refused_and_small_clipping_is_recorded(tmp_path):
    # failed check 6: half the voxels slightly negative (each above -10 % of P99) used to be clipped silently
    water = np.full(SHAPE, 80.0, np.float32)
    water.reshape(-1)[::2] = -2.0
    with pytest.raises(DixonInputError, match=r"50\.0% of the non-zero voxels are negative.*refused"):
        load_dixon(water_fat(tmp_path, water=water))
    water = np.full(SHAPE, 80.0, np.float32)
    water[0, 0, 0] = -3.0
    with pytest.warns(RuntimeWarning, match="clipped to 0"):
        scan = load_dixon(water_fat(tmp_path, water=water))
    assert scan.corrections == ["negatives_clipped_water"]


def test_clean_images_take_the_min_max_path_with_the_same_decisions(tmp_path):
    # negative zeros are zeros (an all -0.0 image has no signal); a clean magnitude image comes back untouched
    with pytest.raises(DixonInputError, match=r"fat image '.*S1_fat\.nii\.gz': is all zero"):
        load_dixon(water_fat(tmp_path, fat=np.full(SHAPE, -0.0, np.float32)))
    water = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    water[0, 0, 0] = -0.0
    scan = load_dixon(water_fat(tmp_path, water=water))
    np.testing.assert_array_equal(scan.images["water"], water)
    assert scan.warnings == [] and scan.corrections == []
