"""Report of the cross-validation study (:mod:`scripts.studies.cross_validation`): the paper's tables and figures.

From the long metric table (one row per split, test subject, method, muscle and side) it writes, under
``<out_dir>/report/``:

- ``segmentation_table.csv`` / the first table of ``report.md``: per muscle (L/R mean, the paper's convention) and
  metric (Dice, RVD, HD, HD95), mean +- SD for the U-Net and the multi-atlas method, the paired Wilcoxon
  signed-rank p-value (pairs: the same split and subject; RVD compared as ``|RVD|``, closeness to 0) and the
  Holm-adjusted p-value over all muscle x metric tests of that comparison;
- ``ff_agreement.csv``: per method and FF rule (plain mean, the paper's; the bundle's border rule), FF under its
  label against FF under the reference label (plain mean, the same FF map), per muscle and side: regression (slope,
  intercept, R^2), Bland-Altman (bias, 95 % limits), Lin's CCC, ICC(2,1);
- ``timing.csv``: segmentation seconds per subject per method and the multi-atlas / U-Net ratio;
- figures: ``ff_regression_<method>[_trim].png``, ``ff_bland_altman_<method>[_trim].png``, ``box_<metric>.png``.

A Hausdorff distance is infinite when a method misses a muscle entirely; such values cannot enter a mean or a
rank test, so they are left out and counted (column ``n_missing``), never replaced by a number.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scripts.evaluation.agreement_plots import plot_bland_altman, plot_box, plot_regression
from scripts.evaluation.ff_agreement_stats import agreement_by_muscle
from scripts.io.atomic import atomic_write_text
from scripts.labels import MUSCLES
from scripts.studies.cv_markdown import (
    FF_MUSCLE_NOTE,
    comparison_note,
    fmt,
    markdown_comparison,
    markdown_ff,
    markdown_ff_muscle,
)
from scripts.studies.cv_tables import (
    FF_RULES,
    NAMES,
    SEG_METRICS,
    comparison_table,
    ff_agreement_table,
    split_sizes,
    timing_table,
)

__all__ = ["REPORT_FORMAT", "write_report", "report_from_tables"]

#: part of the report's digest: change it when the report's content changes, so finished studies get the new one
REPORT_FORMAT = "5"


def _digest(metrics: pd.DataFrame, settings: Mapping[str, Any]) -> str:
    """SHA-256 of the report format, the metrics and the settings: what a finished report was written from."""
    text = REPORT_FORMAT + metrics.to_csv(index=False) + json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _unet_start(settings: Mapping[str, Any]) -> str:
    """How the report names the U-Net's start: from scratch, or the checkpoint it was fine-tuned from."""
    pre = settings.get("pretrained_ckpt")
    if not pre:
        return "from scratch"
    return f"fine-tuned from `{Path(pre['path']).name}` (sha256 {pre['sha256'][:12]}...)"


def write_report(
    out_dir: str | Path, metrics: pd.DataFrame, settings: Mapping[str, Any], report_dir: str | Path | None = None
) -> Path:
    """Write ``<out_dir>/report/report.md`` with its tables and figures; returns the report path.

    A report already written from exactly these metrics and settings by this report format is left untouched (its
    marker records their SHA-256), so resuming a finished study writes nothing.

    Args:
        out_dir: the study folder (its ``splits.json`` gives the set sizes of the corrected resampled t-test).
        metrics: the long metric table of all splits.
        settings: the study settings (written into the report).
        report_dir: where the report goes instead of ``<out_dir>/report``.
    """
    rdir = Path(report_dir) if report_dir is not None else Path(out_dir) / "report"
    report_path = rdir / "report.md"
    marker = rdir / ".done.json"
    digest = _digest(metrics, settings)
    if marker.is_file() and report_path.is_file() and json.loads(marker.read_text()).get("sha256") == digest:
        return report_path
    rdir.mkdir(parents=True, exist_ok=True)
    methods = [m for m in ("unet", "multi_atlas", "multi_atlas_mv") if m in set(metrics.method)]
    n_train, n_test = split_sizes(Path(out_dir) / "splits.json")
    lines = _header(metrics, settings, methods)
    lines += _segmentation_section(metrics, methods, rdir, n_train, n_test)
    rules = [c for c in FF_RULES if c in metrics.columns]
    lines += _ff_section(metrics, methods, rules, rdir)
    lines += _ff_figures(metrics, methods, rules, rdir)
    lines += _box_plots(metrics, methods, rdir)
    lines += _timing_section(metrics, methods, rdir)
    atomic_write_text(report_path, "\n".join(lines) + "\n", overwrite=True)
    atomic_write_text(marker, json.dumps({"sha256": digest}) + "\n", overwrite=True)
    return report_path


