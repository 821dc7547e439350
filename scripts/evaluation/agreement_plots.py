"""Figures for the validation study: regression scatter, Bland-Altman plot, box plots per muscle and method.

The numbers drawn come from :mod:`scripts.evaluation.agreement`, so a figure and its table never disagree. Figures are
built
on ``matplotlib.figure.Figure`` with the Agg canvas, never through ``pyplot``: no global backend switch, no open
figure registry to leak, safe in headless workers. Each function either draws into a given ``ax`` or creates its
own figure, and writes a PNG when ``out_png`` is given; it returns the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scripts.evaluation.agreement import ArrayLike, bland_altman, linear_regression, paired_finite

__all__ = ["plot_regression", "plot_bland_altman", "plot_box"]


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _finish(fig: Figure, out_png: str | Path | None, dpi: int) -> Figure:
    if out_png is not None:
        path = Path(out_png)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


def _unit(label: str, units: str | None) -> str:
    return f"{label} ({units})" if units else label


def plot_regression(
    x: ArrayLike,
    y: ArrayLike,
    ax: Axes | None = None,
    out_png: str | Path | None = None,
    xlabel: str = "reference",
    ylabel: str = "method",
    units: str | None = "%",
    title: str | None = None,
    dpi: int = 150,
) -> Figure:
    """Scatter of ``y`` (method) against ``x`` (reference) with the identity line and the least-squares fit.

    The annotation gives slope, intercept, R² and n from :func:`scripts.evaluation.agreement.linear_regression` (NaN
    pairs
    dropped, as there). Axes share limits so that the identity line is the diagonal.
    """
    xs, ys, _ = paired_finite(x, y)
    res = linear_regression(xs, ys)
    fig, ax = _axes(ax, (4.5, 4.5))
    lo = float(min(xs.min(), ys.min()))
    hi = float(max(xs.max(), ys.max()))
    pad = 0.05 * (hi - lo or 1.0)
    lims = np.array([lo - pad, hi + pad])
    ax.scatter(xs, ys, s=18, alpha=0.8, color="tab:blue", edgecolors="none", label="cases")
    ax.plot(lims, lims, "--", color="0.5", lw=1, label="identity")
    ax.plot(lims, res.slope * lims + res.intercept, "-", color="tab:red", lw=1.5, label="fit")
    ax.set_xlim(*lims)
    ax.set_ylim(*lims)
    ax.set_aspect("equal")
    sign = "+" if res.intercept >= 0 else "−"
    text = f"y = {res.slope:.3f} x {sign} {abs(res.intercept):.2f}\nR² = {res.r2:.3f}, n = {res.n}"
    ax.text(0.04, 0.96, text, transform=ax.transAxes, va="top", ha="left", fontsize=9)
    ax.set_xlabel(_unit(xlabel, units))
    ax.set_ylabel(_unit(ylabel, units))
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return _finish(fig, out_png, dpi)


def plot_bland_altman(
    a: ArrayLike,
    b: ArrayLike,
    ax: Axes | None = None,
    out_png: str | Path | None = None,
    units: str | None = "%",
    method_name: str = "method",
    reference_name: str = "reference",
    show_ci: bool = True,
    title: str | None = None,
    dpi: int = 150,
) -> Figure:
    """Bland-Altman plot: ``a - b`` against ``(a + b) / 2`` with the bias and the 95 % limits of agreement.

    ``a`` is the method, ``b`` the reference (the sign convention of :func:`scripts.evaluation.agreement.bland_altman`).
    With
    ``show_ci`` the confidence intervals of the bias and of both limits are shaded.
    """
    xs, ys, _ = paired_finite(a, b)
    res = bland_altman(xs, ys)
    fig, ax = _axes(ax, (5.5, 4.0))
    mean = (xs + ys) / 2
    diff = xs - ys
    ax.scatter(mean, diff, s=18, alpha=0.8, color="tab:blue", edgecolors="none")
    lines = [
        (res.bias, res.bias_ci_lower, res.bias_ci_upper, "-", f"bias {res.bias:.2f}"),
        (res.loa_upper, res.loa_upper_ci_lower, res.loa_upper_ci_upper, "--", f"+{res.z:g} SD {res.loa_upper:.2f}"),
        (res.loa_lower, res.loa_lower_ci_lower, res.loa_lower_ci_upper, "--", f"−{res.z:g} SD {res.loa_lower:.2f}"),
    ]
    for value, ci_lo, ci_hi, style, label in lines:
        ax.axhline(value, color="tab:red", ls=style, lw=1.2)
        if show_ci:
            ax.axhspan(ci_lo, ci_hi, color="tab:red", alpha=0.12, lw=0)
        ax.annotate(
            label,
            xy=(1.0, value),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=8,
            color="tab:red",
        )
    ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel(_unit(f"mean of {method_name} and {reference_name}", units))
    ax.set_ylabel(_unit(f"{method_name} − {reference_name}", units))
    ax.set_title(title or f"n = {res.n}, p(bias = 0) = {res.p_bias:.3g}", fontsize=10)
    return _finish(fig, out_png, dpi)


def plot_box(
    df: pd.DataFrame,
    value: str,
    muscle_col: str = "muscle",
    method_col: str = "method",
    ax: Axes | None = None,
    out_png: str | Path | None = None,
    ylabel: str | None = None,
    muscles: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    title: str | None = None,
    dpi: int = 150,
) -> Figure:
    """Box plots of ``df[value]`` per muscle, one box per method side by side (e.g. U-Net vs multi-atlas Dice).

    Non-finite values (NaN, or the ``inf`` Hausdorff distance of an empty mask) cannot be drawn; they are left out
    and their count is written in the title, so that nothing disappears silently.

    Args:
        df: long table with columns ``muscle_col``, ``method_col`` and ``value``.
        value: the column to plot (e.g. ``"dice"``, ``"hd95_mm"``).
        muscles: order of the muscle groups on the x axis (default: order of appearance).
        methods: order of the methods within a group (default: order of appearance).
    """
    missing = [c for c in (value, muscle_col, method_col) if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks column(s) {missing}; it has {list(df.columns)}")
    muscle_order = list(muscles) if muscles is not None else list(pd.unique(df[muscle_col]))
    method_order = list(methods) if methods is not None else list(pd.unique(df[method_col]))
    fig, ax = _axes(ax, (max(4.0, 1.4 * len(muscle_order) * max(1, len(method_order)) / 2 + 2), 4.0))
    width = 0.8 / max(1, len(method_order))
    colours = [f"C{i}" for i in range(len(method_order))]
    n_hidden = 0
    for j, method in enumerate(method_order):
        data, positions = [], []
        for i, muscle in enumerate(muscle_order):
            vals = df.loc[(df[muscle_col] == muscle) & (df[method_col] == method), value].to_numpy(dtype=float)
            finite = vals[np.isfinite(vals)]
            n_hidden += int(vals.size - finite.size)
            if finite.size:
                data.append(finite)
                positions.append(i + (j - (len(method_order) - 1) / 2) * width)
        if data:
            box = ax.boxplot(
                data,
                positions=positions,
                widths=width * 0.9,
                patch_artist=True,
                manage_ticks=False,
                medianprops={"color": "black"},
            )
            for patch in box["boxes"]:
                patch.set_facecolor(colours[j])
                patch.set_alpha(0.6)
        ax.plot([], [], "s", color=colours[j], alpha=0.6, label=str(method))  # legend handle
    ax.set_xticks(range(len(muscle_order)))
    ax.set_xticklabels([str(m).replace("_", " ") for m in muscle_order], rotation=20, ha="right")
    ax.set_ylabel(ylabel or value)
    if len(method_order) > 1:
        ax.legend(fontsize=8, frameon=False)
    note = f"{n_hidden} non-finite value(s) not shown" if n_hidden else ""
    full_title = "; ".join(t for t in (title or "", note) if t)
    if full_title:
        ax.set_title(full_title, fontsize=10)
    return _finish(fig, out_png, dpi)
