"""Tests of scripts.normative.reference_file: the shipped reference, load errors, atomic save, round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scripts.normative.comparison import compare_to_reference
from scripts.normative.reference_file import DEFAULT_REFERENCE_PATH, load_reference, save_reference
from scripts.normative.schema import ReferenceFormatError

from tests.normative.reference_cases import PAPER, built_reference, find_stratum, mini_reference


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    return built_reference()


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


def test_not_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReferenceFormatError, match="not valid JSON"):
        load_reference(bad)
    with pytest.raises(FileNotFoundError):
        load_reference(tmp_path / "none.json")


def test_round_trip_build_save_load_compare(tmp_path: Path, built: dict[str, Any]) -> None:
    path = save_reference(built, tmp_path / "ref" / "cohort.json")
    ref = load_reference(path)
    assert ref.data == built
    stratum = find_stratum(built, age_band="40-49")
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


def test_save_is_atomic_and_refuses_to_overwrite_a_different_file(tmp_path: Path) -> None:
    data = mini_reference()
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
