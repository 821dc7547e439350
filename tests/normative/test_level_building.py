"""scripts.normative.level_building: per-level strata from a synthetic cohort with known medians, uncertain levels
and failed sides left out and counted, one bound rule per reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scripts.normative.group_comparison import cohort_frame
from scripts.normative.level_building import build_level_strata, level_summary
from scripts.normative.qc_exclusion import exclude_failed_qc

from tests.normative.level_cohort import N_CLEAN, write_level_cohort

OFFSETS = 0.1 * (np.arange(N_CLEAN) - 20)


def _rows(tmp_path, include_failed: bool = False) -> pd.DataFrame:
    """The per-level rows after the QC rule, with the participant columns (as the command gives them)."""
    paths = write_level_cohort(tmp_path / "run")
    levels = pd.read_csv(paths["levels"], dtype={"subject": str})
    table = exclude_failed_qc(levels, include_failed=include_failed).table
    frame = cohort_frame(table, str(paths["participants"])).rename(columns={"ff": "ff_mean_pct"})
    return frame.assign(**{c: table[c].to_numpy() for c in ("level", "level_status", "boundary_rule")})


def _pooled(block: dict, level: str) -> dict:
    return next(s for s in block["levels"][level] if (s["sex"], s["age_band"], s["activity"]) == ("all",) * 3)


def test_per_level_percentiles_of_a_known_cohort(tmp_path):
    block = build_level_strata(_rows(tmp_path), min_n=20)
    assert block["boundary_rule"] == "mid_disc" and list(block["levels"]) == ["L1", "L2", "L3", "L4", "L5"]
    for j, level in enumerate(block["levels"]):
        pooled = _pooled(block, level)
        left = pooled["per_side"]["left"]["psoas"]
        # f0's failed psoas left is withheld, the 4 uncertain subjects are left out: the 41 clean subjects remain
        assert left["n"] == N_CLEAN and left["p50"] == pytest.approx(10.0 + 2.0 * j)
        assert left["p25"] == pytest.approx(10.0 + 2.0 * j + np.percentile(OFFSETS, 25))
        assert left["p95"] == pytest.approx(10.0 + 2.0 * j + np.percentile(OFFSETS, 95))
        assert pooled["per_side"]["right"]["psoas"]["n"] == N_CLEAN + 1  # f0's right side counts
        # L/R mean from the two sides: NaN (not counted) for f0, so n = 41 and the median is the centres' mean
        assert pooled["muscles"]["psoas"] == {**pooled["muscles"]["psoas"], "n": N_CLEAN}
        assert pooled["muscles"]["psoas"]["p50"] == pytest.approx((10.0 + 2.0 * j + 20.0) / 2)
        assert pooled["muscles"]["erector_spinae_multifidus"]["p50"] == pytest.approx(35.0)
        assert pooled["n"] == N_CLEAN + 1
    assert block["uncertain_excluded"] == dict.fromkeys(block["levels"], 4) and block["subjects"]["L3"] == 42
    assert {s["sex"] for s in block["levels"]["L3"]} == {"all", "female", "male"}
    assert "20 uncertain subject-level(s) left out (L1 4, L2 4, L3 4, L4 4, L5 4)" in level_summary(block)


def test_uncertain_levels_and_failed_sides_kept_on_request(tmp_path):
    block = build_level_strata(_rows(tmp_path, include_failed=True), include_uncertain=True)
    left = _pooled(block, "L3")["per_side"]["left"]["psoas"]
    assert left["n"] == N_CLEAN + 5 and left["p95"] == pytest.approx(60.0)  # 4 uncertain at 60 %, f0 at 80 %
    assert block["uncertain_excluded"] == {} and block["uncertain_levels_total"] == 20
    assert "20 uncertain subject-level(s) kept on request" in level_summary(block)


def test_mixed_rules_and_no_usable_level_are_refused(tmp_path):
    rows = _rows(tmp_path)
    mixed = rows.assign(boundary_rule=np.where(rows.subject == "c00", "mid_body", "mid_disc"))
    with pytest.raises(ValueError, match=r"cohort_ff_levels.csv: the per-level rows must share one boundary_rule"):
        build_level_strata(mixed, source="cohort_ff_levels.csv")
    with pytest.raises(ValueError, match=r"no vertebral level has a usable FF: 230 subject-level\(s\) were left out"):
        build_level_strata(rows.assign(level_status="uncertain"))
    with pytest.raises(ValueError, match=r"lacks columns \['level_status'\]"):
        build_level_strata(rows.drop(columns=["level_status"]))
