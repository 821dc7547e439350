"""scripts.normative.level_comparison: a subject's levels placed in a per-level reference built from a synthetic
cohort with known medians; uncertain levels, another bound rule and missing levels flagged."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scripts.labels import MUSCLES
from scripts.normative import cohort_study
from scripts.normative.level_comparison import LEVEL_COMPARISON_COLUMNS, compare_levels_to_reference
from scripts.normative.reference_file import load_reference
from scripts.normative.strata import Reference

from tests.normative.level_cohort import LEVELS, centre, write_level_cohort


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    folder = tmp_path_factory.mktemp("levels")
    paths = write_level_cohort(folder)
    cohort_study.build_reference(
        str(paths["table"]), str(paths["participants"]), str(folder / "ref.json"), per_level=True
    )
    return load_reference(folder / "ref.json")


def _subject(status: str = "ok", rule: str = "mid_disc", psoas_left: dict | None = None) -> pd.DataFrame:
    """One subject's per-level table at the cohort's centres (psoas left overridden per level)."""
    rows = []
    for j, level in enumerate(LEVELS):
        for muscle in MUSCLES:
            for side in ("left", "right"):
                ff = centre(muscle, side, j)
                if muscle == "psoas" and side == "left" and psoas_left and level in psoas_left:
                    ff = psoas_left[level]
                rows.append(
                    {
                        "subject": "s1",
                        "level": level,
                        "muscle": muscle,
                        "side": side,
                        "ff_mean_pct": ff,
                        "level_status": status,
                        "boundary_rule": rule,
                    }
                )
    return pd.DataFrame(rows)


def _row(table: pd.DataFrame, level: str, muscle: str = "psoas", side: str = "left") -> pd.Series:
    return table[(table.level == level) & (table.muscle == muscle) & (table.side == side)].iloc[0]


def test_levels_placed_in_their_own_strata(reference):
    assert reference.level_rule == "mid_disc" and reference.level_names == LEVELS
    out = compare_levels_to_reference(_subject(psoas_left={"L2": 30.0}), reference, sex="F", age=40)
    assert list(out.columns[-len(LEVEL_COMPARISON_COLUMNS) :]) == list(LEVEL_COMPARISON_COLUMNS)
    l3 = _row(out, "L3")  # at the level's median: 50th percentile, z 0
    assert l3.ref_p50 == pytest.approx(14.0) and l3.band == "within_iqr"
    assert l3.percentile_approx == pytest.approx(50.0) and l3.z_score_approx == pytest.approx(0.0, abs=1e-9)
    assert l3.ref_stratum == "sex=female, age_band=all, activity=all" and l3.ref_n_muscle == 21  # the 21 clean women
    l2 = _row(out, "L2")  # 30 % where the cohort's L2 psoas left lies within 10-14 %: beyond P95
    assert l2.band == "above_p95" and l2.percentile_approx > 95.0 and "in_tail" in l2.normative_flags
    # the same value is typical of another level's strata: each level is compared with its own
    assert _row(out, "L3", "psoas", "right").percentile_approx == pytest.approx(50.0)
    assert not any("level_" in f for f in out.normative_flags)


def test_uncertain_levels_other_rule_and_missing_levels_are_flagged(reference):
    uncertain = compare_levels_to_reference(_subject(status="uncertain"), reference)
    assert uncertain.normative_flags.str.startswith("level_uncertain").all()
    assert _row(uncertain, "L3").percentile_approx == pytest.approx(50.0)  # placed, but said unsure
    other = compare_levels_to_reference(_subject(rule="mid_body"), reference)
    assert (other.normative_flags == "level_rule_differs_from_reference").all()
    assert other.percentile_approx.isna().all() and other.band.isna().all()
    data = dict(reference.data)
    data["vertebral_levels"] = {
        **data["vertebral_levels"],
        "levels": {k: v for k, v in data["vertebral_levels"]["levels"].items() if k != "L5"},
    }
    partial = compare_levels_to_reference(_subject(), Reference.from_dict(data))
    l5 = partial[partial.level == "L5"]
    assert (l5.normative_flags == "level_not_in_reference").all() and l5.z_score_approx.isna().all()
    assert not math.isnan(_row(partial, "L4").z_score_approx)


def test_a_reference_without_level_strata_leaves_the_table_as_it_is():
    table = _subject()
    out = compare_levels_to_reference(table, load_reference(None))
    pd.testing.assert_frame_equal(out, table)
