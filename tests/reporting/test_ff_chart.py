"""Tests of scripts.reporting.ff_chart: FF points over the reference band, whiskers, no reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripts.reporting.ff_chart import ff_chart

from tests.reporting.report_cases import PNG_MAGIC, make_subject_case


@pytest.fixture(scope="module")
def subject_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_subject_case(tmp_path_factory.mktemp("report"))


def test_chart_written(subject_case):
    for key in ("chart",):
        data = Path(subject_case[key]).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert not list(subject_case["out"].glob(".*.tmp"))


def test_ff_chart_with_whiskers_and_without_reference(subject_case, tmp_path: Path):
    comparison = subject_case["comparison"].copy()
    comparison["p5"] = comparison["p25"] - 4.0
    comparison["p95"] = comparison["p75"] + 6.0
    a = ff_chart(subject_case["result"].table, comparison, tmp_path / "whiskers.png")
    b = ff_chart(subject_case["result"].table, None, tmp_path / "noref.png")
    assert a.read_bytes().startswith(PNG_MAGIC) and b.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="lacks column"):
        ff_chart(subject_case["result"].table.drop(columns="side"), None, tmp_path / "bad.png")
