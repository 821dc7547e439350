"""Tests of scripts.quantification.swap: global, per-slice and per-label swaps in a synthetic body, the GE sample."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.quantification.swap import detect_fat_water_swap

from tests.quantification.dixon_samples import LEFT_ES, RIGHT_ES, SHAPE, ellipse, load_ge_sample, phantom

# ---------------------------------------------------------------------------------------------------------------
# fat-water swaps
# ---------------------------------------------------------------------------------------------------------------


def test_no_swap_in_normal_phantom() -> None:
    water, fat, _, labels = phantom()
    report = detect_fat_water_swap(water, fat, labels=labels, voxel_size_mm=(1.0, 1.0, 1.0))
    assert not report.global_swap and not report.regional_swap and not report.any_swap
    assert report.periphery_median_ff > 0.85 and report.core_median_ff < 0.1
    assert report.muscle_median_ff == pytest.approx(0.15, abs=0.02)
    assert not any(flag.suspected for flag in report.per_label.values())


def test_vertebral_context_is_not_judged_as_a_muscle() -> None:
    # a 15-class model's label map also holds the vertebral bodies (fatty marrow, FF ~ 0.85 here): no swap, no flags
    water, fat, _, labels = phantom()
    body = ellipse(5, 4, cx=0, cy=10) & (labels == 0)
    labels = np.where(body, 11, labels)
    water, fat = np.where(body, 0.15 * water.max(), water), np.where(body, 0.85 * water.max(), fat)
    report = detect_fat_water_swap(water, fat, labels=labels, voxel_size_mm=(1.0, 1.0, 1.0))
    assert not report.any_swap and 11 not in report.per_label
    assert report.muscle_median_ff == pytest.approx(0.15, abs=0.02)


def test_global_swap_detected() -> None:
    water, fat, _, labels = phantom()
    report = detect_fat_water_swap(fat, water, labels=labels)
    assert report.global_swap and not report.regional_swap
    assert report.periphery_median_ff < 0.15 and report.muscle_median_ff > 0.8
    assert report.swapped_slices == tuple(range(SHAPE[2]))


def test_swapped_blob_inside_one_muscle_flags_that_label() -> None:
    water, fat, _, labels = phantom()
    blob = ellipse(4, 4, cx=12, cy=-8)
    blob[:, :, [0, 5]] = False  # 4 slices x ~50 voxels, inside the left muscle (radius 6)
    assert np.all(labels[blob] == LEFT_ES)
    water_s, fat_s = np.where(blob, fat, water), np.where(blob, water, fat)
    report = detect_fat_water_swap(water_s, fat_s, labels=labels)
    assert not report.global_swap and report.regional_swap
    left, right = report.per_label[LEFT_ES], report.per_label[RIGHT_ES]
    assert left.swapped_region and left.swapped_region_voxels == int(blob.sum())
    assert not left.asymmetric  # most of the muscle is still water-dominant
    assert not right.suspected


def test_whole_muscle_swap_on_one_side_is_asymmetric() -> None:
    water, fat, _, labels = phantom()
    region = labels == LEFT_ES
    report = detect_fat_water_swap(np.where(region, fat, water), np.where(region, water, fat), labels=labels)
    assert report.regional_swap and report.per_label[LEFT_ES].asymmetric
    assert report.per_label[LEFT_ES].median_ff == pytest.approx(0.85, abs=0.02)
    assert not report.per_label[RIGHT_ES].suspected


def test_one_swapped_slice_is_regional() -> None:
    water, fat, _, _ = phantom()
    water_s, fat_s = water.copy(), fat.copy()
    water_s[:, :, 3], fat_s[:, :, 3] = fat[:, :, 3], water[:, :, 3]
    report = detect_fat_water_swap(water_s, fat_s)
    assert not report.global_swap and report.regional_swap
    assert report.swapped_slices == (3,)


# ---------------------------------------------------------------------------------------------------------------
# real GE thigh Dixon sample (water/fat float64 512x256x10, vendor FF in percent, mask on a 512x512x10 grid)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ge_sample(shared_dir) -> dict[str, np.ndarray | tuple]:
    return load_ge_sample(shared_dir)


def test_ge_swap_detection(ge_sample: dict) -> None:
    s = ge_sample
    zooms = s["water_zooms"]
    assert not detect_fat_water_swap(s["water"], s["fat"], voxel_size_mm=zooms).any_swap
    assert detect_fat_water_swap(s["fat"], s["water"], voxel_size_mm=zooms).global_swap
