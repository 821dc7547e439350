"""Tests of scripts.normative.strata: choice of the most specific stratum, fallback and small strata."""

from __future__ import annotations

import pytest
from scripts.normative.comparison import compare_to_reference
from scripts.normative.strata import Reference

from tests.normative.reference_cases import mini_reference


def test_stratum_selection_most_specific_and_fallback() -> None:
    ref = Reference.from_dict(mini_reference())
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
    ref = Reference.from_dict(mini_reference())
    sel = ref.select(activity="Active")
    assert (sel.activity, sel.fallback) == ("all", ("activity",))
    sel = ref.select(activity="active", allow_small_strata=True)
    assert (sel.activity, sel.small_stratum, sel.n) == ("active", True, 8)
    with pytest.warns(UserWarning, match="small stratum"):
        df = compare_to_reference({"psoas": 12.0}, ref, activity="active", allow_small_strata=True)
    assert df["small_stratum"].all() and df["flags"].str.contains("small_stratum").all()
    assert (df["stratum_activity"] == "active").all()


def test_for_level_keeps_the_header_and_takes_the_level_strata() -> None:
    data = mini_reference()
    level_strata = [{**s, "n": 5} for s in data["strata"]]
    data["vertebral_levels"] = {"boundary_rule": "mid_body", "levels": {"L3-L4": level_strata}}
    ref = Reference.from_dict(data)
    assert ref.level_rule == "mid_body" and ref.level_names == ("L3-L4",)
    level = ref.for_level("L3-L4")
    assert level.reference_id == ref.reference_id and level.n == ref.n and level.level_rule is None
    assert level.select().n == 5 and ref.select().n != 5
    assert ref.for_level("L3") is None and Reference.from_dict(mini_reference()).level_names == ()
