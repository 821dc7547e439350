"""Tests of scripts.reporting.subject_files_report: the report's inputs read back from a subject's files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scripts.reporting.montage_panels import montage_panels
from scripts.reporting.subject_files_report import _provenance_value, render_subject_report, report_paths


def test_provenance_text_is_typed_back_as_the_ff_step_made_it():
    # scripts.quantification.statistics writes the provenance as text: None -> "none", False -> "False"
    assert [_provenance_value(v) for v in ("none", "False", "True", "53.5", "1e-3", "0", "water_fat")] == [
        None,
        False,
        True,
        53.5,
        0.001,
        "0",
        "water_fat",
    ]
    assert _provenance_value("water=sub-0001_water.nii.gz") == "water=sub-0001_water.nii.gz"
    assert _provenance_value(2.5) == 2.5


def test_a_missing_table_is_named(tmp_path: Path):
    img = np.ones((8, 8, 4), np.float32)
    panels = montage_panels(img, np.eye(4), np.zeros((8, 8, 4), np.uint8), n_slices=2)
    with pytest.raises(FileNotFoundError, match="s1_ff_table.json: missing"):
        render_subject_report(tmp_path, "s1", panels)
    assert not report_paths(tmp_path, "s1")["html"].exists()
