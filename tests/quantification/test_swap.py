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


# ---------------------------------------------------------------------------------------------------------------
# the body rules worked slice by slice in the body's box give what the whole slices give (issue #24)
# ---------------------------------------------------------------------------------------------------------------


def _whole_slice_reference(ff, body, slice_axis, sampling, skin, deep):
    """The rules as computed before issue #24: holes filled and depth measured on whole slices."""
    from scipy import ndimage

    shell, core = [], []
    n_valid = n_fat = 0
    for s in range(body.shape[slice_axis]):
        idx = [slice(None)] * 3
        idx[slice_axis] = s
        plane, ff_plane = ndimage.binary_fill_holes(body[tuple(idx)]), ff[tuple(idx)]
        depth = ndimage.distance_transform_edt(plane, sampling=sampling) if plane.any() else np.zeros(plane.shape)
        valid = plane & np.isfinite(ff_plane)
        shell.append(np.sort(ff_plane[valid & (depth > skin) & (depth <= deep)]))
        core.append(np.sort(ff_plane[valid & (depth > deep)]))
        n_valid += int(valid.sum())
        n_fat += int((valid & (ff_plane > 0.5)).sum())
    return shell, core, n_valid, n_fat


@pytest.mark.parametrize("slice_axis", [0, 2])
def test_body_evidence_in_boxes_equals_whole_slices(slice_axis) -> None:
    from scripts.quantification.swap import _body_evidence

    rng = np.random.default_rng(slice_axis)
    shape = (30, 26, 7)
    # blobs of random radius and centre, some cut by the array's edge, with holes; one empty slice
    grid = np.indices(shape).astype(float)
    body = np.zeros(shape, dtype=bool)
    for _ in range(6):
        centre, radius = rng.uniform(-2, 32, 3), rng.uniform(3, 12)
        body |= ((grid - centre[:, None, None, None]) ** 2).sum(axis=0) < radius**2
    body &= rng.uniform(size=shape) > 0.05
    index = [slice(None)] * 3
    index[slice_axis] = 3
    body[tuple(index)] = False
    ff = rng.uniform(-0.02, 1.0, shape).astype(np.float32)
    ff[rng.uniform(size=shape) < 0.05] = np.nan
    voxel = (1.09375, 0.8, 2.6)
    sampling = tuple(v for i, v in enumerate(voxel) if i != slice_axis)
    for order in ("C", "F"):
        ev = _body_evidence(np.asarray(ff, order=order), body, True, slice_axis, voxel, (1.0, 2.5))
        shell, core, n_valid, n_fat = _whole_slice_reference(ff, body, slice_axis, sampling, 1.0, 2.5)
        assert len(ev.shell_ff) == len(shell) == shape[slice_axis]
        for got, want in zip(ev.shell_ff + ev.core_ff, shell + core):
            np.testing.assert_array_equal(np.sort(got), want)
        assert (ev.n_valid, ev.n_fat_dominant) == (n_valid, n_fat)
        assert sum(a.size for a in shell) > 0 and sum(a.size for a in core) > 0
