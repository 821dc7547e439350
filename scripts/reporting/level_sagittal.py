"""The vertebral levels drawn where they were measured: a mid-sagittal picture with each level's bounds and name.

Why: the per-level tables are only as right as the names of the vertebral bodies, which come from a count up from
the sacrum or from the user's statement of the lowest body in view (docs/design.md "Levels"). One glance at the
spine with the level bands over it shows whether L5 is the body above the sacrum (or the one the user meant), which
no table can. The picture is drawn from the report's panels (:mod:`scripts.reporting.montage_panels`, the sagittal
plane through the vertebral labels) and the per-level table, so a report drawn later is the same.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scripts.quantification.image_vertebrae import IMAGE_SOURCE
from scripts.reporting.figures import new_figure, save_png
from scripts.reporting.montage import panel_rgb
from scripts.reporting.montage_panels import MontagePanels

__all__ = ["level_bands", "level_sagittal_figure", "level_sagittal"]

_OK_COLOUR = "#ffd700"  # the level lines of certain levels: yellow, as the montage's marks
_UNCERTAIN_COLOUR = "#ff7f0e"  # uncertain levels: orange and dashed, never read as certain


def level_bands(levels: pd.DataFrame, z_mm: np.ndarray) -> list[dict[str, Any]]:
    """Each level's display rows on a sagittal panel: ``[{"level", "top", "bottom", "z_low_mm", "z_high_mm"}]``.

    Args:
        levels: the per-level table (``level``, ``level_z_low_mm``, ``level_z_high_mm``), cranial first.
        z_mm: ``(H,)`` world z (RAS, mm) of each panel row, decreasing from the top row (superior) down.

    Returns:
        One entry per level in table order; ``top`` and ``bottom`` are fractional rows (``top`` < ``bottom``),
        clipped to the panel; a level wholly outside the panel is left out.
    """
    z = np.asarray(z_mm, dtype=np.float64)
    if z.ndim != 1 or z.size < 2:
        raise ValueError(f"z_mm must be a 1D array of at least 2 rows, got shape {z.shape}")
    rows = np.arange(z.size, dtype=np.float64)
    # np.interp needs increasing abscissae: z runs from superior (row 0) to inferior
    order = np.argsort(z)
    z_sorted, rows_sorted = z[order], rows[order]
    first = levels.drop_duplicates("level")
    bands = []
    for _, r in first.iterrows():
        lo, hi = float(r["level_z_low_mm"]), float(r["level_z_high_mm"])
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= z_sorted[0] or lo >= z_sorted[-1]:
            continue
        top = float(np.interp(min(hi, z_sorted[-1]), z_sorted, rows_sorted))
        bottom = float(np.interp(max(lo, z_sorted[0]), z_sorted, rows_sorted))
        bands.append({"level": str(r["level"]), "top": top, "bottom": bottom, "z_low_mm": lo, "z_high_mm": hi})
    return bands


def _status_line(levels: pd.DataFrame, level_info: Mapping[str, Any] | None) -> tuple[bool, str]:
    """``(ok, text)``: whether the levels are certain, and how they were named."""
    ok = str(levels["level_status"].iloc[0]) == "ok"
    anchor = str((level_info or {}).get("anchor") or "sacrum")
    named = "counted up from the sacrum" if anchor == "sacrum" else f"named from the {anchor}"
    if ((level_info or {}).get("naming") or {}).get("source") == IMAGE_SOURCE:
        named += ", bodies found in the FF map"
    return ok, f"levels {'ok' if ok else 'UNCERTAIN'}, {named}"


def level_sagittal_figure(
    panels: MontagePanels,
    levels: pd.DataFrame,
    level_info: Mapping[str, Any] | None = None,
    dpi: int = 110,
    title: str | None = None,
) -> Figure:
    """The mid-sagittal panel with the label outlines and each level's bounds (lines) and name.

    Args:
        panels: the report's panels, with the sagittal plane (format "2").
        levels: the per-level table (``level``, ``level_z_low_mm``, ``level_z_high_mm``, ``level_status``).
        level_info: the FF JSON's ``meta.levels`` (its ``anchor`` says how the bodies were named), or None.
        dpi: resolution; the panel is drawn one pixel per panel pixel.
        title: the first title line; default the level status and how the bodies were named.

    Returns:
        The figure: anterior on the left, superior at the top; lines solid yellow for certain levels, dashed orange
        for uncertain ones.

    Raises:
        ValueError: ``panels`` has no sagittal plane (panels of format "1": rerun with --write_report later).
    """
    if panels.sagittal is None or panels.sagittal_labels is None or panels.sagittal_z_mm is None:
        raise ValueError("the panels hold no sagittal plane (format 1); rerun the subject with --write_report later")
    rgb = panel_rgb(panels.sagittal, panels.sagittal_labels)
    h, w = rgb.shape[:2]
    ok, status = _status_line(levels, level_info)
    # inches: the level names right of the panel, the two title lines above it, and at least the title's width
    pw, ph = w / dpi, h / dpi
    names_w, pad = 0.45, 0.08
    fig_w = max(pw + names_w + 2 * pad, 3.8)
    # an 8 pt character is about 0.55 x 8 pt wide: wrap the title to the figure's width
    lines = [
        wrapped
        for line in (title or "Vertebral levels: " + status, panels.sagittal_title)
        for wrapped in textwrap.wrap(line, width=max(int(fig_w * 72 / (0.55 * 8)), 20))
    ]
    title_h = 0.2 + 0.15 * len(lines)
    fig_h = ph + title_h + 2 * pad
    left = (fig_w - pw - names_w) / 2.0
    fig = new_figure((fig_w, fig_h), layout=None, dpi=dpi)
    ax = fig.add_axes((left / fig_w, pad / fig_h, pw / fig_w, ph / fig_h))
    ax.imshow(rgb, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    colour, style = (_OK_COLOUR, "-") if ok else (_UNCERTAIN_COLOUR, "--")
    for band in level_bands(levels, panels.sagittal_z_mm):
        for row in (band["top"], band["bottom"]):
            ax.axhline(row, color=colour, linestyle=style, linewidth=1.0)
        mid = 0.5 * (band["top"] + band["bottom"])
        ax.text(w + 4, mid, band["level"], color="black", fontsize=9, ha="left", va="center", clip_on=False)
    for x, y, text in ((0.03, 0.5, "A"), (0.97, 0.5, "P"), (0.5, 0.96, "S"), (0.5, 0.04, "I")):
        ax.text(x, y, text, color="yellow", fontsize=8, ha="center", va="center", transform=ax.transAxes)
    ax.set_title("\n".join(lines), fontsize=8, loc="left")
    return fig


def level_sagittal(
    panels: MontagePanels,
    levels: pd.DataFrame,
    out_png: str | os.PathLike[str],
    level_info: Mapping[str, Any] | None = None,
    dpi: int = 110,
    title: str | None = None,
) -> Path:
    """Write :func:`level_sagittal_figure` as PNG (atomically); returns the path."""
    return save_png(level_sagittal_figure(panels, levels, level_info, dpi, title), out_png, dpi)
