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
