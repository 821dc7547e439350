"""scripts.pipeline.measure (the MONAI Deploy route): the same numbers and files as the steps of inference.json,
the per-level table included when the label map holds the vertebral context."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scripts.io.load import load_dixon
from scripts.pipeline.level_statistics import NO_CONTEXT_TEXT
from scripts.pipeline.measure import measure_subject, measure_subject_levels_and_label
from scripts.quantification.tables import write_tables

from tests.pipeline.helpers import lean_body, loaded, quantification_steps, spine_subject


def test_levels_of_the_deploy_route_equal_the_pipeline_files(tmp_path):
    files, lab, aff = spine_subject(tmp_path, lps=True)
    result, _, levels, _ = measure_subject_levels_and_label(
        load_dixon({**files, "subject": "spine"}), lab, aff, min_volume_ml=0.5
    )
    psoas = levels[(levels.muscle == "psoas") & (levels.side == "left")].set_index("level")
    np.testing.assert_allclose(psoas.ff_mean_pct.to_numpy(), [10.0, 12.0, 14.0, 16.0, 18.0], atol=1e-3)
    assert psoas.loc["L3", "csa_mid_cm2"] == pytest.approx(0.96)
    assert set(levels.qc_status.dropna()) <= {"pass", "review", "fail"} and levels.qc_status.notna().all()
    assert list(levels.columns).index("qc_status") == list(levels.columns).index("status") + 1
    assert result.meta["levels"]["status"] == "ok"
    written = write_tables(result, tmp_path / "app", "spine", levels=levels)
    assert written["levels_csv"].name == "spine_ff_levels.csv"
    # the plain bundle's steps on the same subject write the same per-level file, byte for byte
    out = tmp_path / "eval"
    quantification_steps(out, min_volume_ml=0.5)(loaded(files, lab, aff, subject="spine"))
    plain = out / ".staging" / "spine"
    assert written["levels_csv"].read_text() == (plain / "spine_ff_levels.csv").read_text()
    assert written["table_json"].read_text() == (plain / "spine_ff_table.json").read_text()
    # a second write with other content is refused as for the other tables
    with pytest.raises(FileExistsError, match="spine_ff_levels.csv"):
        write_tables(result, tmp_path / "app", "spine", levels=levels.assign(ff_mean_pct=1.0))


def test_nine_class_label_map_gives_no_levels_and_says_why(tmp_path):
    files, label, aff = lean_body(tmp_path)
    result, _, levels, measured = measure_subject_levels_and_label(load_dixon({**files, "subject": "lean"}), label, aff)
    np.testing.assert_array_equal(measured, label)
    assert levels is None
    assert result.meta["levels"] == {"status": "not available", "reasons": [NO_CONTEXT_TEXT]}
    assert "levels_csv" not in write_tables(result, tmp_path / "app", "lean", levels=levels)
    assert not list((tmp_path / "app").glob("*levels*"))
    same = measure_subject(load_dixon({**files, "subject": "lean"}), label, aff)[0].table
    pd.testing.assert_frame_equal(same, result.table)


def test_unknown_level_rule_is_refused(tmp_path):
    files, lab, aff = spine_subject(tmp_path)
    with pytest.raises(ValueError, match="rule must be one of"):
        measure_subject_levels_and_label(load_dixon(files), lab, aff, level_rule="endplates")