def _header(metrics: pd.DataFrame, settings: Mapping[str, Any], methods: list[str]) -> list[str]:
    """Title and the study in one paragraph: machine, dataset, splits, methods."""
    n_pairs = metrics.drop_duplicates(["split", "subject"]).shape[0]
    n_subjects = metrics.subject.nunique()
    return [
        "# Monte-Carlo cross-validation: U-Net vs multi-atlas",
        "",
        f"Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'} "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores).",
        "",
        f"Dataset `{settings.get('dataset_dir')}`; {settings.get('k')} random splits of "
        f"{settings.get('n_test')} test scans (seed {settings.get('seed')}, splits in `splits.json`), "
        f"{n_pairs} test segmentations per method ({n_subjects} distinct subjects)."
        + (
            f" U-Net: `configs/train.json` {_unet_start(settings)}, {settings.get('epochs')} epochs per split."
            if "unet" in methods
            else ""
        )
        + (
            f" Multi-atlas: the split's training scans as atlases, best {settings.get('atlas_k')} by NCC."
            if "multi_atlas" in methods
            else ""
        )
        + " Settings: `settings.json`.",
        "",
    ]


def _segmentation_section(
    metrics: pd.DataFrame, methods: list[str], rdir: Path, n_train: int | None, n_test: int | None
) -> list[str]:
    """The paired comparisons (or a one-method summary); writes ``segmentation_table.csv``."""
    lines: list[str] = []
    tables: dict[str, pd.DataFrame] = {}
    # the U-Net against each multi-atlas fusion; without a U-Net, the two fusions against each other
    pairs = (
        [("unet", o) for o in ("multi_atlas", "multi_atlas_mv")]
        if "unet" in methods
        else [("multi_atlas", "multi_atlas_mv")]
    )
    for first, other in pairs:
        if first in methods and other in methods:
            t = comparison_table(metrics, first, other, n_train=n_train, n_test=n_test)
            tables[f"{first}_vs_{other}"] = t
            lines += [f"## Segmentation: {NAMES[first]} vs {NAMES[other]}", ""] + comparison_note(len(t))
            lines += markdown_comparison(t, first, other) + [""]
    if tables:
        pd.concat([t.assign(comparison=name) for name, t in tables.items()]).to_csv(
            rdir / "segmentation_table.csv", index=False
        )
    else:
        # a single method: plain summary per muscle
        summary = (
            metrics[metrics.side == "mean"]
            .replace([np.inf, -np.inf], np.nan)
            .groupby(["method", "muscle"])[list(SEG_METRICS)]
            .agg(["mean", "std"])
        )
        summary.to_csv(rdir / "segmentation_table.csv")
        lines += [
            "## Segmentation (one method)",
            "",
            "Mean and SD per muscle (L/R mean rows).",
            "",
            "```",
            summary.round(3).to_string(),
            "```",
            "",
        ]
    return lines


def _ff_section(metrics: pd.DataFrame, methods: list[str], rules: list[str], rdir: Path) -> list[str]:
    """FF agreement per muscle and side, then pooled; writes ``ff_agreement.csv`` and ``ff_agreement_by_muscle.csv``."""
    ff = pd.concat([ff_agreement_table(metrics, methods, c) for c in rules], ignore_index=True)
    ff.to_csv(rdir / "ff_agreement.csv", index=False)
    by_muscle = pd.concat(
        [agreement_by_muscle(metrics, methods, c, MUSCLES) for c in reversed(rules)], ignore_index=True
    )
    by_muscle.to_csv(rdir / "ff_agreement_by_muscle.csv", index=False)
    lines = [
        "## Fat fraction agreement",
        "",
        "Mean FF (%) under each method's label against the mean FF under the reference label, on the same FF "
        "map, per muscle and side (the paper's manual-vs-automatic comparison; the reference is always the "
        "plain mean under the reference label). Regression of method on reference; Bland-Altman differences "
        "method − reference (percentage points).",
        "",
        "### Per muscle and side (leading analysis)",
        "",
    ]
    lines += FF_MUSCLE_NOTE + markdown_ff_muscle(by_muscle, lambda m: NAMES.get(m, m)) + [""]
    lines += [
        "### Pooled over muscles and sides (descriptive)",
        "",
        "All muscle-side rows pooled, as the paper reports them: a summary beside the per-muscle table, not a "
        "substitute. No p-value here, since the rows are not independent (the clustered bias is in the pooled "
        "row above); these limits of agreement ignore the repeated measurements.",
        "",
    ]
    lines += markdown_ff(ff.drop(columns="p_bias", errors="ignore"), lambda m: NAMES.get(m, m)) + [""]
    return lines


