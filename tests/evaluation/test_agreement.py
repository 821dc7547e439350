"""Tests of scripts.evaluation.agreement and agreement_plots: hand-computed values, textbook data, scipy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scripts.evaluation.agreement import (
    bland_altman,
    holm_correction,
    icc,
    icc_from_ratings,
    linear_regression,
    lins_ccc,
    paired_finite,
    paired_wilcoxon,
)
from scripts.evaluation.agreement_plots import plot_bland_altman, plot_box, plot_regression

#: Shrout & Fleiss 1979, Table 2: 6 targets (rows) rated by 4 judges (columns).
SHROUT_FLEISS = np.array(
    [
        [9, 2, 5, 8],
        [6, 1, 3, 2],
        [8, 4, 6, 8],
        [7, 1, 2, 6],
        [10, 5, 6, 9],
        [6, 2, 4, 7],
    ],
    dtype=float,
)


# --- NaN handling -----------------------------------------------------------------------------------------------------


def test_nan_pairs_dropped_and_counted() -> None:
    a = [1.0, np.nan, 3.0, 4.0, 5.0]
    b = [1.1, 2.0, np.nan, 4.2, 4.9]
    x, y, dropped = paired_finite(a, b)
    assert dropped == 2 and x.tolist() == [1.0, 4.0, 5.0] and y.tolist() == [1.1, 4.2, 4.9]
    assert bland_altman(a, b).n == 3 and bland_altman(a, b).n_dropped == 2
    assert linear_regression(a, b).n_dropped == 2


@pytest.mark.parametrize(
    "func", [linear_regression, bland_altman, lins_ccc, icc, paired_wilcoxon], ids=lambda f: f.__name__
)
def test_fewer_than_three_pairs_raise(func) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="at least 3 complete pairs"):
        func([1.0, 2.0, np.nan], [1.0, 2.5, 3.0])


def test_infinite_and_mismatched_inputs_raise() -> None:
    with pytest.raises(ValueError, match="infinite"):
        bland_altman([1.0, 2.0, np.inf], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="same length"):
        bland_altman([1.0, 2.0, 3.0], [1.0, 2.0])


# --- regression -------------------------------------------------------------------------------------------------------


def test_linear_regression_matches_scipy_and_exact_line() -> None:
    x = np.array([5.0, 10.0, 15.0, 20.0, 25.0])
    res = linear_regression(x, 2 * x + 1)
    assert res.slope == pytest.approx(2.0) and res.intercept == pytest.approx(1.0) and res.r2 == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    x = rng.uniform(5, 40, 30)
    y = 0.95 * x + 0.8 + rng.normal(0, 1.5, 30)
    ref = stats.linregress(x, y)
    res = linear_regression(x, y)
    assert res.slope == pytest.approx(ref.slope) and res.intercept == pytest.approx(ref.intercept)
    assert res.r2 == pytest.approx(ref.rvalue**2) and res.p == pytest.approx(ref.pvalue)
    assert res.stderr == pytest.approx(ref.stderr) and res.n == 30


# --- Bland-Altman -----------------------------------------------------------------------------------------------------


def test_bland_altman_by_hand() -> None:
    a = [1.0, 2.0, 3.0, 4.0]
    b = [1.1, 1.9, 3.2, 3.8]
    # d = a - b = [-0.1, 0.1, -0.2, 0.2]: mean 0; sum of squares 0.01 + 0.01 + 0.04 + 0.04 = 0.1; s^2 = 0.1 / 3
    s = math.sqrt(0.1 / 3)
    t = stats.t.ppf(0.975, 3)
    res = bland_altman(a, b)
    assert res.bias == pytest.approx(0.0, abs=1e-12)
    assert res.sd == pytest.approx(s)
    assert res.loa_lower == pytest.approx(-1.96 * s) and res.loa_upper == pytest.approx(1.96 * s)
    assert res.bias_ci_lower == pytest.approx(-t * s / 2) and res.bias_ci_upper == pytest.approx(t * s / 2)
    se_loa = s * math.sqrt(1 / 4 + 1.96**2 / (2 * 3))  # Bland & Altman 1999
    assert res.loa_upper_ci_lower == pytest.approx(1.96 * s - t * se_loa)
    assert res.loa_upper_ci_upper == pytest.approx(1.96 * s + t * se_loa)
    assert res.loa_lower_ci_lower == pytest.approx(-1.96 * s - t * se_loa)
    assert res.p_bias == pytest.approx(1.0) and res.n == 4


def test_bland_altman_sign_convention_and_t_test() -> None:
    rng = np.random.default_rng(0)
    ref = rng.uniform(5, 30, 25)
    method = ref + 0.7 + rng.normal(0, 0.3, 25)  # method reads 0.7 higher
    res = bland_altman(method, ref)
    assert res.bias > 0
    assert res.p_bias == pytest.approx(stats.ttest_1samp(method - ref, 0.0).pvalue)
    assert res.bias_ci_lower < 0.7 < res.bias_ci_upper
    assert bland_altman(ref, method).bias == pytest.approx(-res.bias)


def test_bland_altman_constant_difference() -> None:
    res = bland_altman([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert res.sd == 0.0 and res.p_bias == 0.0 and res.loa_lower == res.loa_upper == pytest.approx(0.5)


# --- Lin's CCC --------------------------------------------------------------------------------------------------------


def test_ccc_perfect_agreement() -> None:
    res = lins_ccc([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    assert res.ccc == pytest.approx(1.0) and res.ci_lower == res.ci_upper == 1.0 and res.bias_correction == 1.0


def test_ccc_shift_by_one_known_value() -> None:
    # x = 1..5, y = x + 1: population variances 2, covariance 2, mean difference 1 -> 2*2 / (2 + 2 + 1) = 0.8
    res = lins_ccc([1, 2, 3, 4, 5], [2, 3, 4, 5, 6])
    assert res.ccc == pytest.approx(0.8) and res.pearson_r == pytest.approx(1.0)
    assert res.bias_correction == pytest.approx(0.8)


def test_ccc_interval_contains_estimate_and_matches_formula() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(5, 30, 40)
    y = 1.05 * x + 0.5 + rng.normal(0, 2.0, 40)
    res = lins_ccc(x, y)
    # the coefficient from its definition with 1/n moments
    sxy = np.mean((x - x.mean()) * (y - y.mean()))
    assert res.ccc == pytest.approx(2 * sxy / (x.var() + y.var() + (x.mean() - y.mean()) ** 2))
    assert res.ci_lower < res.ccc < res.ci_upper <= 1.0
    assert res.pearson_r == pytest.approx(stats.pearsonr(x, y)[0])


# --- ICC --------------------------------------------------------------------------------------------------------------


def test_icc_shrout_fleiss_table() -> None:
    # Shrout & Fleiss 1979, Tables 3 and 4: BMS 11.24, JMS 32.49, EMS 1.02, WMS 6.26;
    # ICC(1,1) = .17, ICC(2,1) = .29, ICC(3,1) = .71
    i3 = icc_from_ratings(SHROUT_FLEISS, "ICC(3,1)")
    i2 = icc_from_ratings(SHROUT_FLEISS, "ICC(2,1)")
    i1 = icc_from_ratings(SHROUT_FLEISS, "ICC(1,1)")
    assert (round(i3.bms, 2), round(i3.jms, 2), round(i3.ems, 2), round(i3.wms, 2)) == (11.24, 32.49, 1.02, 6.26)
    assert round(i3.icc, 2) == 0.71 and round(i2.icc, 2) == 0.29 and round(i1.icc, 2) == 0.17
    # F tests: BMS / EMS = 11.03 on (5, 15); BMS / WMS = 1.79 on (5, 18)
    assert i3.f == pytest.approx(11.24 / 1.02, rel=1e-2) and (i3.df1, i3.df2) == (5, 15)
    assert i3.p == pytest.approx(stats.f.sf(i3.f, 5, 15)) and (i1.df1, i1.df2) == (5, 18)
    # 95 % intervals as printed by R psych::ICC on the same data: (.34, .95), (.019, .76), (-.13, .72)
    assert (round(i3.ci_lower, 2), round(i3.ci_upper, 2)) == (0.34, 0.95)
    assert (round(i2.ci_lower, 3), round(i2.ci_upper, 2)) == (0.019, 0.76)
    assert (round(i1.ci_lower, 2), round(i1.ci_upper, 2)) == (-0.13, 0.72)


def test_icc_two_methods_offset_penalised_only_by_absolute_agreement() -> None:
    a = np.array([10.0, 12.0, 15.0, 18.0, 22.0, 25.0])
    consistent = icc(a, a + 3.0, kind="ICC(3,1)")
    absolute = icc(a, a + 3.0, kind="ICC(2,1)")
    assert consistent.icc == pytest.approx(1.0)
    assert absolute.icc < 0.95
    assert icc([1, 2, np.nan, 4, 5], [1.5, 2, 3, 4.5, 5], kind="ICC(2,1)").n_dropped == 1
    with pytest.raises(ValueError, match="kind"):
        icc(a, a, kind="ICC(2,k)")


# --- Wilcoxon and Holm ------------------------------------------------------------------------------------------------


def test_wilcoxon_hand_computed_exact() -> None:
    # d = 1, -2, 3, 4, 5: ranks of |d| 1..5, W- = 2, W+ = 13; subsets of {1..5} with rank sum <= 2: {}, {1}, {2}
    res = paired_wilcoxon([2, 0, 4, 5, 6], [1, 2, 1, 1, 1])
    assert res.statistic == 2.0 and res.p == pytest.approx(6 / 32) and res.method == "exact"
    assert res.median_difference == 3.0 and res.n == 5 and res.n_zero == 0


def test_wilcoxon_matches_scipy_with_zeros_and_ties() -> None:
    # integer scores (Dice in per mille) so that zeros and ties are exact, not float round-off
    rng = np.random.default_rng(7)
    unet = rng.integers(850, 950, 20).astype(float)
    atlas = unet - rng.integers(-10, 40, 20)
    atlas[:3] = unet[:3]
    n_zero = int(np.sum(unet == atlas))
    assert n_zero >= 3 and np.unique(np.abs(unet - atlas)[unet != atlas]).size < 20 - n_zero  # zeros and ties
    res = paired_wilcoxon(unet, atlas)
    ref = stats.wilcoxon(unet - atlas, zero_method="wilcox", correction=True, method="approx")
    assert res.method == "approx" and res.n_zero == n_zero and res.zero_method == "wilcox"
    assert res.statistic == pytest.approx(ref.statistic) and res.p == pytest.approx(ref.pvalue)
    pratt = paired_wilcoxon(unet, atlas, zero_method="pratt")
    ref_p = stats.wilcoxon(unet - atlas, zero_method="pratt", correction=True, method="approx")
    assert pratt.p == pytest.approx(ref_p.pvalue)


def test_wilcoxon_all_equal_gives_p_one() -> None:
    res = paired_wilcoxon([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert res.p == 1.0 and res.statistic == 0.0 and res.n_zero == 3


def test_holm_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    out = holm_correction([0.01, 0.04, 0.03, 0.005])
    assert out == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm_correction([0.5, np.nan, 0.9])  # m = 2
    assert out[0] == pytest.approx(1.0) and math.isnan(out[1]) and out[2] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm_correction([0.1, 1.5])


# --- plots ------------------------------------------------------------------------------------------------------------


def test_plots_write_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ref = rng.uniform(5, 30, 20)
    method = ref + rng.normal(0.2, 1.0, 20)
    method[3] = np.nan
    plot_regression(ref, method, out_png=tmp_path / "reg.png", title="FF")
    plot_bland_altman(method, ref, out_png=tmp_path / "sub" / "ba.png")
    df = pd.DataFrame(
        {
            "muscle": np.repeat(["psoas", "iliacus"], 10),
            "method": np.tile(["unet", "atlas"], 10),
            "hd95_mm": np.r_[rng.uniform(1, 5, 19), np.inf],
        }
    )
    fig = plot_box(df, "hd95_mm", out_png=tmp_path / "box.png", ylabel="HD95 (mm)")
    assert "1 non-finite" in fig.axes[0].get_title()
    for name in ("reg.png", "sub/ba.png", "box.png"):
        path = tmp_path / name
        assert path.is_file() and path.stat().st_size > 1000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="lacks column"):
        plot_box(df, "dice")
