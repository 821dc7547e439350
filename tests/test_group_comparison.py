"""Group statistics against independent computations on known data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from scripts.group_comparison import (ACTIVITY_ORDER, activity_comparison, cohort_frame, covariate_regression, ols,
                                      paper_table, sex_comparison)
from scripts.labels import MUSCLES


def _cohort(n: int = 80, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    parts = pd.DataFrame({
        "participant_id": [f"s{i:03d}" for i in range(n)],
        "sex": np.where(np.arange(n) % 2 == 0, "M", "F"),
        "age": rng.integers(20, 71, n),
        "activity": [ACTIVITY_ORDER[(i // 2) % 4] for i in range(n)],  # crossed with sex
        "bmi": rng.normal(25, 3, n).round(1),
    })
    rows = []
    for _, p in parts.iterrows():
        for k, m in enumerate(MUSCLES):
            base = 10 + 2 * k + 3.0 * (p.sex == "F") + 0.1 * (p.age - 45) - 1.0 * ACTIVITY_ORDER.index(p.activity)
            left, right = base + rng.normal(0, 1), base + rng.normal(0, 1)
            rows += [dict(subject=p.participant_id, muscle=m, side="left", ff_mean_pct=left),
                     dict(subject=p.participant_id, muscle=m, side="right", ff_mean_pct=right),
                     dict(subject=p.participant_id, muscle=m, side="mean", ff_mean_pct=(left + right) / 2)]
    return pd.DataFrame(rows), parts


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    table, parts = _cohort()
    return cohort_frame(table, parts)


def test_cohort_frame_joins_participants_and_refuses_orphans():
    table, parts = _cohort(8)
    df = cohort_frame(table, parts)
    assert len(df) == len(table) and {"sex", "age", "activity", "bmi", "ff"} <= set(df.columns)
    with pytest.raises(ValueError, match="without a participants row"):
        cohort_frame(table, parts.iloc[1:])


def test_sex_comparison_matches_scipy_and_a_hand_rank_biserial(frame):
    res = sex_comparison(frame).set_index("muscle")
    sub = frame[(frame.muscle == "psoas") & (frame.side == "mean")]
    a, b = sub[sub.sex == "M"].ff.to_numpy(), sub[sub.sex == "F"].ff.to_numpy()
    ref = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert res.at["psoas", "U"] == pytest.approx(ref.statistic)
    assert res.at["psoas", "p"] == pytest.approx(ref.pvalue)
    # rank-biserial from the share of pairs where a man's FF exceeds a woman's (ties count half)
    greater = (a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
    assert res.at["psoas", "r_rank_biserial"] == pytest.approx(2 * greater - 1)
    assert res.at["psoas", "median_F"] == pytest.approx(np.median(b))
    assert res.at["psoas", "q1_M"] == pytest.approx(np.percentile(a, 25))
    assert (res.p < 0.01).all() and (res.r_rank_biserial < 0).all()  # women +3 pp in every muscle


def test_activity_comparison_matches_scipy_and_adjusts_pairs_with_holm(frame):
    omni, pairs = activity_comparison(frame)
    sub = frame[(frame.muscle == "iliacus") & (frame.side == "mean")]
    groups = [sub[sub.activity == lv].ff for lv in ACTIVITY_ORDER]
    ref = stats.kruskal(*groups)
    row = omni.set_index("muscle").loc["iliacus"]
    assert row.H == pytest.approx(ref.statistic) and row.p == pytest.approx(ref.pvalue)
    assert row.epsilon2 == pytest.approx((ref.statistic - 3) / (len(sub) - 4))
    ip = pairs[pairs.muscle == "iliacus"]
    assert len(ip) == 6
    p = np.sort(ip.p.to_numpy())
    holm = np.maximum.accumulate(np.minimum(1, (6 - np.arange(6)) * p))
    np.testing.assert_allclose(np.sort(ip.p_holm.to_numpy()), holm)
    extreme = ip[(ip.level_a == "inactive") & (ip.level_b == "active")].iloc[0]
    assert extreme.p_holm < 0.01 and extreme.r_rank_biserial > 0.5  # inactive has more fat


def test_ols_recovers_known_coefficients_and_matches_scipy_linregress():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, 200)
    y = 2.0 + 0.5 * x + rng.normal(0, 0.1, 200)
    fit = ols(np.column_stack([np.ones_like(x), x]), y, ["intercept", "x"])
    ref = stats.linregress(x, y)
    assert fit.coef[1] == pytest.approx(ref.slope) and fit.coef[0] == pytest.approx(ref.intercept)
    assert fit.se[1] == pytest.approx(ref.stderr) and fit.p[1] == pytest.approx(ref.pvalue, rel=1e-6)
    assert fit.r2 == pytest.approx(ref.rvalue**2)
    assert fit.ci_low[1] < 0.5 < fit.ci_high[1]
    with pytest.raises(ValueError, match="rank deficient"):
        ols(np.column_stack([np.ones(5), np.ones(5)]), np.arange(5.0), ["intercept", "constant"])


def test_covariate_regression_recovers_the_generating_effects(frame):
    reg = covariate_regression(frame).set_index(["muscle", "term"])
    for m in MUSCLES:
        assert reg.loc[(m, "female"), "coef"] == pytest.approx(3.0, abs=0.6)
        assert reg.loc[(m, "age_per_decade"), "coef"] == pytest.approx(1.0, abs=0.25)
        assert reg.loc[(m, "activity_step"), "coef"] == pytest.approx(-1.0, abs=0.3)
        assert reg.loc[(m, "bmi_per_unit"), "p"] > 0.001  # BMI has no effect in this cohort
    logreg = covariate_regression(frame, log_ff=True)
    assert (logreg.response == "ln_ff").all()


def test_paper_table_lists_every_muscle_with_median_iqr_and_p(frame):
    md = paper_table(frame)
    lines = md.strip().splitlines()
    assert len(lines) == 2 + len(MUSCLES)
    sub = frame[(frame.muscle == "psoas") & (frame.side == "mean")].ff
    q1, med, q3 = np.percentile(sub, [25, 50, 75])
    assert f"{med:.1f} ({q1:.1f}-{q3:.1f})" in md
    assert "< 0.001" in md
