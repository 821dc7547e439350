"""Tests of scripts.reporting.html_report: flags, tables, approximation note, provenance, embedded pictures."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd
import pytest
from scripts.reporting.html_report import APPROXIMATION_NOTE, html_report
from scripts.reporting.style import MUSCLE_DISPLAY_NAMES

from tests.reporting.report_cases import PNG_MAGIC, PROV, make_subject_case


@pytest.fixture(scope="module")
def subject_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_subject_case(tmp_path_factory.mktemp("report"))


def test_html_report_content(subject_case):
    table, comparison = subject_case["result"].table, subject_case["comparison"]
    assert table.truncated_inferior.any() or table.truncated_superior.any()  # the tiny phantom is cut by its FOV
    images = {"QC montage": subject_case["montage"], "FF chart": subject_case["chart"]}
    path = html_report("sub-0002", table, comparison, images, subject_case["out"] / "sub-0002.html", PROV)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    for name in MUSCLE_DISPLAY_NAMES.values():
        assert html.escape(name) in text
    assert "Iliacus left: missing" in text and "never 0 %" in text
    assert "truncated at the" in text
    assert "fat-water swap suspected (asymmetric)" in text
    assert html.escape(APPROXIMATION_NOTE) in text and "lognormal" in text
    for value in PROV.values():
        assert value in text
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(embedded) == 2 and base64.b64decode(embedded[0]).startswith(PNG_MAGIC)
    assert "within_iqr" in text or "above_q3" in text or "below_q1" in text


def test_html_report_without_flags_or_reference(tmp_path: Path):
    rows = []
    for muscle in MUSCLE_DISPLAY_NAMES:
        for side in ("left", "right", "mean"):
            rows.append(
                {
                    "muscle": muscle,
                    "side": side,
                    "ff_mean_pct": 12.0,
                    "status": "ok",
                    "truncated_inferior": False,
                    "truncated_superior": False,
                    "swap_suspected": False,
                }
            )
    path = html_report("s<1>", pd.DataFrame(rows), None, {}, tmp_path / "r.html", {"ff_method": "vendor_ff_map"})
    text = path.read_text()
    assert "No flags" in text and "No normative reference" in text
    assert "s&lt;1&gt;" in text and "s<1>" not in text  # escaped
