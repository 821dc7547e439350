"""Per-level pictures of the report: a heat map of FF by vertebral level and muscle side, and a CSA chart.

Both read the per-level table of :func:`scripts.quantification.level_statistics.level_statistics`. Levels run
cranial (top / left) to caudal; a level side without an FF value (missing, too small) is a grey cell marked "n/a",
never a colour. When the level assignment is uncertain the title says so, so a picture is never read as certain.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from scripts.labels import MUSCLE_VALUES, muscle_and_side
from scripts.reporting.figures import new_figure, save_png
from scripts.reporting.style import LABEL_COLOURS, muscle_name

__all__ = ["level_heatmap_figure", "level_heatmap", "level_csa_figure", "level_csa_chart"]

_SHORT_MUSCLE = {
    "psoas": "Psoas",
    "iliacus": "Iliacus",
    "quadratus_lumborum": "QL",
    "erector_spinae_multifidus": "ES+MF",
}


def _levels(table: pd.DataFrame) -> list[str]:
    """Level names in table order (cranial to caudal)."""
    return list(dict.fromkeys(table["level"].astype(str)))


def _status_text(table: pd.DataFrame) -> str:
    status = str(table["level_status"].iloc[0]) if len(table) else "n/a"
    return "levels ok" if status == "ok" else "LEVELS UNCERTAIN (see the reasons in the table)"


def _matrix(table: pd.DataFrame, column: str) -> tuple[list[str], np.ndarray]:
    """``(levels, values)``: ``values[i, j]`` is ``column`` of level ``i`` and label ``MUSCLE_VALUES[j]``."""
    levels = _levels(table)
    out = np.full((len(levels), len(MUSCLE_VALUES)), np.nan)
    for _, r in table.iterrows():
        v = r[column]
        if v is not None and not pd.isna(v):
            out[levels.index(str(r["level"])), MUSCLE_VALUES.index(int(r["label"]))] = float(v)
    return levels, out


def _side_label(v: int) -> str:
    muscle, side = muscle_and_side(v)
    return f"{_SHORT_MUSCLE[muscle]} {side[0].upper()}"


def level_heatmap_figure(table: pd.DataFrame, title: str | None = None) -> Figure:
    """Heat map of ``ff_mean_pct``: one row per level (cranial on top), one column per muscle side.

    Args:
        table: the per-level table (columns ``level``, ``label``, ``ff_mean_pct``, ``level_status``).
        title: figure title; default names the statistic and the level status.

    Returns:
        The figure, each cell annotated with its value (one decimal) or "n/a".
    """
    levels, ff = _matrix(table, "ff_mean_pct")
    fig = new_figure((8.0, 1.2 + 0.55 * max(len(levels), 1)))
    ax = fig.add_subplot(1, 1, 1)
    finite = ff[np.isfinite(ff)]
    vmax = max(30.0, float(np.ceil(finite.max() / 10.0) * 10.0)) if finite.size else 30.0
    norm = Normalize(0.0, vmax)
    cmap = "YlOrRd"
    image = ax.imshow(np.ma.masked_invalid(ff), cmap=cmap, norm=norm, aspect="auto")
    ax.set_facecolor("#d9d9d9")
    for i in range(ff.shape[0]):
        for j in range(ff.shape[1]):
            value = ff[i, j]
            text = "n/a" if math.isnan(value) else f"{value:.1f}"
            dark = not math.isnan(value) and norm(value) > 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(len(MUSCLE_VALUES)), [_side_label(v) for v in MUSCLE_VALUES], fontsize=8)
    ax.set_yticks(range(len(levels)), levels, fontsize=9)
    ax.set_xlabel("muscle side (patient's left / right)", fontsize=8)
    ax.set_ylabel("vertebral level", fontsize=8)
    fig.colorbar(image, ax=ax, label="FF mean (%)", shrink=0.9)
    ax.set_title(title or f"Fat fraction by vertebral level: {_status_text(table)}", fontsize=10)
    return fig


def level_heatmap(
    table: pd.DataFrame, out_png: str | os.PathLike[str], title: str | None = None, dpi: int = 120
) -> Path:
    """Write :func:`level_heatmap_figure` as PNG (atomically); returns the path."""
    return save_png(level_heatmap_figure(table, title), out_png, dpi)


def level_csa_figure(table: pd.DataFrame, column: str = "csa_mean_cm2", title: str | None = None) -> Figure:
    """Cross-section area per level: one line per muscle side (left solid, right dashed), levels cranial to caudal.

    Args:
        table: the per-level table.
        column: ``csa_mean_cm2`` (default) or ``csa_mid_cm2``.
        title: figure title; default names the column and the level status.

    Returns:
        The figure; a level side without a value is left out of its line (a gap); a muscle side with no voxel in
        any level gets no line. A muscle that is absent from one level (present in others) has an area of 0 there.
    """
    levels, csa = _matrix(table, column)
    _, voxels = _matrix(table, "n_voxels")
    fig = new_figure((9.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(levels))
    for j, v in enumerate(MUSCLE_VALUES):
        if not np.isfinite(csa[:, j]).any() or not np.nansum(voxels[:, j]):
            continue  # a muscle with no voxel in any level: no line (a failed label is not an area of 0)
        muscle, side = muscle_and_side(v)
        ax.plot(
            x,
            csa[:, j],
            marker="<" if side == "left" else ">",
            linestyle="-" if side == "left" else "--",
            color=LABEL_COLOURS[v],
            label=f"{muscle_name(muscle)} {side}",
        )
    ax.set_xticks(x, levels, fontsize=9)
    ax.set_xlabel("vertebral level (cranial to caudal)", fontsize=8)
    what = "mean over the level" if column == "csa_mean_cm2" else "at the level's mid-plane"
    ax.set_ylabel(f"cross-section area, {what} (cm$^2$)", fontsize=8)
    ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title or f"Cross-section area by vertebral level: {_status_text(table)}", fontsize=10)
    return fig


def level_csa_chart(
    table: pd.DataFrame, out_png: str | os.PathLike[str], column: str = "csa_mean_cm2", dpi: int = 120
) -> Path:
    """Write :func:`level_csa_figure` as PNG (atomically); returns the path."""
    return save_png(level_csa_figure(table, column), out_png, dpi)
