"""Tests of scripts.normative.building: percentiles per stratum, small flags, argument errors, age curves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scripts.labels import MUSCLES
from scripts.normative.building import build_reference
from scripts.normative.comparison import compare_to_reference
from scripts.normative.schema import validate_reference
from scripts.normative.strata import Reference

from tests.normative.reference_cases import built_reference, cohort_table, find_stratum


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return cohort_table()


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    return built_reference()


def test_build_reference_percentiles_match_numpy(cohort: pd.DataFrame, built: dict[str, Any]) -> None:
    validate_reference(built)
    wide = cohort.pivot_table(index=["subject", "muscle"], columns="side", values="ff_mean_pct")
    lr = ((wide["left"] + wide["right"]) / 2).unstack("muscle")
    sex = cohort.groupby("subject")["sex"].first()
    qs = (5, 10, 25, 50, 75, 90, 95)
    for stratum, subjects in (
        (find_stratum(built), lr.index),
        (find_stratum(built, sex="female"), sex.index[sex == "F"]),
    ):
        assert stratum["n"] == len(subjects)
        for muscle in MUSCLES:
            expected = np.percentile(lr.loc[subjects, muscle].to_numpy(), qs)  # numpy default: linear
            got = [stratum["muscles"][muscle][f"p{q}"] for q in qs]
            np.testing.assert_allclose(got, expected, atol=1e-6)
            assert stratum["muscles"][muscle]["n"] == len(subjects)
    left = np.percentile(wide["left"].unstack("muscle")["psoas"].to_numpy(), 50)
    assert find_stratum(built)["per_side"]["left"]["psoas"]["p50"] == pytest.approx(left, abs=1e-6)
    assert built["n"] == cohort["subject"].nunique() and built["side"] == "lr_mean"


def test_build_reference_strata_and_small_flags(built: dict[str, Any]) -> None:
    keys = {(s["sex"], s["age_band"], s["activity"]) for s in built["strata"]}
    assert ("all", "all", "all") in keys and ("female", "all", "all") in keys
    assert ("all", "all", "active") in keys and ("male", "20-29", "sedentary") in keys
    for s in built["strata"]:
        assert s["small_stratum"] == (s["n"] < 20)
    assert any(s["small_stratum"] for s in built["strata"])
    assert not find_stratum(built)["small_stratum"]
    assert "numpy.percentile" in built["percentile_method"]


def test_build_reference_argument_errors(cohort: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="include 25, 50 and 75"):
        build_reference(cohort, percentiles=(10, 50, 90))
    with pytest.raises(ValueError, match="group_columns"):
        build_reference(cohort, group_columns=("bmi",))
    with pytest.raises(ValueError, match="lacks columns"):
        build_reference(cohort.drop(columns="sex"))
    with pytest.raises(ValueError, match="duplicate rows"):
        build_reference(pd.concat([cohort, cohort.iloc[:1]]), age_centile_min_n=0)


def test_built_reference_holds_age_curves_and_compare_uses_them(built: dict[str, Any]) -> None:
    pooled = find_stratum(built)
    curves = pooled["age_centiles"]
    assert curves["ages"] == [float(a) for a in range(20, 71, 5)]
    assert set(curves["muscles"]["psoas"]) == {"p5", "p25", "p50", "p75", "p95"}
    # The synthetic FF rises with age, so the median curve must too.
    assert curves["muscles"]["psoas"]["p50"][-1] > curves["muscles"]["psoas"]["p50"][0]
    assert all("age_centiles" not in s for s in built["strata"] if s["n"] < 150)
    ref = Reference.from_dict(built)
    df = compare_to_reference({"psoas": 15.0}, ref, age=50)
    row = df.set_index("muscle").loc["psoas"]
    assert row["stratum_age_band"] == "curve@50" and "age_centile_curve" in row["flags"]
    assert row["p50"] == pytest.approx(curves["muscles"]["psoas"]["p50"][curves["ages"].index(50.0)])
    # With a sex given, the female stratum (no curves, more specific) wins over the pooled curves.
    assert compare_to_reference({"psoas": 15.0}, ref, sex="F", age=50)["stratum_sex"].iloc[0] == "female"
