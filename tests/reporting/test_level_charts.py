"""The per-level pictures: values in the heat map cells, n/a for no value, no line for a muscle with no voxel."""

from __future__ import annotations

import pytest
from scripts.quantification.level_statistics import level_statistics
from scripts.quantification.levels import assign_levels
from scripts.reporting.level_charts import level_csa_chart, level_csa_figure, level_heatmap_figure

from tests.quantification.level_cases import affine, level_ff, spine_label


def _table(drop_sacrum: bool = False):
    lab, aff = spine_label(), affine()
    if drop_sacrum:
        lab[lab == 14] = 0
    return level_statistics(lab, aff, level_ff(), aff, assign_levels(lab, aff), subject="s")


def test_heatmap_cells_and_title():
    fig = level_heatmap_figure(_table())
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 5 * 8 and texts[0] == "10.0" and texts[4 * 8] == "18.0" and texts.count("n/a") == 5 * 4
    assert [t.get_text() for t in ax.get_yticklabels()] == ["L1", "L2", "L3", "L4", "L5"]
    assert ax.get_title().endswith("levels ok")
    assert "UNCERTAIN" in level_heatmap_figure(_table(drop_sacrum=True)).axes[0].get_title()


def test_csa_chart_draws_only_measured_muscles(tmp_path):
    fig = level_csa_figure(_table())
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == [
        "Psoas left",
        "Psoas right",
        "Erector spinae + multifidus left",
        "Erector spinae + multifidus right",
    ]
    assert list(fig.axes[0].get_lines()[0].get_ydata()[1:4]) == pytest.approx([0.96, 0.96, 0.96])
    assert level_csa_chart(_table(), tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
