"""QualityVerdictd with the Dixon input-consistency check, through the quantification steps of inference.json: a
consistent scan keeps its verdicts and records the figures in the FF JSON; the water image given as the in-phase image
puts every side to review with the reason (table, JSON, log); in-phase/opposed-phase input records why the check was
skipped."""

from __future__ import annotations

import json
import logging
import shutil

import pandas as pd
import pytest

from tests.pipeline.helpers import lean_body, loaded, quantify_and_finish


def _outputs(out, subject="lean"):
    table = pd.read_csv(out / subject / f"{subject}_ff_table.csv")
    meta = json.loads((out / subject / f"{subject}_ff_table.json").read_text())["meta"]
    return table, meta["input_consistency"]


def test_a_consistent_scan_records_the_figures_and_keeps_its_verdicts(tmp_path):
    files, label, affine = lean_body(tmp_path)
    quantify_and_finish(tmp_path / "eval", loaded(files, label, affine))
    table, consistency = _outputs(tmp_path / "eval")
    assert consistency["checked"] and consistency["findings"] == []
    # in-phase = water + fat exactly: fat ring FF 0.9, muscle ring FF 0.1
    assert consistency["contrast"] == pytest.approx(1.0) and consistency["noise"] == pytest.approx(0.0, abs=1e-6)
    reasons = table[table.label.isin([7, 8])].qc_reasons.fillna("")
    assert not reasons.str.contains("network input").any()


def test_water_given_as_inphase_puts_every_side_to_review(tmp_path, caplog):
    files, label, affine = lean_body(tmp_path)
    shutil.copyfile(files["water"], files["inphase"])
    with caplog.at_level(logging.WARNING, logger="scripts.pipeline.quality_verdict"):
        quantify_and_finish(tmp_path / "eval", loaded(files, label, affine))
    table, consistency = _outputs(tmp_path / "eval")
    # fat voxels (FF 0.9) show 0.1 of W + F, muscle voxels (FF 0.1) 0.9: contrast 0.1 / 0.9
    assert consistency["contrast"] == pytest.approx(1 / 9, rel=1e-3)
    assert consistency["findings"][0].startswith("review: network input inconsistent with water and fat")
    assert set(table.qc_status) <= {"review", "fail"}, table[["muscle", "side", "qc_status"]]
    assert table.qc_reasons.str.contains("0.11 times as bright").all()
    assert "every side: review: network input inconsistent" in caplog.text
    assert caplog.text.count("0.11 times as bright") == 1  # once in the log, not once per side


def test_inphase_opposed_input_records_why_it_was_not_checked(tmp_path):
    files, label, affine = lean_body(tmp_path)
    ip_op = {"inphase": files["inphase"], "opposed": files["water"]}  # any opposed image: W and F are derived
    quantify_and_finish(tmp_path / "eval", loaded(ip_op, label, affine))
    _, consistency = _outputs(tmp_path / "eval")
    assert not consistency["checked"] and "circular" in consistency["skipped_reason"]
