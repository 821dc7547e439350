"""Tests of scripts.reporting.render_reports (and SubjectReportd's modes): a report drawn later for a finished run
equals the one the pipeline draws, byte for byte; existing reports are kept; what cannot be drawn is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from scripts.reporting.render_reports import render_reports
from scripts.reporting.subject_files_report import report_paths

from tests.conftest import BUNDLE_ROOT
from tests.pipeline.helpers import loaded, quantify_and_finish, spine_subject

_PICTURES = ("montage", "chart", "sagittal", "levels", "csa", "html")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The box-spine subject (muscles and vertebral levels) finished with each write_report mode."""
    tmp = tmp_path_factory.mktemp("render")
    files, label, affine = spine_subject(tmp)
    out = {}
    for mode in ("true", "later", "false"):
        out[mode] = tmp / f"run_{mode}"
        quantify_and_finish(out[mode], loaded(files, label, affine, subject="spine"), report=mode)
    return out


def test_the_pipeline_draws_now_or_keeps_the_inputs_for_later(runs):
    now, later, off = (report_paths(runs[m] / "spine", "spine") for m in ("true", "later", "false"))
    assert all(now[k].is_file() for k in _PICTURES) and not now["inputs"].exists()
    assert later["inputs"].is_file() and not any(later[k].exists() for k in _PICTURES)
    assert not any(off[k].exists() for k in (*_PICTURES, "inputs"))


def test_a_report_drawn_later_equals_the_pipelines_byte_for_byte(runs):
    rows = render_reports(runs["later"])
    assert [(r["subject"], r["status"]) for r in rows] == [("spine", "drawn")] and rows[0]["seconds"] > 0
    now, later = (report_paths(runs[m] / "spine", "spine") for m in ("true", "later"))
    for key in _PICTURES:
        assert later[key].read_bytes() == now[key].read_bytes(), key
    html = later["html"].read_text(encoding="utf-8")
    for section in ("Flags", "Fat fraction per muscle", "Normative comparison", "Per vertebral level", "Pictures"):
        assert f"<h2>{section}" in html
    assert html.count("data:image/png;base64,") == 5
    # a second call keeps the page; --overwrite draws it again, the same
    assert render_reports(runs["later"])[0]["status"] == "skipped"
    before = later["html"].stat().st_mtime_ns
    assert render_reports(runs["later"], subjects="spine", overwrite=True)[0]["status"] == "drawn"
    assert later["html"].stat().st_mtime_ns >= before and later["html"].read_bytes() == now["html"].read_bytes()


def test_what_cannot_be_drawn_is_named_and_the_command_exits_1(runs):
    (row,) = render_reports(runs["false"])
    assert row["status"] == "failed" and "spine_report_inputs.npz: missing" in row["message"]
    assert "--write_report later" in row["message"]
    (row,) = render_reports(runs["true"], subjects=["nobody"])
    assert row["status"] == "failed" and "nobody_done.json: missing" in row["message"]
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        render_reports(runs["true"] / "absent")
    cmd = [sys.executable, "-m", "scripts.reporting.render_reports", "--output_dir", str(runs["false"])]
    done = subprocess.run(cmd, cwd=BUNDLE_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "spine: failed" in done.stdout and "0 drawn, 0 skipped, 1 failed" in done.stdout
