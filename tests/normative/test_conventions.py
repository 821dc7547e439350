"""Tests of scripts.normative.conventions: percentile keys, level and side spellings, completed-year age bands."""

from __future__ import annotations

import pytest
from scripts.normative.conventions import (
    age_in_band,
    band_label,
    norm_level,
    norm_side,
    parse_band,
    parse_pkey,
    pkey,
    sorted_table,
)


def test_percentile_keys_round_trip() -> None:
    assert (pkey(5), pkey(2.5), pkey(50.0)) == ("p5", "p2.5", "p50")
    assert (parse_pkey("p2.5"), parse_pkey("n"), parse_pkey("p")) == (2.5, None, None)
    qs, vs = sorted_table({"p75": 3.0, "n": 10, "p5": 1.0, "p25": 2.0})
    assert qs.tolist() == [5.0, 25.0, 75.0] and vs.tolist() == [1.0, 2.0, 3.0]


def test_levels_and_sides_are_normalised() -> None:
    levels = (norm_level(" F ", "sex"), norm_level("Woman", "sex"), norm_level("M", "sex"))
    assert levels == ("female", "female", "male")
    assert norm_level("F", "activity") == "f"  # aliases are for sex only
    assert (norm_side("L"), norm_side("Right"), norm_side("both"), norm_side("mean")) == (
        "left",
        "right",
        "lr_mean",
        "lr_mean",
    )
    with pytest.raises(ValueError, match="unknown side"):
        norm_side("middle")


def test_age_bands_are_inclusive_completed_years() -> None:
    assert band_label(20, 29) == "20-29" and parse_band("20-29") == (20, 29) and parse_band("all") is None
    assert age_in_band(29.9, (20, 29)) and not age_in_band(30.0, (20, 29)) and age_in_band(70.5, (60, 70))
