"""Tests of scripts.quantification.fat_fraction: analytic phantoms with known answers, the real GE thigh sample."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.quantification.fat_fraction import (
    check_same_grid,
    detect_fat_water_swap,
    detect_ff_scale,
    exclude_out_of_range,
    fat_fraction_from_in_opposed,
    fat_fraction_from_water_fat,
    fat_fraction_magnitude_discrimination,
    map_labels_to_grid,
    normalise_ff_map,
    slice_axis_from_affine,
    truncation_flags,
    water_fat_from_in_opposed,
)

# ---------------------------------------------------------------------------------------------------------------
# synthetic body: skin (FF 0.3), subcutaneous fat ring (0.9), organ (0.05), two muscles (0.15) labelled 7 and 8
# ---------------------------------------------------------------------------------------------------------------

SHAPE = (96, 80, 6)
SIGNAL = 1000.0
LEFT_ES, RIGHT_ES = 7, 8


def _ellipse(a: float, b: float, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    x = np.arange(SHAPE[0], dtype=np.float64)[:, None] - SHAPE[0] / 2 - cx
    y = np.arange(SHAPE[1], dtype=np.float64)[None, :] - SHAPE[1] / 2 - cy
    disc = (x / a) ** 2 + (y / b) ** 2 <= 1.0
    return np.repeat(disc[:, :, None], SHAPE[2], axis=2)


def _phantom(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(water, fat, true FF, labels). Identity affine: array axis 0 is world +x = patient left (RAS)."""
    body = _ellipse(40, 32)
    ff = np.zeros(SHAPE)
    ff[body] = 0.3  # skin, 2 voxels
    ff[_ellipse(38, 30)] = 0.9  # subcutaneous fat, 10 voxels
    ff[_ellipse(28, 20)] = 0.05  # organ
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[_ellipse(6, 6, cx=12, cy=-8)] = LEFT_ES
    labels[_ellipse(6, 6, cx=-12, cy=-8)] = RIGHT_ES
    ff[labels > 0] = 0.15
    rng = np.random.default_rng(seed)
    water = np.abs(np.where(body, SIGNAL * (1 - ff), 0.0) + rng.normal(0, 5.0, SHAPE))
    fat = np.abs(np.where(body, SIGNAL * ff, 0.0) + rng.normal(0, 5.0, SHAPE))
    return water, fat, ff, labels


# ---------------------------------------------------------------------------------------------------------------
# FF from water/fat, IP/OP and magnitude discrimination
# ---------------------------------------------------------------------------------------------------------------


def test_ff_of_constant_water_fat() -> None:
    ff = fat_fraction_from_water_fat(np.full((4, 5, 6), 70.0), np.full((4, 5, 6), 30.0))
    assert ff.dtype == np.float32 and ff.shape == (4, 5, 6)
    np.testing.assert_allclose(ff, 0.3, atol=1e-7)


def test_zero_denominator_is_nan_not_zero() -> None:
    water = np.array([80.0, 0.0, 50.0, 0.0])
    fat = np.array([20.0, 0.0, 50.0, 0.0])
    ff = fat_fraction_from_water_fat(water, fat)
    assert np.isnan(ff[1]) and np.isnan(ff[3])
    np.testing.assert_allclose(ff[[0, 2]], [0.2, 0.5], atol=1e-7)
    assert np.nanmean(ff) == pytest.approx(0.35)  # the excluded voxels do not pull the mean towards 0


def test_relative_and_absolute_denominator_threshold() -> None:
    # P99 of the positive sums is 100, so the default threshold is 5; a sum of 2 is excluded, 10 kept
    water = np.array([90.0] * 98 + [1.0, 8.0, -30.0])
    fat = np.array([10.0] * 98 + [1.0, 2.0, 10.0])
    ff = fat_fraction_from_water_fat(water, fat)
    assert np.isnan(ff[98]) and ff[99] == pytest.approx(0.2)
    assert np.isnan(ff[100])  # negative W + F is excluded
    ff_abs = fat_fraction_from_water_fat(water, fat, min_denominator=1.0)
    assert ff_abs[98] == pytest.approx(0.5)


