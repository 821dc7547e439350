"""FF chart: a subject's fat fraction per muscle (left, right, L/R mean) over the reference band.

A side whose quality verdict is ``fail`` is not plotted (its number is not a measurement of that muscle): "QC fail"
stands at the muscle instead; a ``review`` side is drawn with an amber edge (:mod:`scripts.reporting.qc_marks`).
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from scripts.labels import MUSCLES
from scripts.reporting.figures import new_figure, save_png
from scripts.reporting.qc_marks import QC_COLOURS, QC_FAIL_TEXT, qc_status_of, qc_statuses
from scripts.reporting.style import LABEL_COLOURS, MUSCLE_DISPLAY_NAMES, side_key

__all__ = ["ff_chart", "ff_chart_figure"]

#: characters per line of the note under the chart (7-point text on the 8-inch figure)
_NOTE_CHARS = 145
_SIDE_STYLE = {"left": ("<", -0.18), "right": (">", 0.18), "mean": ("o", 0.0)}


def _reference_rows(comparison: pd.DataFrame | None) -> dict[str, pd.Series]:
    """L/R-mean reference row per muscle of a :func:`scripts.normative.comparison.compare_to_reference` table."""
    if comparison is None or comparison.empty:
        return {}
    rows = comparison[comparison["side"].map(side_key) == "mean"]
    return {str(r["muscle"]): r for _, r in rows.iterrows()}


def _finite(value: Any) -> bool:
    try:
        return value is not None and not pd.isna(value) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _distribution_note(comparison: pd.DataFrame | None) -> str:
    if comparison is None or comparison.empty:
        return "No normative reference given."
    dists = sorted({str(d) for d in comparison.get("distribution", pd.Series(dtype=object)).dropna()})
    ref = comparison.attrs.get("reference_id") or (
        comparison["reference_id"].iloc[0] if "reference_id" in comparison else "reference"
    )
    version = comparison.attrs.get("reference_version") or (
        comparison["reference_version"].iloc[0] if "reference_version" in comparison else ""
    )
    stratum = comparison["stratum"].iloc[0] if "stratum" in comparison else "all"
    n = comparison["n"].iloc[0] if "n" in comparison else "?"
    return (
        f"Reference {ref} {version} (stratum {stratum}, n = {n}): box = Q1-Q3, line = median, whiskers = "
        f"P5-P95 where the reference has them. Percentiles and z-scores are approximations under the "
        f"{', '.join(dists) or 'fitted'} distribution."
    )


def _draw_reference_band(ax: Axes, i: int, ref: pd.Series | None) -> None:
    """Q1-Q3 box and median line at position ``i``; P5-P95 whiskers when the reference tabulates them."""
    if ref is None or not all(_finite(ref.get(p)) for p in ("p25", "p50", "p75")):
        return
    p25, p50, p75 = float(ref["p25"]), float(ref["p50"]), float(ref["p75"])
    ax.add_patch(Rectangle((i - 0.3, p25), 0.6, p75 - p25, facecolor="#d9d9d9", edgecolor="#7f7f7f", zorder=1))
    ax.plot([i - 0.3, i + 0.3], [p50, p50], color="#404040", linewidth=2, zorder=2)
    if _finite(ref.get("p5")) and _finite(ref.get("p95")):
        for lo, hi in ((float(ref["p5"]), p25), (p75, float(ref["p95"]))):
            ax.plot([i, i], [lo, hi], color="#7f7f7f", linewidth=1, zorder=1)
        for end in (float(ref["p5"]), float(ref["p95"])):
            ax.plot([i - 0.12, i + 0.12], [end, end], color="#7f7f7f", linewidth=1, zorder=1)


def _draw_subject_values(
    ax: Axes, i: int, rows: pd.DataFrame, value_column: str, statuses: dict[tuple[str, str], str]
) -> None:
    """The subject's left, right and L/R-mean points at position ``i``; "missing" when none is finite (never 0).

    A side whose verdict is ``fail`` gets no point: "QC fail" and the sides concerned are written at ``i`` instead.
    A ``review`` side's point has a thick amber edge.
    """
    missing, failed = True, []
    for side, (marker, dx) in _SIDE_STYLE.items():
        sel = rows[rows["side"].map(side_key) == side]
        value = sel[value_column].iloc[0] if len(sel) else math.nan
        if not _finite(value):
            continue
        missing = False
        status = qc_status_of(statuses, sel["muscle"].iloc[0], side)
        if status == "fail":
            failed.append("L/R mean" if side == "mean" else side)
            continue
        edge = {"markeredgecolor": QC_COLOURS["review"], "markeredgewidth": 2.0} if status == "review" else {}
        ax.plot(
            i + dx,
            float(value),
            marker=marker,
            linestyle="none",
            markersize=8 if side == "mean" else 7,
            color="black" if side == "mean" else LABEL_COLOURS[1 + 2 * i + (side == "right")],
            zorder=3,
            **edge,
        )
    if missing or failed:
        text = "missing" if missing else f"{QC_FAIL_TEXT}:\n" + ",\n".join(failed)
        ax.text(
            i,
            0.5,
            text,
            ha="center",
            va="bottom",
            color="#d62728" if missing else QC_COLOURS["fail"],
            fontsize=9 if missing else 8,
            transform=ax.get_xaxis_transform(),
            # boxed, over the band: the mark stands where a value would be and must not read as part of the band
            bbox=None if missing else {"facecolor": "white", "edgecolor": QC_COLOURS["fail"], "linewidth": 1.5},
            zorder=4,
        )


def _finish_axes(ax: Axes, value_column: str, title: str | None, marked: set[str]) -> None:
    """Muscle ticks, limits, grid, legend (with the quality marks in ``marked``) and title."""
    ax.set_xticks(range(len(MUSCLES)), [MUSCLE_DISPLAY_NAMES[m].replace(" + ", " +\n") for m in MUSCLES])
    ax.set_xlim(-0.6, len(MUSCLES) - 0.4)
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel("fat fraction (%)")
    ax.grid(axis="y", alpha=0.3)
    handles = [
        Line2D([], [], marker="<", linestyle="none", color="#555555", label="left"),
        Line2D([], [], marker=">", linestyle="none", color="#555555", label="right"),
        Line2D([], [], marker="o", linestyle="none", color="black", label="L/R mean"),
        Patch(facecolor="#d9d9d9", edgecolor="#7f7f7f", label="reference Q1-Q3, median"),
    ]
    if "review" in marked:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="none",
                color="white",
                markeredgecolor=QC_COLOURS["review"],
                markeredgewidth=2.0,
                label="quality check: review",
            )
        )
    ax.legend(handles=handles, loc="upper left", fontsize=8)
    ax.set_title(title or f"Fat fraction ({value_column}) against the reference", fontsize=10)


def ff_chart_figure(
    table: pd.DataFrame,
    reference_comparison: pd.DataFrame | None,
    value_column: str = "ff_mean_pct",
    title: str | None = None,
) -> Figure:
    """The figure :func:`ff_chart` writes (arguments as there), for callers and tests that inspect its artists."""
    for col in ("muscle", "side", value_column):
        if col not in table.columns:
            raise ValueError(f"table lacks column {col!r}; it has {list(table.columns)}")
    refs = _reference_rows(reference_comparison)
    statuses = qc_statuses(table)
    fig = new_figure((8.0, 4.8))
    ax = fig.add_subplot()
    for i, muscle in enumerate(MUSCLES):
        _draw_reference_band(ax, i, refs.get(muscle))
        _draw_subject_values(ax, i, table[table["muscle"] == muscle], value_column, statuses)
    marked = {s for (m, _), s in statuses.items() if m in MUSCLES}
    _finish_axes(ax, value_column, title, marked)
    note = _distribution_note(reference_comparison)
    if "fail" in marked:
        note += (
            f' Sides that failed the quality check are not plotted ("{QC_FAIL_TEXT}"): their FF is not a measurement.'
        )
    # wrapped here, not by matplotlib (wrap=True measures every word at each draw: a third of the chart's time)
    fig.text(0.01, 0.005, textwrap.fill(note, _NOTE_CHARS), fontsize=7, ha="left", va="bottom")
    fig.get_layout_engine().set(h_pad=0.42 if "fail" in marked else 0.3)  # room for the note (a third line)
    return fig


def ff_chart(
    table: pd.DataFrame,
    reference_comparison: pd.DataFrame | None,
    out_png: str | os.PathLike[str],
    value_column: str = "ff_mean_pct",
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Per muscle, the subject's FF (left, right, L/R mean) as points over the reference band.

    The band of each muscle is drawn from the L/R-mean rows of ``reference_comparison``: a Q1-Q3 box, a median
    line and P5-P95 whiskers when the reference tabulates them (the paper's reference has quartiles only). A
    missing value is not drawn as 0; the muscle is marked "missing" instead. A side whose ``qc_status`` is ``fail``
    is not drawn either ("QC fail" and its sides stand there; the note says why); a ``review`` side has an amber
    edge. The note under the chart names the reference and the distribution under which percentiles are
    approximated.

    Args:
        table: the subject's table from :func:`scripts.quantification.statistics.quantify_muscles` (``muscle``,
            ``side`` and ``value_column``).
        reference_comparison: output of :func:`scripts.normative.comparison.compare_to_reference`, or ``None`` for
            no band.
        out_png: output PNG path.
        value_column: the FF column to plot (percent).
        title: chart title.
        dpi: resolution of the PNG.

    Returns:
        The written path.
    """
    fig = ff_chart_figure(table, reference_comparison, value_column, title)
    return save_png(fig, out_png, dpi)
