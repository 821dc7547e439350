"""The report-step benchmark (scripts/tools/benchmark_report.py) on a tiny phantom subject: both modes timed."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripts.phantom import Acquisition, generate_subject, write_subject
from scripts.tools.benchmark_report import run


def test_the_report_step_is_timed_in_both_modes(tmp_path: Path):
    subj = generate_subject(3, Acquisition.preset("tiny"))
    write_subject(subj, tmp_path)  # tmp_path/<id>/<id>_<role>.nii.gz
    table = run(str(tmp_path), subj.subject_id, reps=2)
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    assert [r[0].strip() for r in rows] == ["true", "later"]
    assert all(float(r[1]) > 0 and float(r[2]) > 0 and len(r[3].split(",")) == 2 for r in rows)
    with pytest.raises(ValueError, match="reps must be >= 2"):
        run(str(tmp_path), subj.subject_id, reps=1)
    with pytest.raises(FileNotFoundError, match="nobody_label.nii.gz: missing"):
        run(str(tmp_path), "nobody", reps=2)