def test_negative_component_sum_vs_abs() -> None:
    water, fat = np.array([-10.0, 60.0]), np.array([90.0, 40.0])
    np.testing.assert_allclose(fat_fraction_from_water_fat(water, fat, min_denominator=0), [90 / 80, 0.4], rtol=1e-6)
    np.testing.assert_allclose(
        fat_fraction_from_water_fat(water, fat, min_denominator=0, denominator="abs"), [0.9, 0.4], rtol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"denominator": "ratio"}, "denominator"),
        ({"relative_threshold": 1.5}, "relative_threshold"),
        ({"min_denominator": -1.0}, "min_denominator"),
    ],
)
def test_ff_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fat_fraction_from_water_fat(np.ones(3), np.ones(3), **kwargs)


def test_ff_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"\(3,\) and \(4,\)"):
        fat_fraction_from_water_fat(np.ones(3), np.ones(4))


def test_in_opposed_round_trip() -> None:
    rng = np.random.default_rng(1)
    water = rng.uniform(50, 100, 1000)
    fat = water * rng.uniform(0, 0.9, 1000)  # FF < 50 %: the water-dominant assumption holds
    ip, op = water + fat, np.abs(water - fat)
    w, f = water_fat_from_in_opposed(ip, op)
    np.testing.assert_allclose(w, water, rtol=1e-5)
    np.testing.assert_allclose(f, fat, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(fat_fraction_from_in_opposed(ip, op), fat / (water + fat), atol=1e-6)


def test_in_opposed_fat_dominant_voxels_are_swapped_under_water_assumption() -> None:
    ip, op = np.array([100.0]), np.array([80.0])  # true W = 10, F = 90
    w, f = water_fat_from_in_opposed(ip, op, assume="water_dominant")
    assert (float(w[0]), float(f[0])) == (90.0, 10.0)
    w, f = water_fat_from_in_opposed(ip, op, assume="fat_dominant")
    assert (float(w[0]), float(f[0])) == (10.0, 90.0)
    with pytest.raises(ValueError, match="assume"):
        water_fat_from_in_opposed(ip, op, assume="auto")  # type: ignore[arg-type]


def test_magnitude_discrimination_is_exact_without_noise() -> None:
    rng = np.random.default_rng(2)
    water, fat = rng.uniform(0, 100, 500), rng.uniform(0, 100, 500)  # both branches occur
    ff = fat_fraction_magnitude_discrimination(water, fat, water + fat, min_denominator=1e-9)
    np.testing.assert_allclose(ff, fat / (water + fat), atol=1e-6)


def test_magnitude_discrimination_reduces_rician_bias_at_low_ff() -> None:
    rng = np.random.default_rng(3)
    n, signal, sigma, true_ff = 100_000, 100.0, 5.0, 0.03  # SNR 20
    w_c = signal * (1 - true_ff) + rng.normal(0, sigma, n) + 1j * rng.normal(0, sigma, n)
    f_c = signal * true_ff + rng.normal(0, sigma, n) + 1j * rng.normal(0, sigma, n)
    water, fat, ip = np.abs(w_c), np.abs(f_c), np.abs(w_c + f_c)
    bias_simple = float(np.nanmean(fat_fraction_from_water_fat(water, fat))) - true_ff
    bias_md = float(np.nanmean(fat_fraction_magnitude_discrimination(water, fat, ip))) - true_ff
    # the fat magnitude's Rician floor (~sigma * sqrt(pi / 2) = 6.3 vs a true 3) doubles the simple FF
    assert bias_simple > 0.02
    assert abs(bias_md) < 0.005
    assert abs(bias_md) < abs(bias_simple) / 5


def test_exclude_out_of_range_counts() -> None:
    out, n = exclude_out_of_range(np.array([-0.2, -0.04, 0.5, 1.04, 1.2, np.nan]))
    assert n == 2
    np.testing.assert_array_equal(np.isnan(out), [True, False, False, False, True, True])


# ---------------------------------------------------------------------------------------------------------------
# FF map scale
# ---------------------------------------------------------------------------------------------------------------


def test_scale_detection_fraction_percent_permille() -> None:
    _, _, ff, _ = _phantom()
    noisy = ff + np.random.default_rng(4).normal(0, 0.02, ff.shape) * (ff > 0)
    det = detect_ff_scale(noisy)
    assert (det.scale, det.divisor) == ("fraction", 1.0)
    det = detect_ff_scale(noisy * 100)
    assert (det.scale, det.divisor) == ("percent", 100.0)
    permille = np.clip(np.round(noisy * 1000), 0, 1000).astype(np.int16)
    det = detect_ff_scale(permille, source="ff_permille.nii.gz")
    assert (det.scale, det.divisor, det.source) == ("permille", 1000.0, "ff_permille.nii.gz")
    assert 0.9 < det.confidence <= 1.0


def test_scale_detection_lean_muscle_permille_not_taken_for_percent() -> None:
    # muscle-only statistics: P95 = 90 + 1.645 * 25 = 131 would pass as percent; the one-sided tail above 105
    # (28 % of voxels, none below -5) says permille
    values = np.clip(np.random.default_rng(5).normal(90, 25, 2000), 0, None).round().astype(np.int16)
    det = detect_ff_scale(values, mask=np.ones(values.shape, dtype=bool))
    assert det.scale == "permille"


def test_scale_detection_refuses_all_zero_map() -> None:
    with pytest.raises(ValueError, match=r"ff_zero\.nii\.gz.*all zero"):
        detect_ff_scale(np.zeros((8, 8, 4)), source="ff_zero.nii.gz")
    with pytest.raises(ValueError, match="all zero"):
        detect_ff_scale(np.zeros((8, 8, 4)), mask=np.ones((8, 8, 4), dtype=bool))


def test_scale_detection_refuses_ambiguous_tiny_values_and_allows_override() -> None:
    tiny = np.random.default_rng(6).uniform(0.0, 0.05, (10, 10, 5))  # percent of near-zero FF, or lean fraction?
    with pytest.raises(ValueError, match=r"tiny\.nii\.gz is ambiguous.*scale="):
        detect_ff_scale(tiny, source="tiny.nii.gz")
    det = detect_ff_scale(tiny, scale="percent")
    assert (det.scale, det.divisor, det.overridden, det.confidence) == ("percent", 100.0, True, 1.0)
    with pytest.raises(ValueError, match="unknown FF scale"):
        detect_ff_scale(tiny, scale="per-cent")


def test_scale_detection_refuses_non_ff_map() -> None:
    with pytest.raises(ValueError, match="fits no FF scale"):
        detect_ff_scale(np.random.default_rng(7).uniform(2000, 50000, 500))


def test_normalise_ff_map_counts_out_of_range() -> None:
    values = np.concatenate([np.linspace(2, 98, 990), [300.0] * 7, [-40.0] * 3, [0.0] * 50])
    fraction, det = normalise_ff_map(values)
    assert det.scale == "percent" and det.n_out_of_range == 10
    assert fraction.dtype == np.float32
    assert np.isnan(fraction[990:1000]).all()
    np.testing.assert_allclose(fraction[:990], np.linspace(0.02, 0.98, 990), rtol=1e-6)
    assert (fraction[1000:] == 0).all()


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
# fat-water swaps
# ---------------------------------------------------------------------------------------------------------------


def test_no_swap_in_normal_phantom() -> None:
    water, fat, _, labels = _phantom()
    report = detect_fat_water_swap(water, fat, labels=labels, voxel_size_mm=(1.0, 1.0, 1.0))
    assert not report.global_swap and not report.regional_swap and not report.any_swap
    assert report.periphery_median_ff > 0.85 and report.core_median_ff < 0.1
    assert report.muscle_median_ff == pytest.approx(0.15, abs=0.02)
    assert not any(flag.suspected for flag in report.per_label.values())


def test_global_swap_detected() -> None:
    water, fat, _, labels = _phantom()
    report = detect_fat_water_swap(fat, water, labels=labels)
    assert report.global_swap and not report.regional_swap
    assert report.periphery_median_ff < 0.15 and report.muscle_median_ff > 0.8
    assert report.swapped_slices == tuple(range(SHAPE[2]))


def test_swapped_blob_inside_one_muscle_flags_that_label() -> None:
    water, fat, _, labels = _phantom()
    blob = _ellipse(4, 4, cx=12, cy=-8)
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
    water, fat, _, labels = _phantom()
    region = labels == LEFT_ES
    report = detect_fat_water_swap(np.where(region, fat, water), np.where(region, water, fat), labels=labels)
    assert report.regional_swap and report.per_label[LEFT_ES].asymmetric
    assert report.per_label[LEFT_ES].median_ff == pytest.approx(0.85, abs=0.02)
    assert not report.per_label[RIGHT_ES].suspected


def test_one_swapped_slice_is_regional() -> None:
    water, fat, _, _ = _phantom()
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
    import nibabel as nib

    ge_dir = shared_dir / "real-samples" / "ge_thigh_dixon_ff"
    out: dict[str, np.ndarray | tuple] = {}
    for name in ("water", "fat", "fatfraction", "mask"):
        img = nib.load(str(ge_dir / f"{name}.nii.gz"))
        out[name] = np.asanyarray(img.dataobj)
        out[f"{name}_affine"] = img.affine
        out[f"{name}_zooms"] = tuple(float(z) for z in img.header.get_zooms()[:3])
    return out


def _mask_on_ff_grid(s: dict) -> np.ndarray:
    return map_labels_to_grid(s["mask"], s["mask_affine"], s["water"].shape, s["water_affine"]) > 0


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
    mapped = _mask_on_ff_grid(s)
    np.testing.assert_array_equal(mapped, s["mask"][:, j0 : j0 + s["water"].shape[1], :] > 0)
    assert mapped.sum() == (s["mask"] > 0).sum()


def test_ge_ff_matches_vendor_percent_map(ge_sample: dict) -> None:
    s = ge_sample
    mask = _mask_on_ff_grid(s)
    ff = fat_fraction_from_water_fat(s["water"], s["fat"])
    vendor = s["fatfraction"] / 100.0
    valid = mask & np.isfinite(ff)
    # low-signal voxels (air/cortex inside the mask; W + F below 5 % of P99 = 27) are excluded, tissue is kept
    assert 0.80 < valid.sum() / mask.sum() < 0.90
    max_abs_diff = float(np.max(np.abs(ff[valid] - vendor[valid])))
    assert max_abs_diff < 1e-5  # float32 rounding of the same F / (F + W)
    mean_ff = float(np.mean(ff[valid]))
    assert mean_ff == pytest.approx(float(np.mean(vendor[valid])), abs=1e-5)
    assert 0.6 < mean_ff < 0.8  # marked fatty infiltration plus subcutaneous fat


def test_ge_vendor_map_scale_is_percent(ge_sample: dict) -> None:
    s = ge_sample
    det = detect_ff_scale(s["fatfraction"], source="fatfraction.nii.gz")
    assert (det.scale, det.divisor) == ("percent", 100.0)
    assert detect_ff_scale(s["fatfraction"], mask=_mask_on_ff_grid(s)).scale == "percent"
    fraction, det = normalise_ff_map(s["fatfraction"], source="fatfraction.nii.gz")
    assert det.n_out_of_range > 0
    finite = fraction[np.isfinite(fraction)]
    assert finite.min() >= -0.05 and finite.max() <= 1.05
    assert det.n_out_of_range == int(np.sum((s["fatfraction"] < -5) | (s["fatfraction"] > 105)))


def test_ge_swap_detection(ge_sample: dict) -> None:
    s = ge_sample
    zooms = s["water_zooms"]
    assert not detect_fat_water_swap(s["water"], s["fat"], voxel_size_mm=zooms).any_swap
    assert detect_fat_water_swap(s["fat"], s["water"], voxel_size_mm=zooms).global_swap
