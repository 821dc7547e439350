"""Tests of scripts.reporting.qc_marks: each row's quality verdict looked up by muscle and side."""

from __future__ import annotations

import pandas as pd
from scripts.reporting.qc_marks import qc_status_of, qc_statuses


def test_verdicts_by_muscle_and_side_with_the_reference_spelling_of_the_mean():
    table = pd.DataFrame(
        {
            "muscle": ["psoas", "psoas", "psoas"],
            "side": ["left", "right", "mean"],
            "qc_status": ["FAIL", "review", None],
        }
    )
    statuses = qc_statuses(table)
    assert statuses == {("psoas", "left"): "fail", ("psoas", "right"): "review"}
    assert qc_status_of(statuses, "psoas", "left") == "fail"
    assert qc_status_of(statuses, "psoas", "lr_mean") == "pass"  # no verdict on that row: nothing withheld
    assert qc_statuses(table.drop(columns="qc_status")) == {} and qc_statuses(None) == {}
