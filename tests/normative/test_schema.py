"""Tests of scripts.normative.schema: validation errors name the file and the faulty field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scripts.normative.reference_file import load_reference
from scripts.normative.schema import ReferenceFormatError

from tests.normative.reference_cases import mini_reference


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
    data = mini_reference()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReferenceFormatError, match=message) as err:
        load_reference(path)
    assert str(path) in str(err.value)


def _with_levels(data: dict) -> dict:
    data["vertebral_levels"] = {"boundary_rule": "mid_disc", "levels": {"L3": json.loads(json.dumps(data["strata"]))}}
    return data


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["vertebral_levels"].update(boundary_rule="endplates"), "vertebral_levels.boundary_rule"),
        (lambda d: d["vertebral_levels"]["levels"].update(L6=d["strata"]), "unknown level name 'L6'"),
        (lambda d: d["vertebral_levels"]["levels"]["L3"].pop(0), r"vertebral_levels.levels.L3.strata: the pooled"),
        (lambda d: d["vertebral_levels"]["levels"]["L3"][0].update(n=10**6), r"levels.L3.strata\[0\].n: 1000000"),
        (lambda d: d["vertebral_levels"].update(levels={}), "vertebral_levels.levels: expected a non-empty object"),
    ],
)
def test_per_level_block_errors_name_the_file_and_field(tmp_path: Path, mutate: Any, message: str) -> None:
    data = _with_levels(mini_reference())
    path = tmp_path / "good.json"
    path.write_text(json.dumps(data))
    assert load_reference(path).level_names == ("L3",)  # the block as built is valid
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReferenceFormatError, match=message) as err:
        load_reference(path)
    assert str(path) in str(err.value)
