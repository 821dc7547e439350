"""LevelStatisticsd in the quantification steps of inference.json: per-level table, JSON section, cohort table and
report pictures with vertebral labels; one message and no per-level file without them."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pandas as pd
import pytest
from scripts.pipeline.keys import VERTEBRA_NAMING_KEY
from scripts.pipeline.level_statistics import NO_CONTEXT_TEXT, LevelStatisticsd
from scripts.pipeline.mark_done import MarkDoned
from scripts.quantification.vertebra_naming import NamingResult

from tests.pipeline.helpers import lean_body, loaded, quantification_steps, spine_subject


@pytest.mark.parametrize("lps", [False, True])
def test_levels_written_to_csv_json_cohort_and_report(tmp_path, lps):
    out = tmp_path / "eval"
    files, lab, aff = spine_subject(tmp_path, lps=lps)
    d = quantification_steps(out, report=True, min_volume_ml=0.5)(loaded(files, lab, aff, subject="spine"))
    MarkDoned(output_dir=str(out))(d)
    sdir = out / "spine"
    table = pd.read_csv(sdir / "spine_ff_levels.csv")
    assert list(dict.fromkeys(table.level)) == ["L1", "L2", "L3", "L4", "L5"]
    psoas = table[(table.muscle == "psoas") & (table.side == "left")].set_index("level")
    np.testing.assert_allclose(psoas.ff_mean_pct.to_numpy(), [10.0, 12.0, 14.0, 16.0, 18.0], atol=1e-3)
    assert psoas.loc["L3", "csa_mean_cm2"] == pytest.approx(0.96)
    assert set(table.level_status) == {"ok"} and set(table.level_anchor) == {"sacrum"}
    meta = json.loads((sdir / "spine_ff_table.json").read_text())["meta"]["levels"]
    assert meta["status"] == "ok" and [lv["level"] for lv in meta["levels"]] == ["L1", "L2", "L3", "L4", "L5"]
    assert meta["levels"][2]["z_low_mm"] == pytest.approx(91.0) and "csa_mean_cm2" in meta["units"]
    cohort = pd.read_csv(out / "cohort_ff_levels.csv")
    assert len(cohort) == 40 and set(cohort.subject) == {"spine"}
    for name in ("spine_levels_sagittal.png", "spine_ff_levels.png", "spine_csa_levels.png"):
        assert (sdir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (sdir / "spine_report.html").read_text()
    assert "FF by vertebral level and muscle side (levels ok)" in page
    section = page.split("<h2>Per vertebral level</h2>", 1)[1].split("<h2>", 1)[0]
    assert "Levels ok" in section and section.count("data:image/png;base64") == 3
    assert "Vertebral levels on the mid-sagittal plane: check the names against the spine (levels ok)" in section
    assert '<td class="t">L3</td><td class="t">Psoas</td><td>14.0</td><td>20.0</td>' in section


def test_uncertain_levels_are_said_in_the_report(tmp_path):
    out = tmp_path / "eval"
    files, lab, aff = spine_subject(tmp_path)
    lab[lab == 14] = 0  # the sacrum is not segmented: no anchor
    d = quantification_steps(out, report=True)(loaded(files, lab, aff, subject="spine"))
    table = pd.read_csv(out / ".staging" / "spine" / "spine_ff_levels.csv")
    assert set(table.level_status) == {"uncertain"} and table.level_reasons.str.contains("sacrum").all()
    page = (out / ".staging" / "spine" / "spine_report.html").read_text()
    assert "levels UNCERTAIN: the sacrum is not in the label map" in page
    assert "names rest on the network&#x27;s labels alone" in page.split("<h2>Per vertebral level</h2>", 1)[1]
    assert d["ff_statistics"].meta["levels"]["status"] == "uncertain"


def test_nine_class_label_map_writes_no_levels_and_says_why_once(tmp_path, caplog):
    out = tmp_path / "eval"
    files, label, aff = lean_body(tmp_path)
    steps = quantification_steps(out, report=True)
    with caplog.at_level(logging.INFO, logger="scripts.pipeline.level_statistics"):
        d = steps(loaded(files, label, aff))
        step = LevelStatisticsd("pred")
        step(dict(d))
        step(dict(d))
    assert [r.getMessage() for r in caplog.records].count(f"{NO_CONTEXT_TEXT}; no per-level table is written") == 2
    assert "level_statistics" not in d and "cohort_level_rows" not in d
    assert not list((out / ".staging" / "lean").glob("*levels*"))
    meta = json.loads((out / ".staging" / "lean" / "lean_ff_table.json").read_text())["meta"]
    assert meta["levels"] == {"status": "not available", "reasons": [NO_CONTEXT_TEXT]}
    page = (out / ".staging" / "lean" / "lean_report.html").read_text()
    assert "need a model with the vertebral context" in page.split("<h2>Per vertebral level</h2>", 1)[1]
    MarkDoned(output_dir=str(out))(d)
    assert not (out / "cohort_ff_levels.csv").exists()


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="rule must be one of"):
        LevelStatisticsd("pred", rule="endplates")


def test_per_level_reference_places_each_level_in_the_csv_cohort_table_and_report(tmp_path):
    from scripts.normative import cohort_study

    from tests.normative.level_cohort import write_level_cohort

    paths = write_level_cohort(tmp_path / "cohort")  # level centres: psoas left 10 + 2 j %, right 20 %, ES+MF 30/40 %
    ref = tmp_path / "levels_reference.json"
    cohort_study.build_reference(str(paths["table"]), str(paths["participants"]), str(ref), per_level=True)
    out = tmp_path / "eval"
    files, lab, aff = spine_subject(tmp_path)  # psoas left 10, 12, 14, 16, 18 % in L1-L5: the centres
    steps = quantification_steps(out, report=True, min_volume_ml=0.5, reference_file=str(ref))
    MarkDoned(output_dir=str(out))(steps(loaded(files, lab, aff, subject="spine")))
    table = pd.read_csv(out / "spine" / "spine_ff_levels.csv")
    measured = table[table.muscle.isin(["psoas", "erector_spinae_multifidus"])]
    # the float32 Dixon images give the centres to 1e-5 %: the 50th percentile to 1e-4
    np.testing.assert_allclose(measured.percentile_approx.to_numpy(), 50.0, atol=1e-3)
    np.testing.assert_allclose(measured.z_score_approx.to_numpy(), 0.0, atol=1e-4)
    psoas = measured[(measured.muscle == "psoas") & (measured.side == "left")]
    np.testing.assert_allclose(psoas.ref_p50.to_numpy(), [10.0, 12.0, 14.0, 16.0, 18.0], atol=1e-9)
    absent = table[table.muscle == "iliacus"]
    assert absent.percentile_approx.isna().all() and absent.normative_flags.str.contains("missing_value").all()
    cohort = pd.read_csv(out / "cohort_ff_levels.csv")
    assert {"qc_status", "percentile_approx", "z_score_approx", "normative_flags"} <= set(cohort.columns)
    section = (out / "spine" / "spine_report.html").read_text().split("<h2>Per vertebral level</h2>", 1)[1]
    assert "percentile left (approx.)" in section and "Percentiles against the per-level strata" in section
    # ES+MF failed the quality check on this box spine: its percentiles are withheld on the page
    es = re.search(r'<td class="t">L3</td><td class="t">Erector spinae \+ multifidus</td>(.*?)</tr>', section)
    assert es.group(1).count("withheld (QC fail)") == 2 and es.group(1).count("(QC fail)") == 6


def test_the_naming_record_goes_into_the_levels_section(tmp_path):
    out = tmp_path / "eval"
    files, lab, aff = spine_subject(tmp_path)
    entry = loaded(files, lab, aff, subject="spine")
    record = NamingResult("renamed", ["L4 -> L5"]).to_meta()
    d = quantification_steps(out)({**entry, VERTEBRA_NAMING_KEY: record})
    assert d["ff_statistics"].meta["levels"]["naming"] == record
    meta = json.loads((out / ".staging" / "spine" / "spine_ff_table.json").read_text())["meta"]["levels"]
    assert meta["naming"]["renamed"] == ["L4 -> L5"] and meta["naming"]["rule"] == "counted up from the sacrum"


def test_a_map_with_only_the_sacrum_finishes_without_level_rows(tmp_path):
    out = tmp_path / "eval"
    files, lab, aff = spine_subject(tmp_path)
    first = quantification_steps(out, min_volume_ml=0.5)(loaded(files, lab, aff, subject="spine"))
    MarkDoned(output_dir=str(out))(first)
    assert len(pd.read_csv(out / "cohort_ff_levels.csv")) == 40
    lab = lab.copy()
    lab[(lab >= 9) & (lab <= 13)] = 0  # no lumbar body: levels assigned, none to measure
    d = quantification_steps(out, min_volume_ml=0.5)(loaded(files, lab, aff, subject="spine"))
    assert d["ff_statistics"].meta["levels"]["levels"] == []
    MarkDoned(output_dir=str(out))(d)
    assert (out / "spine" / "spine_done.json").is_file()
    # the rerun's (empty) level rows replace the earlier run's
    assert "spine" not in set(pd.read_csv(out / "cohort_ff_levels.csv").subject.astype(str))


@pytest.mark.parametrize("status, expected", [("counted", "ok"), ("not named", "uncertain")])
def test_names_counted_from_a_stated_lowest_body_need_no_sacrum(tmp_path, status, expected):
    """Without the sacrum the levels are uncertain, unless the naming step counted the bodies up from the user's
    stated lowest body (a record that names nothing anchors nothing)."""
    out = tmp_path / "eval"
    files, lab, aff = spine_subject(tmp_path)
    lab = np.where(lab == 14, 0, lab)
    record = NamingResult(status, anchor="stated lowest body L5").to_meta()
    d = quantification_steps(out, min_volume_ml=0.5)(
        {**loaded(files, lab, aff, subject="spine"), VERTEBRA_NAMING_KEY: record}
    )
    meta = d["ff_statistics"].meta["levels"]
    assert meta["status"] == expected and meta["naming"]["anchor"] == "stated lowest body L5"
    assert meta["anchor"] == ("stated lowest body L5" if status == "counted" else "sacrum")
    table = pd.read_csv(out / ".staging" / "spine" / "spine_ff_levels.csv")
    assert set(table.level_status) == {expected} and list(dict.fromkeys(table.level)) == ["L1", "L2", "L3", "L4", "L5"]


def test_no_levels_despite_a_stated_lowest_body_is_a_warning(tmp_path, caplog):
    """A user who states the lowest body asked for levels: when none can be named the log warns, with the reasons;
    without a statement the same outcome is a plain note."""
    files, label, aff = lean_body(tmp_path)
    for anchor, level in (("stated lowest body L5", logging.WARNING), ("sacrum", logging.INFO)):
        record = {"status": "not named", "anchor": anchor, "reasons": ["no vertebral bodies found"]}
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="scripts.pipeline.level_statistics"):
            steps = quantification_steps(tmp_path / anchor.replace(" ", "_"))
            steps({**loaded(files, label, aff, subject="lean"), VERTEBRA_NAMING_KEY: record})
        (found,) = [r for r in caplog.records if "no per-level table" in r.getMessage()]
        assert found.levelno == level and "no vertebral bodies found" in found.getMessage()
