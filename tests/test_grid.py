"""Tests of scripts.grid: grid comparison, label mapping across flips, permutations and oblique grids, truncation."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.grid import check_same_grid, map_labels_to_grid, slice_axis_from_affine, truncation_flags

from tests.quantification.dixon_samples import load_ge_sample, mask_on_ff_grid

# ---------------------------------------------------------------------------------------------------------------
# grids
# ---------------------------------------------------------------------------------------------------------------


def _affine(spacing: tuple[float, float, float], origin: tuple[float, float, float]) -> np.ndarray:
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = origin
    return aff


def test_check_same_grid_tolerates_small_spacing_and_origin_noise() -> None:
    a = _affine((0.8, 0.8, 4.0), (-100.0, -80.0, 20.0))
    b = _affine((0.8 * 1.0005, 0.8, 4.0), (-100.0 + 1e-3, -80.0, 20.0))  # 0.05 % spacing, 1 um origin
    check_same_grid((64, 64, 10), a, (64, 64, 10), b)


@pytest.mark.parametrize(
    "shape_b, spacing_b, origin_b, flip, match",
    [
        ((64, 64, 10), (0.808, 0.8, 4.0), (-100.0, -80.0, 20.0), False, "spacing"),  # 1 %
        ((64, 64, 11), (0.8, 0.8, 4.0), (-100.0, -80.0, 20.0), False, "shape"),
        ((64, 64, 10), (0.8, 0.8, 4.0), (-99.0, -80.0, 20.0), False, "origin"),
        ((64, 64, 10), (0.8, 0.8, 4.0), (-100.0, -80.0, 20.0), True, "orientation RAS vs LPS"),
    ],
)
def test_check_same_grid_rejects_real_mismatch(
    shape_b: tuple[int, int, int],
    spacing_b: tuple[float, float, float],
    origin_b: tuple[float, float, float],
    flip: bool,
    match: str,
) -> None:
    a = _affine((0.8, 0.8, 4.0), (-100.0, -80.0, 20.0))
    b = _affine(spacing_b, origin_b)
    if flip:
        b[:2, :] *= -1  # same voxels seen from LPS: x and y negated
    with pytest.raises(ValueError, match=rf"water\.nii\.gz and mask\.nii\.gz.*{match}"):
        check_same_grid((64, 64, 10), a, shape_b, b, name_a="water.nii.gz", name_b="mask.nii.gz")


def test_map_labels_lps_to_ras_flip_and_shift() -> None:
    labels = np.random.default_rng(8).integers(0, 9, (5, 6, 7)).astype(np.uint8)
    lps = _affine((2.0, 2.0, 3.0), (10.0, 20.0, -5.0))
    lps[0, 0], lps[1, 1] = -2.0, -2.0  # x = 10 - 2i, y = 20 - 2j
    # the same box in RAS order: x runs from 10 - 2 * 4 = 2 upwards, y from 20 - 2 * 5 = 10 upwards
    ras = _affine((2.0, 2.0, 3.0), (2.0, 10.0, -5.0))
    out = map_labels_to_grid(labels, lps, labels.shape, ras)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, labels[::-1, ::-1, :])
    ras_up = _affine((2.0, 2.0, 3.0), (2.0, 10.0, -2.0))  # one slice (3 mm) further superior
    out = map_labels_to_grid(labels, lps, labels.shape, ras_up)
    np.testing.assert_array_equal(out[..., :-1], labels[::-1, ::-1, 1:])
    assert (out[..., -1] == 0).all()  # beyond the label grid: fill value


def test_map_labels_anisotropic_upsampling() -> None:
    labels = np.random.default_rng(9).integers(0, 9, (4, 3, 5)).astype(np.int16)
    coarse = _affine((2.0, 2.0, 4.0), (0.0, 0.0, 0.0))
    # fine voxel centres sit a quarter of a coarse voxel either side of each coarse centre: no rounding ties
    fine = _affine((1.0, 1.0, 2.0), (-0.5, -0.5, -1.0))
    out = map_labels_to_grid(labels, coarse, (8, 6, 10), fine)
    expected = labels.repeat(2, axis=0).repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_array_equal(out, expected)


def test_map_labels_axis_permutation_and_same_grid() -> None:
    labels = np.random.default_rng(10).integers(0, 9, (4, 6, 3)).astype(np.uint8)
    src = _affine((1.0, 1.5, 3.0), (5.0, -2.0, 7.0))
    dst = np.zeros((4, 4))
    dst[:3, 0], dst[:3, 1], dst[:3, 2] = src[:3, 1], src[:3, 0], src[:3, 2]  # target axis 0 is source axis 1
    dst[:, 3] = src[:, 3]
    np.testing.assert_array_equal(map_labels_to_grid(labels, src, (6, 4, 3), dst), labels.transpose(1, 0, 2))
    noisy = src.copy()
    noisy[0, 0] *= 1.0002  # 0.02 % spacing and 1 um origin noise: the same grid, labels come back unchanged
    noisy[:3, 3] += 1e-3
    same = map_labels_to_grid(labels, src, labels.shape, noisy)
    np.testing.assert_array_equal(same, labels)
    assert same is not labels


def test_map_labels_oblique_matches_voxelwise_world_lookup() -> None:
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 9, (10, 9, 8)).astype(np.uint8)
    src = _affine((1.2, 1.0, 2.5), (-4.0, 3.0, 1.0))
    angle = np.deg2rad(20.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    dst = np.eye(4)
    dst[:3, :3] = rot @ np.diag([0.9, 1.1, 2.0])
    dst[:3, 3] = (-2.0, 1.0, 2.0)
    target_shape = (12, 11, 9)
    out = map_labels_to_grid(labels, src, target_shape, dst, atol_mm=0.0)  # pure geometry, no edge tolerance
    # independent answer: world position of each target voxel centre, nearest source voxel by rounding
    for t in rng.integers(0, 9, (200, 3)):
        world = dst @ np.array([*t, 1.0])
        c = np.linalg.solve(src, world)[:3]
        nearest = np.floor(c + 0.5).astype(int)
        inside = np.all((nearest >= 0) & (nearest < labels.shape))
        assert out[tuple(t)] == (labels[tuple(nearest)] if inside else 0)


def test_map_labels_edge_tolerance() -> None:
    labels = np.array([1, 2, 3], dtype=np.uint8).reshape(3, 1, 1)
    src = np.eye(4)  # voxel faces at x = -0.5 and 2.5 mm
    for x0, expected in [(-0.51, 1), (-0.6, 0), (2.52, 3), (2.6, 0)]:
        dst = _affine((1.0, 1.0, 1.0), (x0, 0.0, 0.0))
        assert map_labels_to_grid(labels, src, (1, 1, 1), dst, atol_mm=0.05)[0, 0, 0] == expected, x0


def test_slice_axis_and_truncation_flags() -> None:
    labels = np.zeros((6, 7, 5), dtype=np.uint8)
    labels[1:3, 1:3, 0:2] = 1  # touches slice 0
    labels[3:5, 3:5, 2:5] = 2  # touches slice 4
    labels[1:3, 4:6, 1:4] = 3  # inside
    ras = _affine((1.0, 1.0, 3.0), (0.0, 0.0, 0.0))
    assert slice_axis_from_affine(ras) == 2
    flags = truncation_flags(labels, [1, 2, 3, 4], ras)
    assert flags[1] == {"truncated_inferior": True, "truncated_superior": False}
    assert flags[2] == {"truncated_inferior": False, "truncated_superior": True}
    assert flags[3] == flags[4] == {"truncated_inferior": False, "truncated_superior": False}
    reversed_z = _affine((1.0, 1.0, -3.0), (0.0, 0.0, 12.0))  # slice 0 is the most superior
    flags = truncation_flags(labels, None, reversed_z)
    assert set(flags) == {1, 2, 3}
    assert flags[1] == {"truncated_inferior": False, "truncated_superior": True}
    # sagittal-style storage: world z along array axis 0
    permuted = np.zeros((4, 4))
    permuted[2, 0], permuted[0, 1], permuted[1, 2], permuted[3, 3] = 3.0, 1.0, 1.0, 1.0
    assert slice_axis_from_affine(permuted) == 0
    flags = truncation_flags(np.moveaxis(labels, 2, 0), [1, 2, 3], permuted)
    assert flags[1] == {"truncated_inferior": True, "truncated_superior": False}
    assert flags[2] == {"truncated_inferior": False, "truncated_superior": True}
    assert flags[3] == {"truncated_inferior": False, "truncated_superior": False}


# ---------------------------------------------------------------------------------------------------------------
# real GE thigh Dixon sample (water/fat float64 512x256x10, vendor FF in percent, mask on a 512x512x10 grid)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ge_sample(shared_dir) -> dict[str, np.ndarray | tuple]:
    return load_ge_sample(shared_dir)


def test_ge_grids(ge_sample: dict) -> None:
    s = ge_sample
    check_same_grid(s["water"].shape, s["water_affine"], s["fat"].shape, s["fat_affine"], name_a="water", name_b="fat")
    check_same_grid(s["water"].shape, s["water_affine"], s["fatfraction"].shape, s["fatfraction_affine"])
    with pytest.raises(ValueError, match=r"mask\.nii\.gz and water\.nii\.gz: shape"):
        check_same_grid(
            s["mask"].shape,
            s["mask_affine"],
            s["water"].shape,
            s["water_affine"],
            name_a="mask.nii.gz",
            name_b="water.nii.gz",
        )
    # independent answer: the y origins differ by a whole number of voxels, so the mask grid is a y-crop
    offset = (s["water_affine"][1, 3] - s["mask_affine"][1, 3]) / s["water_affine"][1, 1]
    j0 = int(round(offset))
    assert abs(offset - j0) < 0.01 and j0 == 128
    mapped = mask_on_ff_grid(s)
    np.testing.assert_array_equal(mapped, s["mask"][:, j0 : j0 + s["water"].shape[1], :] > 0)
    assert mapped.sum() == (s["mask"] > 0).sum()
