"""Report of the cross-validation study (:mod:`scripts.cross_validation`): the paper's tables and figures.

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
import platform
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scripts.agreement import bland_altman, holm_correction, icc, linear_regression, lins_ccc, paired_wilcoxon
from scripts.agreement_plots import plot_bland_altman, plot_box, plot_regression
from scripts.atomic_io import atomic_write_text
from scripts.labels import MUSCLES

__all__ = ["SEG_METRICS", "comparison_table", "compare_studies", "ff_agreement_table", "timing_table", "write_report"]

#: metric column -> (display name, unit, higher is better)
SEG_METRICS: dict[str, tuple[str, str, bool]] = {
    "dice": ("Dice", "", True),
    "rvd": ("RVD", "", False),
    "hd_mm": ("HD", "mm", False),
    "hd95_mm": ("HD95", "mm", False),
}
#: part of the report's digest: change it when the report's content changes, so finished studies get the new one
REPORT_FORMAT = "4"
#: FF column -> how the report names the rule behind it
FF_RULES: dict[str, str] = {
    "ff_method_pct": "plain mean over the label (the paper's rule)",
    "ff_method_trim_pct": "the bundle's rule: mostly-fat border voxels left out (border_trim_ff)",
}
NAMES = {"unet": "U-Net", "multi_atlas": "multi-atlas (LWV)", "multi_atlas_mv": "multi-atlas (MV)"}


def _paired(metrics: pd.DataFrame, a: str, b: str, muscle: str, column: str) -> pd.DataFrame:
    rows = metrics[(metrics.side == "mean") & (metrics.muscle == muscle)]
    keys = ["split", "subject"]
    left = rows[rows.method == a].set_index(keys)[column]
    right = rows[rows.method == b].set_index(keys)[column]
    return pd.concat([left.rename("a"), right.rename("b")], axis=1, join="inner")


def comparison_table(metrics: pd.DataFrame, a: str = "unet", b: str = "multi_atlas",
                     columns: Sequence[str] = tuple(SEG_METRICS)) -> pd.DataFrame:
    """Per muscle (L/R mean rows) and metric: mean +- SD of methods ``a`` and ``b``, Wilcoxon and Holm p-values.

    Args:
        metrics: long table of :func:`scripts.cross_validation.evaluate_split` (columns split, subject, method,
            muscle, side and the metric columns).
        a: the first method (the U-Net).
        b: the method it is compared with.
        columns: metric columns to compare.

    Returns:
        one row per muscle and metric: ``n`` (pairs with finite values in both methods, those of the test),
        ``n_missing`` (pairs left out of the test for an infinite or NaN value), ``<m>_mean``, ``<m>_sd`` (sample SD)
        and ``<m>_missing`` per method over that method's own finite values, ``p_wilcoxon``, ``p_holm``,
        ``better`` (the method with the better mean over the tested pairs).
    """
    rows = []
    for muscle in MUSCLES:
        for col in columns:
            pair = _paired(metrics, a, b, muscle, col).replace([np.inf, -np.inf], np.nan)
            finite = pair.dropna()
            row: dict[str, Any] = {"muscle": muscle, "metric": col, "n": len(finite),
                                   "n_missing": int(len(pair) - len(finite))}
            for name, method in (("a", a), ("b", b)):
                # each method's own summary keeps its finite values even where the other method has none
                series = pair[name].dropna()
                row[f"{method}_mean"] = float(series.mean()) if len(series) else np.nan
                row[f"{method}_sd"] = float(series.std(ddof=1)) if len(series) > 1 else np.nan
                row[f"{method}_missing"] = int(len(pair) - len(series))
            # RVD is signed: what matters is the distance from 0, so |RVD| is tested
            x, y = (finite.a.abs(), finite.b.abs()) if col == "rvd" else (finite.a, finite.b)
            try:
                row["p_wilcoxon"] = paired_wilcoxon(x.to_numpy(), y.to_numpy()).p
            except ValueError:  # too few pairs
                row["p_wilcoxon"] = np.nan
            higher = SEG_METRICS.get(col, ("", "", False))[2]
            ma, mb = float(x.mean()) if len(x) else np.nan, float(y.mean()) if len(y) else np.nan
            row["better"] = "" if np.isnan(ma) or np.isnan(mb) or ma == mb else (
                a if (ma > mb) == higher else b)
            rows.append(row)
    table = pd.DataFrame(rows)
    table["p_holm"] = holm_correction(table.p_wilcoxon.to_numpy(dtype=float))
    return table


def ff_agreement_table(metrics: pd.DataFrame, methods: Sequence[str], column: str = "ff_method_pct") -> pd.DataFrame:
    """FF of each method against FF under the reference label, per muscle and side (left and right rows).

    Args:
        metrics: the long metric table.
        methods: methods to summarise.
        column: the method's FF column (``ff_method_pct``, plain mean; ``ff_method_trim_pct``, the bundle's rule);
            the reference is always ``ff_ref_pct``, the plain mean under the reference label.

    Returns:
        one row per method: n, slope, intercept, r2, bias_pp, loa_lower_pp, loa_upper_pp, p_bias, ccc, icc21,
        mean_abs_error_pp.
    """
    rows = []
    for method in methods:
        d = metrics[(metrics.method == method) & (metrics.side != "mean")]
        x, y = d.ff_ref_pct.to_numpy(dtype=float), d[column].to_numpy(dtype=float)
        row: dict[str, Any] = {"method": method, "ff_rule": column, "n": int(np.sum(np.isfinite(x) & np.isfinite(y)))}
        try:
            reg, ba = linear_regression(x, y), bland_altman(y, x)
            row.update(slope=reg.slope, intercept=reg.intercept, r2=reg.r2, bias_pp=ba.bias,
                       loa_lower_pp=ba.loa_lower, loa_upper_pp=ba.loa_upper, p_bias=ba.p_bias,
                       ccc=lins_ccc(y, x).ccc, icc21=icc(y, x, kind="ICC(2,1)").icc,
                       mean_abs_error_pp=float(np.nanmean(np.abs(y - x))))
        except ValueError as err:  # fewer than the minimum pairs
            row["note"] = str(err)
        rows.append(row)
    return pd.DataFrame(rows)


def timing_table(metrics: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Seconds per subject per method (mean, SD over the test subjects of all splits) and the ratio to the U-Net."""
    per = metrics.drop_duplicates(["split", "subject", "method"])
    rows = []
    for method in methods:
        s = per[per.method == method].seconds.astype(float)
        rows.append({"method": method, "n": len(s), "seconds_mean": s.mean(), "seconds_sd": s.std(ddof=1)})
    table = pd.DataFrame(rows)
    if "unet" in set(methods):
        base = float(table.loc[table.method == "unet", "seconds_mean"].iloc[0])
        table["ratio_to_unet"] = table.seconds_mean / base
    return table


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _markdown_comparison(table: pd.DataFrame, a: str, b: str) -> list[str]:
    lines = [f"| muscle (L/R mean) | metric | {NAMES.get(a, a)} mean ± SD | {NAMES.get(b, b)} mean ± SD | n | "
             "p (Wilcoxon) | p (Holm) |", "|---|---|---|---|---|---|---|"]
    def cell(r: pd.Series, method: str, digits: int) -> str:
        missing = f" ({int(r[f'{method}_missing'])} missed)" if r[f"{method}_missing"] else ""
        return f"{_fmt(r[f'{method}_mean'], digits)} ± {_fmt(r[f'{method}_sd'], digits)}{missing}"

    for _, r in table.iterrows():
        name, unit, _ = SEG_METRICS[r.metric]
        digits = 2 if unit == "mm" else 3
        label = f"{name} ({unit})" if unit else name
        lines.append(f"| {r.muscle.replace('_', ' ')} | {label} | {cell(r, a, digits)} | {cell(r, b, digits)} | "
                     f"{int(r.n)} | {_fmt_p(r.p_wilcoxon)} | {_fmt_p(r.p_holm)} |")
    return lines


