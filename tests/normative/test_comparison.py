"""Tests of scripts.normative.comparison: bands, z-scores, NaN rows, strata reported, empirical percentiles, sides."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scripts.labels import MUSCLES
from scripts.normative.comparison import compare_to_reference
from scripts.normative.distributions import fit_quartiles
from scripts.normative.strata import Reference

from tests.normative.reference_cases import PAPER, built_reference, find_stratum, mini_reference


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    return built_reference()


@pytest.mark.parametrize(
    "value, band",
    [(10.5, "within_iqr"), (10.499, "below_q1"), (16.3, "within_iqr"), (16.301, "above_q3"), (13.4, "within_iqr")],
)
def test_band_boundaries_are_closed_on_the_iqr(value: float, band: str) -> None:
    df = compare_to_reference({"psoas": value})
    assert df.set_index("muscle").loc["psoas", "band"] == band


def test_z_score_sign_and_median() -> None:
    df = compare_to_reference({"psoas": 13.4, "iliacus": 15.0, "quadratus_lumborum": 12.0}).set_index("muscle")
    assert df.loc["psoas", "z_score_approx"] == pytest.approx(0.0, abs=1e-12)
    assert df.loc["psoas", "percentile_approx"] == pytest.approx(50.0)
    assert df.loc["iliacus", "z_score_approx"] > 0 and df.loc["iliacus", "percentile_approx"] > 75
    assert df.loc["quadratus_lumborum", "z_score_approx"] < 0
    assert (df["distribution"] == "lognormal_quartile_fit").all()
    # The z of the log-normal is (ln x - mu) / sigma.
    fit = fit_quartiles(*PAPER["iliacus"])
    assert df.loc["iliacus", "z_score_approx"] == pytest.approx((math.log(15.0) - fit.mu) / fit.sigma)


def test_nan_and_missing_muscles_give_flagged_nan_rows_never_zero() -> None:
    df = compare_to_reference({"psoas": float("nan"), "iliacus": None, "quadratus_lumborum": 18.0})
    assert list(df["muscle"]) == list(MUSCLES)
    missing = df[df["muscle"] != "quadratus_lumborum"]
    assert missing["ff_mean_pct"].isna().all()
    assert missing["percentile_approx"].isna().all() and missing["z_score_approx"].isna().all()
    assert missing["band"].isna().all()
    assert missing["flags"].str.contains("missing_value").all()
    assert not (df["percentile_approx"] == 0).any()


def test_nonpositive_value_is_outside_the_lognormal_support() -> None:
    row = compare_to_reference({"psoas": 0.0}).set_index("muscle").loc["psoas"]
    assert row["percentile_approx"] == 0.0 and math.isnan(row["z_score_approx"])
    assert "outside_distribution_support" in row["flags"]


def test_unknown_muscle_and_multi_subject_tables_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown muscle"):
        compare_to_reference({"gluteus": 10.0})
    table = pd.DataFrame({"subject": ["a", "b"], "muscle": ["psoas", "psoas"], "ff_mean_pct": [10.0, 11.0]})
    with pytest.raises(ValueError, match="one subject"):
        compare_to_reference(table)


def test_compare_reports_the_stratum_used() -> None:
    ref = Reference.from_dict(mini_reference())
    df = compare_to_reference({"psoas": 14.4}, ref, sex="f", age=33)
    row = df.set_index("muscle").loc["psoas"]
    assert row["stratum"] == "sex=female, age_band=30-39, activity=all"
    assert row["n"] == 25 and row["p50"] == pytest.approx(15.4)
    df = compare_to_reference({"psoas": 14.4}, ref, sex="m", age=33, activity="sedentary")
    assert df["stratum_fallback"].iloc[0] == "age_band,activity"


def test_empirical_percentile_is_monotone_and_continuous(built: dict[str, Any]) -> None:
    ref = Reference.from_dict(built)
    grid = np.linspace(1.0, 60.0, 400)
    pct = [
        compare_to_reference({"psoas": v}, ref, use_age_centiles=False)["percentile_approx"].iloc[0] for v in grid[::8]
    ]
    assert np.all(np.diff(pct) >= 0)
    lo = find_stratum(built)["muscles"]["psoas"]["p5"]
    below, at = (compare_to_reference({"psoas": v}, ref)["percentile_approx"].iloc[0] for v in (lo - 1e-9, lo))
    assert below == pytest.approx(at, abs=1e-6) and at == pytest.approx(5.0)


def test_extreme_value_keeps_a_finite_z(built: dict[str, Any]) -> None:
    row = compare_to_reference({"psoas": 99.0}, Reference.from_dict(built)).iloc[0]
    assert row["band"] == "above_p95" and row["percentile_approx"] == pytest.approx(100.0)
    assert math.isfinite(row["z_score_approx"]) and row["z_score_approx"] > 5
    assert "outside_distribution_support" not in row["flags"]


def test_sides_input_computes_the_mean_and_uses_per_side_values(built: dict[str, Any]) -> None:
    ref = Reference.from_dict(built)
    table = pd.DataFrame(
        {"subject": "X", "muscle": ["psoas", "psoas"], "side": ["left", "right"], "ff_mean_pct": [12.0, 14.0]}
    )
    df = compare_to_reference(table, ref, use_age_centiles=False).set_index(["muscle", "side"])
    assert df.loc[("psoas", "lr_mean"), "ff_mean_pct"] == 13.0
    assert "lr_mean_from_sides" in df.loc[("psoas", "lr_mean"), "flags"]
    assert df.loc[("psoas", "left"), "p50"] == find_stratum(built)["per_side"]["left"]["psoas"]["p50"]
    assert math.isnan(df.loc[("iliacus", "lr_mean"), "ff_mean_pct"])
    assert (df["subject"] == "X").all()


def test_paper_reference_compares_sides_against_the_lr_mean_with_a_flag() -> None:
    df = compare_to_reference({"psoas_left": 12.0, "psoas_right": 13.0})
    row = df[(df.muscle == "psoas") & (df.side == "left")].iloc[0]
    assert "side_compared_to_lr_mean_reference" in row["flags"] and row["p50"] == 13.4
