"""Group statistics against independent computations on known data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scripts.labels import MUSCLES
from scripts.normative.group_comparison import (
    ACTIVITY_ORDER,
    activity_comparison,
    cohort_frame,
    covariate_regression,
    ols,
    paper_table,
    sex_comparison,
)


def _cohort(n: int = 80, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    parts = pd.DataFrame(
        {
            "participant_id": [f"s{i:03d}" for i in range(n)],
            "sex": np.where(np.arange(n) % 2 == 0, "M", "F"),
            "age": rng.integers(20, 71, n),
            "activity": [ACTIVITY_ORDER[(i // 2) % 4] for i in range(n)],  # crossed with sex
            "bmi": rng.normal(25, 3, n).round(1),
        }
    )
    rows = []
    for _, p in parts.iterrows():
        for k, m in enumerate(MUSCLES):
            base = 10 + 2 * k + 3.0 * (p.sex == "F") + 0.1 * (p.age - 45) - 1.0 * ACTIVITY_ORDER.index(p.activity)
            left, right = base + rng.normal(0, 1), base + rng.normal(0, 1)
            rows += [
                dict(subject=p.participant_id, muscle=m, side="left", ff_mean_pct=left),
                dict(subject=p.participant_id, muscle=m, side="right", ff_mean_pct=right),
                dict(subject=p.participant_id, muscle=m, side="mean", ff_mean_pct=(left + right) / 2),
            ]
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
    n = len(sub)
    assert row.epsilon2 == pytest.approx(ref.statistic / ((n**2 - 1) / (n + 1)))  # epsilon squared
    assert row.eta2_H == pytest.approx((ref.statistic - 3) / (n - 4))  # eta squared based on H
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


def test_kruskal_effect_sizes_known_answer():
    from scripts.normative.group_comparison import kruskal_effect_sizes

    # groups (1, 2), (3, 4), (5, 6): ranks are the values, rank means 1.5, 3.5, 5.5 around 3.5
    # H = 12 / (n (n + 1)) * sum n_i (rbar_i - rbar)^2 = 12 / 42 * (2 * 4 + 0 + 2 * 4) = 32 / 7
    h = stats.kruskal([1, 2], [3, 4], [5, 6]).statistic
    assert h == pytest.approx(32 / 7)
    sizes = kruskal_effect_sizes(h, 6, 3)
    assert sizes["epsilon2"] == pytest.approx((32 / 7) / 5) and sizes["eta2_H"] == pytest.approx((32 / 7 - 2) / 3)


def test_holm_across_table_and_refresh_from_csvs(tmp_path):
    from scripts.normative.group_comparison import holm_across_table, refresh_group_tests

    sex = pd.DataFrame({"muscle": ["a", "b"], "p": [0.01, 0.04]})
    omni = pd.DataFrame(
        {
            "muscle": ["a", "b"],
            "p": [0.03, 0.005],
            "H": [10.0, 20.0],
            "n_x": [5, 6],
            "n_y": [5, 0],
            "epsilon2": [9.9, 9.9],
        }
    )
    s2, o2 = holm_across_table(sex, omni)
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4 * 0.005, 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 0.04)
    assert s2.p_holm_table.tolist() == pytest.approx([0.03, 0.06]) and o2.p_holm_table.tolist() == pytest.approx(
        [0.06, 0.02]
    )
    sex.to_csv(tmp_path / "sex_tests.csv", index=False)
    omni.to_csv(tmp_path / "activity_tests.csv", index=False)
    refresh_group_tests(tmp_path)
    back = pd.read_csv(tmp_path / "activity_tests.csv")
    # row b: one level empty, so n = 6 in k = 1 present level: epsilon2 = 20 / 5
    assert back.epsilon2.tolist() == pytest.approx([10 / 9, 20 / 5])
    assert back.eta2_H.iloc[0] == pytest.approx((10 - 1) / 8)
    assert "p_holm_table" in pd.read_csv(tmp_path / "sex_tests.csv").columns


def test_a_regression_that_cannot_be_estimated_is_noted_not_raised():
    # a pilot of three subjects: four coefficients cannot be fitted; the table says so for each term
    from scripts.normative.group_comparison import covariate_regression

    df = pd.DataFrame(
        [
            {
                "subject": f"s{i}",
                "muscle": m,
                "side": "mean",
                "ff": 10.0 + i,
                "age": 30 + 10 * i,
                "sex": "MFM"[i],
                "activity": "active",
                "bmi": 22.0 + i,
            }
            for i in range(3)
            for m in ("psoas", "iliacus", "quadratus_lumborum", "erector_spinae_multifidus")
        ]
    )
    table = covariate_regression(df)
    assert set(table.muscle) == {"psoas", "iliacus", "quadratus_lumborum", "erector_spinae_multifidus"}
    assert table.note.str.startswith("not estimable").all() and table.coef.isna().all()
