"""Tests of scripts.quantification.formulas: analytic known answers, Rician bias, the real GE thigh sample."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.quantification.formulas import (
    exclude_out_of_range,
    fat_fraction_from_in_opposed,
    fat_fraction_from_water_fat,
    fat_fraction_magnitude_discrimination,
    fat_fraction_with_threshold,
    water_fat_from_in_opposed,
)

from tests.quantification.dixon_samples import load_ge_sample, mask_on_ff_grid

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
# real GE thigh Dixon sample (water/fat float64 512x256x10, vendor FF in percent, mask on a 512x512x10 grid)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ge_sample(shared_dir) -> dict[str, np.ndarray | tuple]:
    return load_ge_sample(shared_dir)


def test_ge_ff_matches_vendor_percent_map(ge_sample: dict) -> None:
    s = ge_sample
    mask = mask_on_ff_grid(s)
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


def _float64_reference(water, fat, denominator: str) -> np.ndarray:
    """The formula as written before issue #24: float64 arrays throughout, NumPy's percentile, then float32."""
    w, f = np.asarray(water, dtype=np.float64), np.asarray(fat, dtype=np.float64)
    num, den = (f, w + f) if denominator == "sum" else (np.abs(f), np.abs(w) + np.abs(f))
    threshold = 0.05 * np.percentile(den[np.isfinite(den) & (den > 0)], 99)
    valid = np.isfinite(den) & (den > 0) & (den >= threshold) & np.isfinite(num)
    out = np.full(den.shape, np.nan)
    np.divide(num, den, out=out, where=valid)
    return out.astype(np.float32)


@pytest.mark.parametrize("denominator", ["sum", "abs"])
def test_fat_fraction_is_bit_identical_to_the_float64_formula(denominator) -> None:
    rng = np.random.default_rng(5)
    shape = (23, 17, 9)
    for order in ("F", "C"):
        water = np.asarray(rng.normal(300.0, 200.0, shape).astype(np.float32), order=order)
        fat = np.asarray(rng.gamma(1.5, 90.0, shape).astype(np.float32), order=order)
        fat[1, 2, 3], water[4, 5, 6] = np.nan, np.inf
        ff, threshold = fat_fraction_with_threshold(water, fat, denominator=denominator)
        expected = _float64_reference(water, fat, denominator)
        assert ff.dtype == np.float32 and ff.flags.c_contiguous
        assert ff.tobytes() == expected.tobytes()
        assert threshold > 0
    ints = rng.integers(-32768, 2000, shape).astype(np.int16), rng.integers(0, 900, shape).astype(np.int16)
    np.testing.assert_array_equal(
        fat_fraction_from_water_fat(*ints, denominator=denominator), _float64_reference(*ints, denominator)
    )
