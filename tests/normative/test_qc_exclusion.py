"""Tests of scripts.normative.qc_exclusion: rows that failed the quality verdict withheld and counted."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from scripts.normative.building import build_reference
from scripts.normative.qc_exclusion import QC_RULE, exclude_failed_qc


def _table() -> pd.DataFrame:
    """3 subjects x psoas, iliacus x left/right/mean: s1 psoas left fails (so its mean), s2 iliacus right is for
    review, s3 iliacus mean fails while both its sides pass (a hand-edited table)."""
    rows = []
    for i, subject in enumerate(("s1", "s2", "s3")):
        for muscle in ("psoas", "iliacus"):
            for side, ff in (("left", 10.0 + i), ("right", 12.0 + i), ("mean", 11.0 + i)):
                status = "pass"
                if (subject, muscle) == ("s1", "psoas") and side != "right":
                    status = "fail"
                if (subject, muscle, side) == ("s2", "iliacus", "right"):
                    status = "review"
                if (subject, muscle, side) == ("s3", "iliacus", "mean"):
                    status = "fail"
                rows.append(dict(subject=subject, muscle=muscle, side=side, ff_mean_pct=ff, qc_status=status))
    return pd.DataFrame(rows)


def test_fail_rows_withheld_and_counted_review_kept(caplog):
    table = _table()
    with caplog.at_level(logging.WARNING, logger="scripts.normative.qc_exclusion"):
        qc = exclude_failed_qc(table, source="cohort.csv")
    out = qc.table
    withheld = out[out.ff_mean_pct.isna()][["subject", "muscle", "side"]].values.tolist()
    assert withheld == [["s1", "psoas", "left"], ["s1", "psoas", "mean"], ["s3", "iliacus", "mean"]]
    review = (out.subject == "s2") & (out.muscle == "iliacus") & (out.side == "right")
    assert out.loc[review, "ff_mean_pct"].item() == 13.0
    assert qc.excluded["psoas"] == {"left": 1, "right": 0, "mean": 1}
    assert qc.excluded["iliacus"] == {"left": 0, "right": 0, "mean": 1}
    assert qc.excluded_total == 3 and table.ff_mean_pct.notna().all()  # the input is not modified
    prov = qc.provenance()
    assert prov["qc_rule"] == QC_RULE and prov["qc_excluded_total"] == 3 and prov["include_failed_qc"] is False
    assert "cohort.csv: QC: 3 row(s) with qc_status 'fail' left out (psoas left 1, mean 1; iliacus mean 1)" in (
        caplog.text
    )
    mean_only = "QC: 2 row(s) of side mean with qc_status 'fail' left out (psoas mean 1; iliacus mean 1)"
    assert qc.summary("mean") == mean_only


def test_include_failed_keeps_values_and_still_counts_the_failures():
    qc = exclude_failed_qc(_table(), include_failed=True)
    assert qc.table.ff_mean_pct.notna().all() and qc.excluded_total == 0
    assert qc.failed["psoas"]["left"] == 1 and qc.provenance()["qc_failed_rows_total"] == 3
    assert "kept on request" in qc.summary()


def test_table_without_verdict_is_used_as_is_with_a_warning():
    table = _table().drop(columns="qc_status")
    with pytest.warns(UserWarning, match="old.csv has no qc_status column"):
        qc = exclude_failed_qc(table, source="old.csv")
    pd.testing.assert_frame_equal(qc.table, table)
    assert not qc.qc_columns and qc.excluded_total == 0 and "no qc_status column" in qc.provenance()["qc_rule"]


def test_withheld_mean_is_not_rebuilt_from_its_sides():
    qc = exclude_failed_qc(_table())
    parts = pd.DataFrame({"subject": ["s1", "s2", "s3"], "sex": ["M", "F", "M"]})
    ref = build_reference(qc.table.merge(parts, on="subject"), group_columns=("sex",), min_n=1)
    pooled = ref["strata"][0]
    # psoas: s1's mean withheld -> n 2 (s2, s3); iliacus: s3's failed mean stays out although both sides passed
    assert pooled["muscles"]["psoas"]["n"] == 2 and pooled["muscles"]["iliacus"]["n"] == 2
    assert pooled["muscles"]["psoas"]["p50"] == pytest.approx(np.median([12.0, 13.0]))
    assert pooled["per_side"]["left"]["psoas"]["n"] == 2 and pooled["per_side"]["right"]["psoas"]["n"] == 3
    # without a mean row at all, the mean is still computed from the two sides (documented behaviour)
    no_means = qc.table[qc.table.side != "mean"].merge(parts, on="subject")
    assert build_reference(no_means, group_columns=("sex",), min_n=1)["strata"][0]["muscles"]["iliacus"]["n"] == 3