def _ff_figures(metrics: pd.DataFrame, methods: list[str], rules: list[str], rdir: Path) -> list[str]:
    """FF regression and Bland-Altman figures per method and FF rule, with their Markdown links."""
    lines: list[str] = []
    for method in methods:
        d = metrics[(metrics.method == method) & (metrics.side != "mean")]
        for rule in rules:
            # the plain-mean figures keep their names; the bundle's rule gets a suffix
            stem, what = (
                (method, NAMES[method])
                if rule == "ff_method_pct"
                else (f"{method}_trim", f"{NAMES[method]}, border rule")
            )
            x, y = d.ff_ref_pct.to_numpy(dtype=float), d[rule].to_numpy(dtype=float)
            try:
                plot_regression(
                    x,
                    y,
                    out_png=rdir / f"ff_regression_{stem}.png",
                    xlabel="FF, reference label",
                    ylabel=f"FF, {what}",
                    title=what,
                )
                plot_bland_altman(
                    y, x, out_png=rdir / f"ff_bland_altman_{stem}.png", method_name=what, reference_name="reference"
                )
                lines += [
                    f"![FF regression, {what}](ff_regression_{stem}.png) "
                    f"![Bland-Altman, {what}](ff_bland_altman_{stem}.png)",
                    "",
                ]
            except ValueError as err:  # too few pairs for a figure
                lines += [f"No FF figures for {what}: {err}", ""]
    return lines


def _box_plots(metrics: pd.DataFrame, methods: list[str], rdir: Path) -> list[str]:
    """Box plots of Dice, HD95 and RVD per muscle (L/R mean rows), with their Markdown links."""
    means = metrics[metrics.side == "mean"].assign(method=lambda d: d.method.map(NAMES))
    lines = ["## Box plots (L/R mean per subject)", ""]
    for col in ("dice", "hd95_mm", "rvd"):
        name, unit, _ = SEG_METRICS[col]
        plot_box(
            means,
            col,
            out_png=rdir / f"box_{col}.png",
            ylabel=f"{name} ({unit})" if unit else name,
            muscles=list(MUSCLES),
            methods=[NAMES[m] for m in methods],
        )
        lines.append(f"![{name}](box_{col}.png)")
    lines.append("")
    return lines


def _timing_section(metrics: pd.DataFrame, methods: list[str], rdir: Path) -> list[str]:
    """Seconds per subject per method and the ratio to the U-Net; writes ``timing.csv``."""
    timing = timing_table(metrics, methods)
    timing.to_csv(rdir / "timing.csv", index=False)
    lines = [
        "## Time per subject",
        "",
        "U-Net: wall time of the whole `inference.json` run (start-up, model loading, FF tables) divided by its "
        "subjects; multi-atlas: registration of every atlas, selection, B-spline of the kept ones and fusion "
        "(both fusions share the registrations and the time). Training time is not included.",
        "",
        "| method | subjects | seconds per subject (mean ± SD) | ratio to U-Net |",
        "|---|---|---|---|",
    ]
    for _, r in timing.iterrows():
        ratio = fmt(r["ratio_to_unet"], 1) if "ratio_to_unet" in r else "n/a"
        lines.append(
            f"| {NAMES.get(r.method, r.method)} | {int(r.n)} | {fmt(r.seconds_mean, 1)} ± "
            f"{fmt(r.seconds_sd, 1)} | {ratio} |"
        )
    lines.append("")
    return lines


def report_from_tables(study: str | Path, report_dir: str | Path | None = None) -> str:
    """Rewrite a finished study's report from its committed tables alone (no scans, no models needed).

    Args:
        study: a folder with ``metrics_all.csv``, ``settings.json`` and ``splits.json`` (a study folder, or a copy
            such as ``docs/studies/validation``).
        report_dir: where the report goes; default ``<study>/report``. Pass the study folder itself to refresh a
            copied report in place.

    Example:
        ``python -m scripts.studies.cv_report --study docs/studies/validation --report_dir docs/studies/validation``
    """
    study = Path(study)
    metrics = pd.read_csv(study / "metrics_all.csv", dtype={"subject": str})
    settings = json.loads((study / "settings.json").read_text())
    path = write_report(study, metrics, settings, report_dir=report_dir)
    # the resume marker belongs to a study's own report folder, not to a refreshed copy
    if report_dir is not None:
        (Path(report_dir) / ".done.json").unlink(missing_ok=True)
    return str(path)


if __name__ == "__main__":
    import fire

    fire.Fire(report_from_tables)
