"""Tests of scripts.reporting.ff_chart: FF points over the reference band, whiskers, no reference, QC fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripts.normative.comparison import compare_to_reference
from scripts.reporting.ff_chart import ff_chart, ff_chart_figure
from scripts.reporting.qc_marks import QC_COLOURS

from tests.reporting.report_cases import PNG_MAGIC, make_subject_case, qc_case_table


@pytest.fixture(scope="module")
def subject_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_subject_case(tmp_path_factory.mktemp("report"))


def test_chart_written(subject_case):
    for key in ("chart",):
        data = Path(subject_case[key]).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert not list(subject_case["out"].glob(".*.tmp"))


def test_ff_chart_with_whiskers_and_without_reference(subject_case, tmp_path: Path):
    comparison = subject_case["comparison"].copy()
    comparison["p5"] = comparison["p25"] - 4.0
    comparison["p95"] = comparison["p75"] + 6.0
    a = ff_chart(subject_case["result"].table, comparison, tmp_path / "whiskers.png")
    b = ff_chart(subject_case["result"].table, None, tmp_path / "noref.png")
    assert a.read_bytes().startswith(PNG_MAGIC) and b.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="lacks column"):
        ff_chart(subject_case["result"].table.drop(columns="side"), None, tmp_path / "bad.png")


def _points(fig) -> dict[tuple[float, float], object]:
    """(x, y) -> Line2D of every subject point (marker drawn, no line); the band's lines have no marker."""
    ax = fig.axes[0]
    out = {}
    for line in ax.lines:
        if line.get_marker() not in ("None", None, "") and line.get_linestyle() == "None":
            x, y = line.get_xdata(), line.get_ydata()
            out[(round(float(x[0]), 2), round(float(y[0]), 2))] = line
    return out


def test_failed_side_is_not_plotted_and_review_is_marked_amber():
    table = qc_case_table()
    fig = ff_chart_figure(table, compare_to_reference(table))
    points = _points(fig)
    # 4 muscles x 3 sides = 12 values; psoas left (91 %) and the psoas L/R mean (51 %) failed: 10 points
    assert len(points) == 10
    assert all(y not in (91.0, 51.0) for _, y in points)
    assert (0.18, 11.0) in points  # psoas right passed: drawn at psoas (x 0) + 0.18
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "QC fail:\nleft,\nL/R mean" in texts and "missing" not in texts
    assert any("not plotted" in t.get_text().replace("\n", " ") for t in fig.texts)
    # iliacus right (review) keeps its point, with the amber edge; iliacus left has none
    assert points[(1.18, 13.0)].get_markeredgecolor() == QC_COLOURS["review"]
    assert points[(0.82, 12.0)].get_markeredgecolor() != QC_COLOURS["review"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "quality check: review" in legend


def test_table_without_verdict_plots_every_value():
    table = qc_case_table().drop(columns=["qc_status", "qc_score", "qc_reasons"])
    fig = ff_chart_figure(table, None)
    points = _points(fig)
    assert len(points) == 12 and (-0.18, 91.0) in points
    assert not [t for t in fig.axes[0].texts if "QC fail" in t.get_text()]