def _markdown_ff(ff: pd.DataFrame, name: Callable[[str], str]) -> list[str]:
    lines = ["| method | FF rule | n | slope | intercept | R² | bias (pp) | 95 % LoA (pp) | CCC | ICC(2,1) | "
             "mean abs. error (pp) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in ff.iterrows():
        lines.append(f"| {name(r.method)} | {FF_RULES[r.ff_rule]} | {int(r.n)} | {_fmt(r.get('slope', np.nan))} | "
                     f"{_fmt(r.get('intercept', np.nan), 2)} | {_fmt(r.get('r2', np.nan), 4)} | "
                     f"{_fmt(r.get('bias_pp', np.nan), 2)} | {_fmt(r.get('loa_lower_pp', np.nan), 2)} to "
                     f"{_fmt(r.get('loa_upper_pp', np.nan), 2)} | {_fmt(r.get('ccc', np.nan))} | "
                     f"{_fmt(r.get('icc21', np.nan))} | {_fmt(r.get('mean_abs_error_pp', np.nan), 2)} |")
    return lines


def _digest(metrics: pd.DataFrame, settings: Mapping[str, Any]) -> str:
    text = REPORT_FORMAT + metrics.to_csv(index=False) + json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _unet_start(settings: Mapping[str, Any]) -> str:
    pre = settings.get("pretrained_ckpt")
    if not pre:
        return "from scratch"
    return f"fine-tuned from `{Path(pre['path']).name}` (sha256 {pre['sha256'][:12]}...)"


def write_report(out_dir: str | Path, metrics: pd.DataFrame, settings: Mapping[str, Any]) -> Path:
    """Write ``<out_dir>/report/report.md`` with its tables and figures; returns the report path.

    A report already written from exactly these metrics and settings by this report format is left untouched (its
    marker records their SHA-256), so resuming a finished study writes nothing.

    Args:
        out_dir: the study folder.
        metrics: the long metric table of all splits.
        settings: the study settings (written into the report).
    """
    rdir = Path(out_dir) / "report"
    report_path = rdir / "report.md"
    marker = rdir / ".done.json"
    digest = _digest(metrics, settings)
    if marker.is_file() and report_path.is_file() and json.loads(marker.read_text()).get("sha256") == digest:
        return report_path
    rdir.mkdir(parents=True, exist_ok=True)
    methods = [m for m in ("unet", "multi_atlas", "multi_atlas_mv") if m in set(metrics.method)]
    n_pairs = metrics.drop_duplicates(["split", "subject"]).shape[0]
    lines = ["# Monte-Carlo cross-validation: U-Net vs multi-atlas", "",
             f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'} "
             f"({platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPU cores).", "",
             f"Dataset `{settings.get('dataset_dir')}`; {settings.get('k')} random splits of "
             f"{settings.get('n_test')} test scans (seed {settings.get('seed')}, splits in `splits.json`), "
             f"{n_pairs} test segmentations per method."
             + (f" U-Net: `configs/train.json` {_unet_start(settings)}, {settings.get('epochs')} epochs per split."
                if "unet" in methods else "")
             + (f" Multi-atlas: the split's training scans as atlases, best {settings.get('atlas_k')} by NCC."
                if "multi_atlas" in methods else "")
             + " Settings: `settings.json`.", ""]
    tables: dict[str, pd.DataFrame] = {}
    # the U-Net against each multi-atlas fusion; without a U-Net, the two fusions against each other
    pairs = [("unet", o) for o in ("multi_atlas", "multi_atlas_mv")] if "unet" in methods else [
        ("multi_atlas", "multi_atlas_mv")]
    for first, other in pairs:
        if first in methods and other in methods:
            t = comparison_table(metrics, first, other)
            tables[f"{first}_vs_{other}"] = t
            lines += [f"## Segmentation: {NAMES[first]} vs {NAMES[other]}", "",
                      "Mean ± SD over the test segmentations of all splits (an infinite distance, a muscle the "
                      "method missed entirely, is left out and counted as 'missed'); paired Wilcoxon signed-rank "
                      "test over the n pairs (same split and subject) finite in both methods, RVD tested as |RVD|; "
                      f"Holm adjustment over the {len(t)} tests of this table.", ""]
            lines += _markdown_comparison(t, first, other) + [""]
    if tables:
        pd.concat([t.assign(comparison=name) for name, t in tables.items()]).to_csv(
            rdir / "segmentation_table.csv", index=False)
    else:
        # a single method: plain summary per muscle
        summary = metrics[metrics.side == "mean"].replace([np.inf, -np.inf], np.nan).groupby(
            ["method", "muscle"])[list(SEG_METRICS)].agg(["mean", "std"])
        summary.to_csv(rdir / "segmentation_table.csv")
        lines += ["## Segmentation (one method)", "", "Mean and SD per muscle (L/R mean rows).", "", "```",
                  summary.round(3).to_string(), "```", ""]

    rules = [c for c in FF_RULES if c in metrics.columns]
    ff = pd.concat([ff_agreement_table(metrics, methods, c) for c in rules], ignore_index=True)
    ff.to_csv(rdir / "ff_agreement.csv", index=False)
    lines += ["## Fat fraction agreement", "",
              "Mean FF (%) under each method's label against the mean FF under the reference label, on the same FF "
              "map, per muscle and side (the paper's manual-vs-automatic comparison; the reference is always the "
              "plain mean under the reference label). Regression of method on reference; Bland-Altman differences "
              "method − reference (percentage points). The method's FF by each rule:", ""]
    lines += _markdown_ff(ff, lambda m: NAMES.get(m, m)) + [""]
    for method in methods:
        d = metrics[(metrics.method == method) & (metrics.side != "mean")]
        for rule in rules:
            # the plain-mean figures keep their names; the bundle's rule gets a suffix
            stem, what = (method, NAMES[method]) if rule == "ff_method_pct" else (
                f"{method}_trim", f"{NAMES[method]}, border rule")
            x, y = d.ff_ref_pct.to_numpy(dtype=float), d[rule].to_numpy(dtype=float)
            try:
                plot_regression(x, y, out_png=rdir / f"ff_regression_{stem}.png", xlabel="FF, reference label",
                                ylabel=f"FF, {what}", title=what)
                plot_bland_altman(y, x, out_png=rdir / f"ff_bland_altman_{stem}.png", method_name=what,
                                  reference_name="reference")
                lines += [f"![FF regression, {what}](ff_regression_{stem}.png) "
                          f"![Bland-Altman, {what}](ff_bland_altman_{stem}.png)", ""]
            except ValueError as err:  # too few pairs for a figure
                lines += [f"No FF figures for {what}: {err}", ""]

    means = metrics[metrics.side == "mean"].assign(method=lambda d: d.method.map(NAMES))
    lines += ["## Box plots (L/R mean per subject)", ""]
    for col in ("dice", "hd95_mm", "rvd"):
        name, unit, _ = SEG_METRICS[col]
        plot_box(means, col, out_png=rdir / f"box_{col}.png", ylabel=f"{name} ({unit})" if unit else name,
                 muscles=list(MUSCLES), methods=[NAMES[m] for m in methods])
        lines.append(f"![{name}](box_{col}.png)")
    lines.append("")

    timing = timing_table(metrics, methods)
    timing.to_csv(rdir / "timing.csv", index=False)
    lines += ["## Time per subject", "",
              "U-Net: wall time of the whole `inference.json` run (start-up, model loading, FF tables) divided by its "
              "subjects; multi-atlas: registration of every atlas, selection, B-spline of the kept ones and fusion "
              "(both fusions share the registrations and the time). Training time is not included.", "",
              "| method | subjects | seconds per subject (mean ± SD) | ratio to U-Net |", "|---|---|---|---|"]
    for _, r in timing.iterrows():
        ratio = _fmt(r["ratio_to_unet"], 1) if "ratio_to_unet" in r else "n/a"
        lines.append(f"| {NAMES.get(r.method, r.method)} | {int(r.n)} | {_fmt(r.seconds_mean, 1)} ± "
                     f"{_fmt(r.seconds_sd, 1)} | {ratio} |")
    lines.append("")
    atomic_write_text(report_path, "\n".join(lines) + "\n", overwrite=True)
    atomic_write_text(marker, json.dumps({"sha256": digest}) + "\n", overwrite=True)
    return report_path


def _study_tables(study: Path, method: str) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    paths = {name: study / name for name in ("metrics_all.csv", "splits.json", "settings.json")}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{study} is not a finished cross-validation study: missing {', '.join(missing)}")
    metrics = pd.read_csv(paths["metrics_all.csv"], dtype={"subject": str})
    metrics = metrics[metrics.method == method]
    if metrics.empty:
        raise ValueError(f"{paths['metrics_all.csv']} has no rows of method {method!r}")
    return metrics, json.loads(paths["splits.json"].read_text()), json.loads(paths["settings.json"].read_text())


def compare_studies(study: str | Path, baseline: str | Path, out_dir: str | Path, name: str = "two-channel",
                    baseline_name: str = "one-channel", method: str = "unet") -> Path:
    """Compare one method between two cross-validation studies run on the same splits (e.g. two U-Net inputs).

    The pairs are the same split and test subject in both studies, so the splits both ran must be identical (same
    test lists and seeds in ``splits.json``; a study run with a smaller ``--k`` and the same seed holds the first
    splits of a larger one and is compared on those); anything else is refused. Writes ``out_dir/comparison.csv`` (as
    :func:`comparison_table`), ``out_dir/ff_agreement.csv`` (as :func:`ff_agreement_table`) and ``out_dir/report.md``.

    Args:
        study: folder of the study under test (``scripts.cross_validation run --out_dir``).
        baseline: folder of the study it is compared with.
        out_dir: where the comparison goes.
        name, baseline_name: how the two are called in the tables.
        method: the method compared (``unet``, ``multi_atlas`` or ``multi_atlas_mv``).

    Returns:
        path of the report.
    """
    study, baseline, out = Path(study), Path(baseline), Path(out_dir)
    if name == baseline_name:
        raise ValueError(f"name and baseline_name must differ, both are {name!r}")
    m_a, splits_a, settings_a = _study_tables(study, method)
    m_b, splits_b, settings_b = _study_tables(baseline, method)

    def draw(doc: Mapping[str, Any]) -> dict[int, tuple[Any, ...]]:
        return {int(sp["split"]): (tuple(sp["test"]), sp.get("seed")) for sp in doc["splits"]}

    draw_a, draw_b = draw(splits_a), draw(splits_b)
    shared = sorted(set(draw_a) & set(draw_b))
    if not shared or any(draw_a[i] != draw_b[i] for i in shared):
        raise ValueError(f"{study / 'splits.json'} and {baseline / 'splits.json'} hold different splits: a paired "
                         "comparison needs the same test subjects per split (run both with the same --n_test, "
                         "--seed and datalist; a smaller --k draws the first splits of a larger one)")
    # a study with fewer splits (a smaller --k, same seed) is compared on the splits both ran
    m_a, m_b = m_a[m_a.split.isin(shared)], m_b[m_b.split.isin(shared)]
    metrics = pd.concat([m_a.assign(method=name), m_b.assign(method=baseline_name)], ignore_index=True)
    table = comparison_table(metrics, name, baseline_name)
    rules = [c for c in FF_RULES if c in metrics.columns and metrics[c].notna().any()]
    ff = pd.concat([ff_agreement_table(metrics, [name, baseline_name], c) for c in rules], ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "comparison.csv", table.to_csv(index=False), overwrite=True)
    atomic_write_text(out / "ff_agreement.csv", ff.to_csv(index=False), overwrite=True)
    differ = sorted(k for k in set(settings_a) | set(settings_b) if settings_a.get(k) != settings_b.get(k))
    n_pairs = metrics.drop_duplicates(["split", "subject"]).shape[0]
    lines = [f"# {name} vs {baseline_name} ({NAMES.get(method, method)}), same cross-validation splits", "",
             f"Study `{study}` ({name}) against `{baseline}` ({baseline_name}): splits {shared}, "
             f"{n_pairs} test segmentations each. Settings that differ: "
             + (", ".join(f"`{k}` ({json.dumps(settings_a.get(k))} vs {json.dumps(settings_b.get(k))})"
                          for k in differ) or "none") + ".", "",
             "## Segmentation", "",
             "Mean ± SD over the test segmentations of all splits; paired Wilcoxon signed-rank test over the pairs "
             "(same split and subject) finite in both, RVD tested as |RVD|; Holm adjustment over the "
             f"{len(table)} tests.", ""]
    lines += _markdown_comparison(table, name, baseline_name) + ["", "## Fat fraction agreement", "",
              "FF under each study's label against FF under the reference label (plain mean), per muscle and side.",
              ""] + _markdown_ff(ff, str)
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n", overwrite=True)
    return report
