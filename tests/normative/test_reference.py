"""Tests of scripts.normative.reference: schema, quartile fits, bands, strata, build/save/load, age centiles."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scripts.labels import MUSCLES
from scripts.normative.reference import (
    DEFAULT_REFERENCE_PATH,
    Reference,
    ReferenceFormatError,
    build_reference,
    compare_to_reference,
    fit_age_centiles,
    fit_quartiles,
    load_reference,
    save_reference,
    validate_reference,
)

#: The paper's median (IQR), FF % (BMC Med Imaging 2026, abstract).
PAPER = {
    "erector_spinae_multifidus": (17.4, 21.8, 26.9),
    "quadratus_lumborum": (14.9, 18.0, 22.2),
    "psoas": (10.5, 13.4, 16.3),
    "iliacus": (9.5, 11.6, 13.8),
}
#: Log-normal quartile fit: largest |fitted - published| quartile over the 4 muscles is 0.396 FF points (psoas Q3).
LOGNORMAL_QUARTILE_TOL_PCT = 0.5


def _cohort(n: int = 160, seed: int = 7) -> pd.DataFrame:
    """Long cohort table (left/right rows only): FF rises with age, women higher, right-skewed noise."""
    rng = np.random.default_rng(seed)
    subjects = [f"S{i:03d}" for i in range(n)]
    sex = rng.choice(["F", "M"], n)
    age = rng.uniform(20, 70, n).round(1)
    activity = rng.choice(["sedentary", "active"], n, p=[0.8, 0.2])
    base = {"psoas": 8.0, "iliacus": 7.0, "quadratus_lumborum": 11.0, "erector_spinae_multifidus": 13.0}
    rows = []
    for i, s in enumerate(subjects):
        for muscle in MUSCLES:
            mean = (base[muscle] + 0.12 * age[i] + (2.0 if sex[i] == "F" else 0.0)) * math.exp(rng.normal(0, 0.2))
            for side, delta in (("left", -0.3), ("right", 0.3)):
                rows.append(
                    {
                        "subject": s,
                        "muscle": muscle,
                        "side": side,
                        "ff_mean_pct": mean + delta,
                        "sex": sex[i],
                        "age": age[i],
                        "activity": activity[i],
                        "bmi": 24.0,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return _cohort()


@pytest.fixture(scope="module")
def built(cohort: pd.DataFrame) -> dict[str, Any]:
    # Curves only on the pooled stratum (n = 160 >= 150) keep the module fast.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_reference(
            cohort,
            min_n=20,
            reference_id="test_cohort",
            version="0.1.0",
            description="synthetic test cohort",
            age_centile_min_n=150,
        )


def _stratum(ref: dict[str, Any], sex: str = "all", age_band: str = "all", activity: str = "all") -> dict[str, Any]:
    for s in ref["strata"]:
        if (s["sex"], s["age_band"], s["activity"]) == (sex, age_band, activity):
            return s
    raise KeyError((sex, age_band, activity))


def _mini_reference(**extra_strata: Any) -> dict[str, Any]:
    """Hand-made reference: pooled, female, male, female 30-39, small 'active' stratum."""

    def muscles(shift: float) -> dict[str, Any]:
        return {m: {"p25": q1 + shift, "p50": md + shift, "p75": q3 + shift} for m, (q1, md, q3) in PAPER.items()}

    return {
        "format_version": "1.0",
        "reference_id": "mini",
        "version": "1",
        "source": {"citation": "test", "doi": None},
        "n": 100,
        "population": {"healthy": True, "age_range_years": [20, 70]},
        "ff_definition": {"statistic": "mean F/(F+W)", "is_pdff": False},
        "side": "lr_mean",
        "strata": [
            {"sex": "all", "age_band": "all", "activity": "all", "n": 100, "muscles": muscles(0.0)},
            {"sex": "female", "age_band": "all", "activity": "all", "n": 50, "muscles": muscles(1.0)},
            {"sex": "male", "age_band": "all", "activity": "all", "n": 50, "muscles": muscles(-1.0)},
            {"sex": "female", "age_band": "30-39", "activity": "all", "n": 25, "muscles": muscles(2.0)},
            {
                "sex": "all",
                "age_band": "all",
                "activity": "active",
                "n": 8,
                "small_stratum": True,
                "muscles": muscles(-3.0),
            },
        ],
    }


# ------------------------------------------------------------------------------------------------ shipped reference


def test_shipped_reference_holds_the_paper_values() -> None:
    ref = load_reference()
    assert ref.path == DEFAULT_REFERENCE_PATH
    assert (ref.reference_id, ref.n, ref.data["side"]) == ("bmc2026_lumbar_ff", 173, "lr_mean")
    assert ref.data["source"]["doi"] == "10.1186/s12880-026-02329-9"
    assert ref.data["ff_definition"]["is_pdff"] is False
    assert any("sex" in u for u in ref.data["unknown"])
    (stratum,) = ref.strata
    for muscle, (q1, md, q3) in PAPER.items():
        assert stratum["muscles"][muscle] == {"p25": q1, "p50": md, "p75": q3}


# ------------------------------------------------------------------------------------------------ quartile fits


@pytest.mark.parametrize("muscle", sorted(PAPER))
def test_lognormal_fit_exact_median_approximate_quartiles(muscle: str) -> None:
    q1, md, q3 = PAPER[muscle]
    fit = fit_quartiles(q1, md, q3, "lognormal")
    assert fit.ppf(0.5) == pytest.approx(md, rel=1e-12)
    assert fit.mu == pytest.approx(math.log(md))
    assert fit.sigma == pytest.approx(math.log(q3 / q1) / (2 * 0.6744897501960817))
    assert abs(fit.q1_residual_pct) <= LOGNORMAL_QUARTILE_TOL_PCT
    assert abs(fit.q3_residual_pct) <= LOGNORMAL_QUARTILE_TOL_PCT
    assert fit.ppf(0.25) - q1 == pytest.approx(fit.q1_residual_pct)
    assert fit.ppf(0.75) - q3 == pytest.approx(fit.q3_residual_pct)


def test_lognormal_residuals_known_values() -> None:
    fit = fit_quartiles(*PAPER["psoas"])
    assert fit.q1_residual_pct == pytest.approx(0.2549, abs=1e-3)
    assert fit.q3_residual_pct == pytest.approx(0.3957, abs=1e-3)


@pytest.mark.parametrize("quartiles", [(14.9, 18.0, 22.2), (9.5, 11.6, 13.8), (10.0, 14.0, 15.0)])
def test_shifted_lognormal_is_exact_on_all_quartiles(quartiles: tuple[float, float, float]) -> None:
    # The last case is left-skewed: the reflected form is used.
    fit = fit_quartiles(*quartiles, distribution="shifted_lognormal")
    for p, q in zip((0.25, 0.5, 0.75), quartiles):
        assert fit.ppf(p) == pytest.approx(q, abs=1e-9)
        assert fit.cdf(q) == pytest.approx(p, abs=1e-9)


def test_normal_fit_and_invalid_quartiles() -> None:
    fit = fit_quartiles(10.5, 13.4, 16.3, "normal")
    assert fit.sigma == pytest.approx(5.8 / 1.3489795003921634)
    with pytest.raises(ValueError, match="p25 <= p50 <= p75"):
        fit_quartiles(12.0, 11.0, 13.0)
    with pytest.raises(ValueError, match="positive"):
        fit_quartiles(0.0, 1.0, 2.0, "lognormal")
    with pytest.raises(ValueError, match="unknown distribution"):
        fit_quartiles(1.0, 2.0, 3.0, "gamma")


# ------------------------------------------------------------------------------------------------ bands, z, NaN


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


# ------------------------------------------------------------------------------------------------ strata


def test_stratum_selection_most_specific_and_fallback() -> None:
    ref = Reference.from_dict(_mini_reference())
    sel = ref.select(sex="F", age=35)
    assert (sel.sex, sel.age_band, sel.activity, sel.fallback) == ("female", "30-39", "all", ())
    sel = ref.select(sex="female", age=55.5)
    assert (sel.sex, sel.age_band, sel.fallback) == ("female", "all", ("age_band",))
    sel = ref.select(sex="x", age=None)
    assert (sel.sex, sel.fallback) == ("all", ("sex",))
    sel = ref.select()
    assert (sel.label, sel.fallback) == ("sex=all, age_band=all, activity=all", ())
    # Completed years: 39.9 is still in 30-39.
    assert ref.select(sex="F", age=39.9).age_band == "30-39"
    assert ref.select(sex="F", age="30-39").age_band == "30-39"


def test_small_stratum_is_skipped_unless_allowed_and_then_flagged() -> None:
    ref = Reference.from_dict(_mini_reference())
    sel = ref.select(activity="Active")
    assert (sel.activity, sel.fallback) == ("all", ("activity",))
    sel = ref.select(activity="active", allow_small_strata=True)
    assert (sel.activity, sel.small_stratum, sel.n) == ("active", True, 8)
    with pytest.warns(UserWarning, match="small stratum"):
        df = compare_to_reference({"psoas": 12.0}, ref, activity="active", allow_small_strata=True)
    assert df["small_stratum"].all() and df["flags"].str.contains("small_stratum").all()
    assert (df["stratum_activity"] == "active").all()


def test_compare_reports_the_stratum_used() -> None:
    ref = Reference.from_dict(_mini_reference())
    df = compare_to_reference({"psoas": 14.4}, ref, sex="f", age=33)
    row = df.set_index("muscle").loc["psoas"]
    assert row["stratum"] == "sex=female, age_band=30-39, activity=all"
    assert row["n"] == 25 and row["p50"] == pytest.approx(15.4)
    df = compare_to_reference({"psoas": 14.4}, ref, sex="m", age=33, activity="sedentary")
    assert df["stratum_fallback"].iloc[0] == "age_band,activity"


# ------------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("n"), "missing required keys"),
        (lambda d: d["strata"][0]["muscles"]["psoas"].update(p25=20.0), "must not decrease"),
        (lambda d: d["strata"][0]["muscles"].update(gluteus={"p25": 1, "p50": 2, "p75": 3}), "unknown muscle"),
        (lambda d: d["strata"][0]["muscles"]["psoas"].pop("p75"), "missing required percentiles"),
        (lambda d: d["strata"].pop(0), "pooled stratum"),
        (lambda d: d.update(format_version="2.0"), "not supported"),
        (lambda d: d["strata"][3].update(age_band="40-30"), "age_band"),
        (lambda d: d["strata"][1].update(sex="all"), "duplicate stratum"),
        (lambda d: d["ff_definition"].pop("is_pdff"), "ff_definition"),
    ],
)
def test_validation_errors_name_the_file_and_field(tmp_path: Path, mutate: Any, message: str) -> None:
    data = _mini_reference()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReferenceFormatError, match=message) as err:
        load_reference(path)
    assert str(path) in str(err.value)


def test_not_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReferenceFormatError, match="not valid JSON"):
        load_reference(bad)
    with pytest.raises(FileNotFoundError):
        load_reference(tmp_path / "none.json")


# ------------------------------------------------------------------------------------------------ build / save / load


def test_build_reference_percentiles_match_numpy(cohort: pd.DataFrame, built: dict[str, Any]) -> None:
    validate_reference(built)
    wide = cohort.pivot_table(index=["subject", "muscle"], columns="side", values="ff_mean_pct")
    lr = ((wide["left"] + wide["right"]) / 2).unstack("muscle")
    sex = cohort.groupby("subject")["sex"].first()
    qs = (5, 10, 25, 50, 75, 90, 95)
    for stratum, subjects in ((_stratum(built), lr.index), (_stratum(built, sex="female"), sex.index[sex == "F"])):
        assert stratum["n"] == len(subjects)
        for muscle in MUSCLES:
            expected = np.percentile(lr.loc[subjects, muscle].to_numpy(), qs)  # numpy default: linear
            got = [stratum["muscles"][muscle][f"p{q}"] for q in qs]
            np.testing.assert_allclose(got, expected, atol=1e-6)
            assert stratum["muscles"][muscle]["n"] == len(subjects)
    left = np.percentile(wide["left"].unstack("muscle")["psoas"].to_numpy(), 50)
    assert _stratum(built)["per_side"]["left"]["psoas"]["p50"] == pytest.approx(left, abs=1e-6)
    assert built["n"] == cohort["subject"].nunique() and built["side"] == "lr_mean"


def test_build_reference_strata_and_small_flags(built: dict[str, Any]) -> None:
    keys = {(s["sex"], s["age_band"], s["activity"]) for s in built["strata"]}
    assert ("all", "all", "all") in keys and ("female", "all", "all") in keys
    assert ("all", "all", "active") in keys and ("male", "20-29", "sedentary") in keys
    for s in built["strata"]:
        assert s["small_stratum"] == (s["n"] < 20)
    assert any(s["small_stratum"] for s in built["strata"])
    assert not _stratum(built)["small_stratum"]
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


def test_round_trip_build_save_load_compare(tmp_path: Path, built: dict[str, Any]) -> None:
    path = save_reference(built, tmp_path / "ref" / "cohort.json")
    ref = load_reference(path)
    assert ref.data == built
    stratum = _stratum(built, age_band="40-49")
    assert not stratum["small_stratum"]
    table = stratum["muscles"]["psoas"]
    values = {
        "psoas": table["p50"],
        "iliacus": stratum["muscles"]["iliacus"]["p10"],
        "quadratus_lumborum": stratum["muscles"]["quadratus_lumborum"]["p95"] + 5.0,
    }
    df = compare_to_reference(values, ref, age=45, use_age_centiles=False).set_index("muscle")
    assert (df["distribution"] == "empirical_interpolated").all()
    assert (df["stratum"] == "sex=all, age_band=40-49, activity=all").all()
    assert df.loc["psoas", "percentile_approx"] == pytest.approx(50.0)
    assert df.loc["iliacus", "percentile_approx"] == pytest.approx(10.0)
    assert df.loc["quadratus_lumborum", "band"] == "above_p95"
    assert "in_tail" in df.loc["quadratus_lumborum", "flags"]
    assert 95.0 < df.loc["quadratus_lumborum", "percentile_approx"] < 100.0
    assert {"p5", "p10", "p90", "p95"} <= set(df.columns)


def test_empirical_percentile_is_monotone_and_continuous(built: dict[str, Any]) -> None:
    ref = Reference.from_dict(built)
    grid = np.linspace(1.0, 60.0, 400)
    pct = [
        compare_to_reference({"psoas": v}, ref, use_age_centiles=False)["percentile_approx"].iloc[0] for v in grid[::8]
    ]
    assert np.all(np.diff(pct) >= 0)
    lo = _stratum(built)["muscles"]["psoas"]["p5"]
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
    assert df.loc[("psoas", "left"), "p50"] == _stratum(built)["per_side"]["left"]["psoas"]["p50"]
    assert math.isnan(df.loc[("iliacus", "lr_mean"), "ff_mean_pct"])
    assert (df["subject"] == "X").all()


def test_paper_reference_compares_sides_against_the_lr_mean_with_a_flag() -> None:
    df = compare_to_reference({"psoas_left": 12.0, "psoas_right": 13.0})
    row = df[(df.muscle == "psoas") & (df.side == "left")].iloc[0]
    assert "side_compared_to_lr_mean_reference" in row["flags"] and row["p50"] == 13.4


def test_save_is_atomic_and_refuses_to_overwrite_a_different_file(tmp_path: Path) -> None:
    data = _mini_reference()
    path = save_reference(data, tmp_path / "mini.json")
    save_reference(data, path)  # identical content: no error, nothing changes
    changed = json.loads(path.read_text())
    changed["version"] = "2"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_reference(changed, path)
    assert json.loads(path.read_text())["version"] == "1"
    save_reference(changed, path, overwrite=True)
    assert json.loads(path.read_text())["version"] == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mini.json"]
    bad = json.loads(path.read_text())
    bad["strata"][0]["muscles"]["psoas"]["p50"] = float("nan")
    with pytest.raises(ReferenceFormatError):
        save_reference(bad, tmp_path / "nan.json")
    assert not (tmp_path / "nan.json").exists()


# ------------------------------------------------------------------------------------------------ age centiles


def test_quantile_regression_recovers_linear_quantiles() -> None:
    rng = np.random.default_rng(0)
    age = rng.uniform(20, 70, 1000)
    ff = 10.0 + 0.2 * age + rng.normal(0.0, 2.0, age.size)
    curves = fit_age_centiles(age, ff, centiles=(5, 50, 95))
    slopes = curves.slope_per_year()
    # Tolerance: the median slope's standard error is ~0.01 per year at n = 1000; 0.03 is 3 SE.
    assert slopes[1] == pytest.approx(0.2, abs=0.03)
    assert np.all(np.abs(slopes - 0.2) < 0.05)
    at45 = curves(45.0)
    expected = 10.0 + 0.2 * 45.0 + 2.0 * np.array([-1.6449, 0.0, 1.6449])
    np.testing.assert_allclose(at45, expected, atol=0.4)
    table = curves.table()
    assert list(table.columns) == ["age", "p5", "p50", "p95"] and list(table["age"]) == list(range(20, 71, 5))
    spline = fit_age_centiles(age, ff, centiles=(50,), basis="natural_spline", n_knots=4)
    assert spline(45.0)[0] == pytest.approx(19.0, abs=0.4)


def test_age_centiles_arguments() -> None:
    with pytest.raises(ValueError, match="only 'quantile_regression'"):
        fit_age_centiles([20, 30], [1, 2], method="lms")
    with pytest.raises(ValueError, match="at least 10"):
        fit_age_centiles(np.arange(5.0), np.arange(5.0))
    with pytest.raises(ValueError, match="centiles"):
        fit_age_centiles(np.arange(20.0), np.arange(20.0), centiles=(50, 25))


def test_built_reference_holds_age_curves_and_compare_uses_them(built: dict[str, Any]) -> None:
    pooled = _stratum(built)
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
