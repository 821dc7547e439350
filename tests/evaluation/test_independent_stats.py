"""Known-answer tests of scripts.evaluation.independent_stats and scripts.evaluation.ff_agreement_stats on tiny tables.

Every expected value is worked out in the test by the textbook formula, not by the module's code.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scripts.evaluation.ff_agreement_stats import agreement_by_muscle, agreement_row, identity_r2, repeated_measures_loa
from scripts.evaluation.independent_stats import cluster_mean_test, cluster_ols, corrected_resampled_ttest, mean_ci


def test_corrected_resampled_ttest_known_answer():
    # d = 1..5: mean 3, sample variance 2.5; 1/k + n_test/n_train = 1/5 + 5/20 = 0.45
    res = corrected_resampled_ttest([1, 2, 3, 4, 5], n_train=20, n_test=5)
    se = math.sqrt(0.45 * 2.5)
    assert res.k == 5 and res.df == 4
    assert np.isclose(res.mean, 3.0) and np.isclose(res.se, se) and np.isclose(res.t, 3 / se)
    assert np.isclose(res.p, 2 * stats.t.sf(3 / se, 4))
    half = stats.t.ppf(0.975, 4) * se
    assert np.isclose(res.ci_lower, 3 - half) and np.isclose(res.ci_upper, 3 + half)


def test_corrected_ttest_is_wider_than_the_naive_one():
    d = [0.2, 0.5, 0.1, 0.4, 0.3]
    naive = stats.ttest_1samp(d, 0.0).pvalue
    # n_test/n_train -> 0 gives back the ordinary one-sample t-test
    assert np.isclose(corrected_resampled_ttest(d, n_train=10**12, n_test=1).p, naive)
    assert corrected_resampled_ttest(d, n_train=21, n_test=5).p > naive
    with pytest.raises(ValueError):
        corrected_resampled_ttest([1.0], 21, 5)
    same = corrected_resampled_ttest([0.5, 0.5, 0.5], 21, 5)
    assert same.p == 0.0 and math.isinf(same.t)


def test_mean_ci_known_answer():
    res = mean_ci([1.0, 2.0, 3.0, 6.0])  # mean 3, sd sqrt(14/3)
    se = math.sqrt(14 / 3) / 2
    assert np.isclose(res.mean, 3) and np.isclose(res.ci_upper, 3 + stats.t.ppf(0.975, 3) * se)
    assert np.isclose(res.p, 2 * stats.t.sf(3 / se, 3)) and res.n == 4


def test_cluster_mean_test_known_answer():
    # clusters a: 1, 2; b: 3; c: 6 -> mean 3, cluster residual sums -3, 0, 3
    res = cluster_mean_test([1.0, 2.0, 3.0, 6.0], ["a", "a", "b", "c"])
    var = 3 / 2 * (9 + 0 + 9) / 4**2  # G/(G-1) * sum_g (sum e)^2 / n^2
    assert res.n == 3 and np.isclose(res.mean, 3.0)
    assert np.isclose(res.p, 2 * stats.t.sf(3 / math.sqrt(var), 2))
    assert np.isclose(res.ci_lower, 3 - stats.t.ppf(0.975, 2) * math.sqrt(var))


def test_cluster_ols_one_row_per_cluster_is_hc1():
    x = np.array([0.0, 1.0, 2.0, 3.0, 5.0])
    y = np.array([1.0, 2.5, 2.9, 4.2, 6.1])
    design = np.column_stack([np.ones_like(x), x])
    fit = cluster_ols(design, y, list("abcde"), ["intercept", "slope"])
    slope, intercept = np.polyfit(x, y, 1)
    assert np.allclose(fit.coef, [intercept, slope])
    e = y - design @ fit.coef
    bread = np.linalg.inv(design.T @ design)
    hc1 = 5 / 3 * bread @ (design.T * e**2) @ design @ bread  # n/(n-p) White covariance
    assert np.allclose(fit.se, np.sqrt(np.diag(hc1)))


def test_repeated_measures_loa_known_answer():
    # subject A: 1, 3; B: 2; C: 4, 6, 8 (Bland & Altman 2007, true value varies)
    d = [1.0, 3.0, 2.0, 4.0, 6.0, 8.0]
    g = ["A", "A", "B", "C", "C", "C"]
    res = repeated_measures_loa(d, g)
    ms_b = (2 * (2 - 4) ** 2 + 1 * (2 - 4) ** 2 + 3 * (6 - 4) ** 2) / 2  # 12
    ms_w = (1 + 1 + 0 + 4 + 0 + 4) / 3  # 10/3
    divisor = (6**2 - (2**2 + 1**2 + 3**2)) / (2 * 6)  # 11/6
    sd_total = math.sqrt((ms_b - ms_w) / divisor + ms_w)
    assert res.subjects == 3 and res.n == 6 and np.isclose(res.bias, 4.0)
    assert np.isclose(res.sd_within, math.sqrt(ms_w)) and np.isclose(res.sd_total, sd_total)
    assert np.isclose(res.loa_upper, 4 + 1.96 * sd_total) and np.isclose(res.loa_lower, 4 - 1.96 * sd_total)


def test_repeated_measures_loa_one_per_subject_is_the_ordinary_loa():
    d = np.array([0.5, -1.0, 2.0, 0.1, 1.3])
    res = repeated_measures_loa(d, list("abcde"))
    assert np.isclose(res.sd_total, d.std(ddof=1)) and res.sd_within == 0


def test_identity_r2_and_agreement_row():
    assert np.isclose(identity_r2([1, 2, 3], [1, 2, 4]), 1 - 1 / 2)
    rng = np.random.default_rng(0)
    ref = rng.uniform(5, 30, 40)
    subjects = np.repeat(np.arange(10), 4)
    # method = 1.2 * reference - 1: proportional bias the difference-on-mean regression must find
    row = agreement_row(ref, 1.2 * ref - 1.0, subjects)
    assert np.isclose(row["slope"], 1.2) and np.isclose(row["intercept"], -1.0)
    assert row["p_prop_cluster"] < 1e-6 and row["subjects"] == 10
    assert np.isclose(row["bias_pp"], np.mean(0.2 * ref - 1.0))


def test_agreement_by_muscle_rows_and_cancelling_biases():
    rows = []
    for s in range(8):
        for muscle, shift in (("m1", 1.0), ("m2", -1.0)):
            for side in ("left", "right"):
                ref = 10.0 + s + (0.3 if side == "left" else 0.0)
                rows.append(
                    dict(
                        split=0,
                        subject=f"s{s}",
                        method="u",
                        muscle=muscle,
                        side=side,
                        ff_ref_pct=ref,
                        ff_method_pct=ref + shift + 0.01 * s,
                    )
                )
    table = agreement_by_muscle(pd.DataFrame(rows), ["u"], "ff_method_pct", ["m1", "m2"])
    assert len(table) == 2 * 2 + 2 + 1
    pooled = table[table.muscle == "all"].iloc[0]
    m1 = table[(table.muscle == "m1") & (table.side == "both")].iloc[0]
    # the pooled bias is near 0 although each muscle is biased by about 1 pp
    assert abs(pooled.bias_pp) < 0.1 and m1.bias_pp > 0.9 and m1.p_bias_cluster < 1e-6
