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
import platform
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scripts.evaluation.agreement import (
    bland_altman,
    holm_correction,
    icc,
    linear_regression,
    lins_ccc,
    paired_wilcoxon,
)
from scripts.evaluation.agreement_plots import plot_bland_altman, plot_box, plot_regression
from scripts.evaluation.ff_agreement_stats import agreement_by_muscle
from scripts.evaluation.independent_stats import corrected_resampled_ttest, mean_ci, split_means, subject_means
from scripts.io.atomic import atomic_write_text
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
REPORT_FORMAT = "5"
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


def _independent_tests(finite: pd.DataFrame, n_train: int | None, n_test: int | None) -> dict[str, Any]:
    """Tests of one muscle x metric on independent units; ``finite`` holds columns a, b indexed by (split, subject).

    Subject level: each distinct test subject's mean over the splits it was tested in, a paired Wilcoxon over those
    subjects and the mean subject-level difference a - b with its t interval. Split level: the Nadeau-Bengio corrected
    resampled t-test over the per-split mean differences (needs the training and test set sizes).
    """
    row: dict[str, Any] = {}
    pairs = finite.reset_index()
    subj = subject_means(pairs[["subject", "a", "b"]])
    row["n_subjects"] = len(subj)
    try:
        row["p_wilcoxon_subjects"] = paired_wilcoxon(subj.a.to_numpy(), subj.b.to_numpy()).p
        diff = mean_ci(subj.a - subj.b)
        row.update(diff_mean=diff.mean, diff_ci_lower=diff.ci_lower, diff_ci_upper=diff.ci_upper)
    except ValueError:  # too few subjects
        row["p_wilcoxon_subjects"] = np.nan
    row["p_crt"] = np.nan
    if n_train and n_test:
        per_split = split_means(pairs[["split", "a", "b"]])
        try:
            crt = corrected_resampled_ttest((per_split.a - per_split.b).to_numpy(), n_train, n_test)
            row.update(
                p_crt=crt.p, crt_diff=crt.mean, crt_ci_lower=crt.ci_lower, crt_ci_upper=crt.ci_upper, n_splits=crt.k
            )
        except ValueError:  # fewer than 2 splits
            pass
    return row


def comparison_table(
    metrics: pd.DataFrame,
    a: str = "unet",
    b: str = "multi_atlas",
    columns: Sequence[str] = tuple(SEG_METRICS),
    n_train: int | None = None,
    n_test: int | None = None,
) -> pd.DataFrame:
    """Per muscle (L/R mean rows) and metric: mean +- SD of methods ``a`` and ``b`` and tests on independent units.

    A Monte-Carlo split draws its test subjects anew, so a subject can be tested in several splits and the splits
    share training subjects: the (split, subject) pairs are not independent, and no test here uses them as units.

    Args:
        metrics: long table of :func:`scripts.studies.cross_validation.evaluate_split` (columns split, subject, method,
            muscle, side and the metric columns).
        a: the first method (the U-Net).
        b: the method it is compared with.
        columns: metric columns to compare.
        n_train, n_test: training and test subjects per split, for the corrected resampled t-test (left out, NaN,
            when not given).

    Returns:
        one row per muscle and metric: ``n`` (test segmentations finite in both methods), ``n_missing`` (left out for
        an infinite or NaN value), ``<m>_mean``, ``<m>_sd`` (sample SD) and ``<m>_missing`` per method over that
        method's own finite segmentations (descriptive); ``n_subjects``, ``diff_mean`` with ``diff_ci_lower/upper``
        (subject-level mean of a - b, |RVD| for RVD, 95 % t interval), ``p_wilcoxon_subjects`` and its Holm
        adjustment over the table ``p_holm_subjects``; ``crt_diff`` with its interval, ``p_crt`` (corrected
        resampled t-test over the splits) and ``p_crt_holm``; ``better`` (the method with the better mean).
    """
    rows = []
    for muscle in MUSCLES:
        for col in columns:
            pair = _paired(metrics, a, b, muscle, col).replace([np.inf, -np.inf], np.nan)
            finite = pair.dropna()
            row: dict[str, Any] = {
                "muscle": muscle,
                "metric": col,
                "n": len(finite),
                "n_missing": int(len(pair) - len(finite)),
            }
            for name, method in (("a", a), ("b", b)):
                # each method's own summary keeps its finite values even where the other method has none
                series = pair[name].dropna()
                row[f"{method}_mean"] = float(series.mean()) if len(series) else np.nan
                row[f"{method}_sd"] = float(series.std(ddof=1)) if len(series) > 1 else np.nan
                row[f"{method}_missing"] = int(len(pair) - len(series))
            # RVD is signed: what matters is the distance from 0, so |RVD| is tested
            tested = finite.abs() if col == "rvd" else finite
            row.update(_independent_tests(tested, n_train, n_test))
            higher = SEG_METRICS.get(col, ("", "", False))[2]
            ma = float(tested.a.mean()) if len(tested) else np.nan
            mb = float(tested.b.mean()) if len(tested) else np.nan
            row["better"] = "" if np.isnan(ma) or np.isnan(mb) or ma == mb else (a if (ma > mb) == higher else b)
            rows.append(row)
    table = pd.DataFrame(rows)
    table["p_holm_subjects"] = holm_correction(table.p_wilcoxon_subjects.to_numpy(dtype=float))
    table["p_crt_holm"] = holm_correction(table.p_crt.to_numpy(dtype=float))
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
            row.update(
                slope=reg.slope,
                intercept=reg.intercept,
                r2=reg.r2,
                bias_pp=ba.bias,
                loa_lower_pp=ba.loa_lower,
                loa_upper_pp=ba.loa_upper,
                p_bias=ba.p_bias,
                ccc=lins_ccc(y, x).ccc,
                icc21=icc(y, x, kind="ICC(2,1)").icc,
                mean_abs_error_pp=float(np.nanmean(np.abs(y - x))),
            )
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
    return "< 0.0001" if p < 0.0001 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def _markdown_comparison(table: pd.DataFrame, a: str, b: str) -> list[str]:
    lines = [
        f"| muscle (L/R mean) | metric | {NAMES.get(a, a)} mean ± SD | {NAMES.get(b, b)} mean ± SD | subjects | "
        "difference [95 % CI] | p Wilcoxon, subjects (Holm) | difference, corrected t [95 % CI] | "
        "p corrected t (Holm) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(r: pd.Series, method: str, digits: int) -> str:
        missing = f" ({int(r[f'{method}_missing'])} missed)" if r[f"{method}_missing"] else ""
        return f"{_fmt(r[f'{method}_mean'], digits)} ± {_fmt(r[f'{method}_sd'], digits)}{missing}"

    def ci(r: pd.Series, mean: str, lo: str, hi: str, digits: int) -> str:
        return (
            f"{_fmt(r.get(mean, np.nan), digits)} [{_fmt(r.get(lo, np.nan), digits)}, "
            f"{_fmt(r.get(hi, np.nan), digits)}]"
        )

    for _, r in table.iterrows():
        name, unit, _ = SEG_METRICS[r.metric]
        digits = 2 if unit == "mm" else 3
        label = (f"{name} ({unit})" if unit else name) + (" (tests on |RVD|)" if r.metric == "rvd" else "")
        lines.append(
            f"| {r.muscle.replace('_', ' ')} | {label} | {cell(r, a, digits)} | {cell(r, b, digits)} | "
            f"{int(r.n_subjects)} | {ci(r, 'diff_mean', 'diff_ci_lower', 'diff_ci_upper', digits)} | "
            f"{_fmt_p(r.p_wilcoxon_subjects)} ({_fmt_p(r.p_holm_subjects)}) | "
            f"{ci(r, 'crt_diff', 'crt_ci_lower', 'crt_ci_upper', digits)} | "
            f"{_fmt_p(r.p_crt)} ({_fmt_p(r.p_crt_holm)}) |"
        )
    return lines


def _comparison_note(n_tests: int) -> list[str]:
    return [
        "Mean ± SD over the test segmentations of all splits (descriptive; an infinite distance, a muscle the "
        "method missed entirely, is left out and counted as 'missed'). The tests use independent units only, "
        "because a Monte-Carlo split can test a subject again and splits share training subjects: "
        "(1) subject level: each distinct test subject's value averaged over the splits it was tested in, "
        "difference = mean over subjects of (first − second) with a t interval, paired Wilcoxon signed-rank "
        "over the subjects; (2) split level: the Nadeau-Bengio corrected resampled t-test over the per-split "
        "mean differences (variance × (1/k + n_test/n_train), k − 1 df). RVD is compared as |RVD| (closeness "
        f"to 0). Holm adjustment over the {n_tests} tests of the table, separately for each test.",
        "",
    ]


def _markdown_ff(ff: pd.DataFrame, name: Callable[[str], str]) -> list[str]:
    lines = [
        "| method | FF rule | n | slope | intercept | R² | bias (pp) | 95 % LoA (pp) | CCC | ICC(2,1) | "
        "mean abs. error (pp) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in ff.iterrows():
        lines.append(
            f"| {name(r.method)} | {FF_RULES[r.ff_rule]} | {int(r.n)} | {_fmt(r.get('slope', np.nan))} | "
            f"{_fmt(r.get('intercept', np.nan), 2)} | {_fmt(r.get('r2', np.nan), 4)} | "
            f"{_fmt(r.get('bias_pp', np.nan), 2)} | {_fmt(r.get('loa_lower_pp', np.nan), 2)} to "
            f"{_fmt(r.get('loa_upper_pp', np.nan), 2)} | {_fmt(r.get('ccc', np.nan))} | "
            f"{_fmt(r.get('icc21', np.nan))} | {_fmt(r.get('mean_abs_error_pp', np.nan), 2)} |"
        )
    return lines


def _markdown_ff_muscle(ff: pd.DataFrame, name: Callable[[str], str]) -> list[str]:
    """Per-muscle (both sides, then each side) FF agreement rows, the pooled row last."""
    lines = [
        "| method | FF rule | muscle | side | n (subjects) | slope [95 % CI] | intercept [95 % CI] | R² | "
        "identity R² | CCC | bias (pp) [95 % CI], p | repeated-measures 95 % LoA (pp) | "
        "proportional bias: slope of difference on mean, p |",
        "|" + "---|" * 13,
    ]
    order = {"both": 0, "left": 1, "right": 2}
    # the given method and rule order, each muscle's both-sides row before its side rows, the pooled row last
    first = {key: i for i, key in enumerate(dict.fromkeys(zip(ff.method, ff.ff_rule)))}
    ff = ff.assign(
        _g=[first[k] for k in zip(ff.method, ff.ff_rule)], _o=ff.side.map(order), _all=ff.muscle.eq("all")
    ).sort_values(["_g", "_all", "_o"], kind="stable")
    for _, r in ff.iterrows():
        if "slope" not in r or not np.isfinite(r.get("slope", np.nan)):
            continue
        rule = "border rule" if r.ff_rule == "ff_method_trim_pct" else "plain mean"
        muscle = "**all (pooled)**" if r.muscle == "all" else r.muscle.replace("_", " ")
        lines.append(
            f"| {name(r.method)} | {rule} | {muscle} | {r.side} | {int(r.n)} ({int(r.subjects)}) | "
            f"{_fmt(r.slope)} [{_fmt(r.slope_ci_lower)}, {_fmt(r.slope_ci_upper)}] | {_fmt(r.intercept, 2)} "
            f"[{_fmt(r.intercept_ci_lower, 2)}, {_fmt(r.intercept_ci_upper, 2)}] | {_fmt(r.r2)} | "
            f"{_fmt(r.r2_identity)} | {_fmt(r.ccc)} | {_fmt(r.bias_pp, 2)} [{_fmt(r.bias_ci_lower_pp, 2)}, "
            f"{_fmt(r.bias_ci_upper_pp, 2)}], {_fmt_p(r.p_bias_cluster)} | {_fmt(r.loa_lower_pp, 2)} to "
            f"{_fmt(r.loa_upper_pp, 2)} | {_fmt(r.prop_slope)}, {_fmt_p(r.p_prop_cluster)} |"
        )
    return lines


FF_MUSCLE_NOTE = [
    "Per muscle and side (each side alone, and both sides together), then pooled over all muscles: the pooled figure "
    "can hide muscle-specific biases that cancel. Every row is clustered by subject (a subject has two sides, and "
    "may be tested in several splits), so slope, intercept, bias and the proportional-bias slope have cluster-robust "
    "(subject) 95 % intervals and p-values, t with (subjects − 1) df; the limits of agreement are Bland & Altman's "
    "(2007) for repeated measurements (between- plus within-subject variance of the differences). Identity R² = "
    "1 − Σ(method − reference)² / Σ(reference − mean)²: how well y = x, not the fitted line, explains the reference. "
    "Proportional bias: regression of (method − reference) on their mean; a slope ≠ 0 means the error grows with FF. "
    "No multiplicity adjustment across the rows: they describe one analysis, read the intervals.",
    "",
]


def _split_sizes(splits_json: Path) -> tuple[int | None, int | None]:
    """Training and test subjects per split from a study's ``splits.json`` (None when absent or unequal)."""
    if not splits_json.is_file():
        return None, None
    splits = json.loads(splits_json.read_text()).get("splits", [])
    sizes = {(len(sp.get("train", [])), len(sp.get("test", []))) for sp in splits}
    if len(sizes) != 1:
        return None, None
    n_train, n_test = sizes.pop()
    return (n_train or None), (n_test or None)


def _digest(metrics: pd.DataFrame, settings: Mapping[str, Any]) -> str:
    text = REPORT_FORMAT + metrics.to_csv(index=False) + json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _unet_start(settings: Mapping[str, Any]) -> str:
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
    n_pairs = metrics.drop_duplicates(["split", "subject"]).shape[0]
    n_subjects = metrics.subject.nunique()
    n_train, n_test = _split_sizes(Path(out_dir) / "splits.json")
    lines = [
        "# Monte-Carlo cross-validation: U-Net vs multi-atlas",
        "",
        f"Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'} "
        f"({platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPU cores).",
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
            lines += [f"## Segmentation: {NAMES[first]} vs {NAMES[other]}", ""] + _comparison_note(len(t))
            lines += _markdown_comparison(t, first, other) + [""]
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

    rules = [c for c in FF_RULES if c in metrics.columns]
    ff = pd.concat([ff_agreement_table(metrics, methods, c) for c in rules], ignore_index=True)
    ff.to_csv(rdir / "ff_agreement.csv", index=False)
    by_muscle = pd.concat(
        [agreement_by_muscle(metrics, methods, c, MUSCLES) for c in reversed(rules)], ignore_index=True
    )
    by_muscle.to_csv(rdir / "ff_agreement_by_muscle.csv", index=False)
    lines += [
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
    lines += FF_MUSCLE_NOTE + _markdown_ff_muscle(by_muscle, lambda m: NAMES.get(m, m)) + [""]
    lines += [
        "### Pooled over muscles and sides (descriptive)",
        "",
        "All muscle-side rows pooled, as the paper reports them: a summary beside the per-muscle table, not a "
        "substitute. No p-value here, since the rows are not independent (the clustered bias is in the pooled "
        "row above); these limits of agreement ignore the repeated measurements.",
        "",
    ]
    lines += _markdown_ff(ff.drop(columns="p_bias", errors="ignore"), lambda m: NAMES.get(m, m)) + [""]
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

    means = metrics[metrics.side == "mean"].assign(method=lambda d: d.method.map(NAMES))
    lines += ["## Box plots (L/R mean per subject)", ""]
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

    timing = timing_table(metrics, methods)
    timing.to_csv(rdir / "timing.csv", index=False)
    lines += [
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
        ratio = _fmt(r["ratio_to_unet"], 1) if "ratio_to_unet" in r else "n/a"
        lines.append(
            f"| {NAMES.get(r.method, r.method)} | {int(r.n)} | {_fmt(r.seconds_mean, 1)} ± "
            f"{_fmt(r.seconds_sd, 1)} | {ratio} |"
        )
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


def compare_studies(
    study: str | Path,
    baseline: str | Path,
    out_dir: str | Path,
    name: str = "two-channel",
    baseline_name: str = "one-channel",
    method: str = "unet",
) -> Path:
    """Compare one method between two cross-validation studies run on the same splits (e.g. two U-Net inputs).

    The pairs are the same split and test subject in both studies, so the splits both ran must be identical (same
    test lists and seeds in ``splits.json``; a study run with a smaller ``--k`` and the same seed holds the first
    splits of a larger one and is compared on those); anything else is refused. Writes ``out_dir/comparison.csv`` (as
    :func:`comparison_table`), ``out_dir/ff_agreement.csv`` (as :func:`ff_agreement_table`) and ``out_dir/report.md``.

    Args:
        study: folder of the study under test (``scripts.studies.cross_validation run --out_dir``).
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
        raise ValueError(
            f"{study / 'splits.json'} and {baseline / 'splits.json'} hold different splits: a paired "
            "comparison needs the same test subjects per split (run both with the same --n_test, "
            "--seed and datalist; a smaller --k draws the first splits of a larger one)"
        )
    # a study with fewer splits (a smaller --k, same seed) is compared on the splits both ran
    m_a, m_b = m_a[m_a.split.isin(shared)], m_b[m_b.split.isin(shared)]
    metrics = pd.concat([m_a.assign(method=name), m_b.assign(method=baseline_name)], ignore_index=True)
    n_train, n_test = _split_sizes(study / "splits.json")
    table = comparison_table(metrics, name, baseline_name, n_train=n_train, n_test=n_test)
    rules = [c for c in FF_RULES if c in metrics.columns and metrics[c].notna().any()]
    ff = pd.concat([ff_agreement_table(metrics, [name, baseline_name], c) for c in rules], ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "comparison.csv", table.to_csv(index=False), overwrite=True)
    atomic_write_text(out / "ff_agreement.csv", ff.to_csv(index=False), overwrite=True)
    differ = sorted(k for k in set(settings_a) | set(settings_b) if settings_a.get(k) != settings_b.get(k))
    n_pairs = metrics.drop_duplicates(["split", "subject"]).shape[0]
    lines = [
        f"# {name} vs {baseline_name} ({NAMES.get(method, method)}), same cross-validation splits",
        "",
        f"Study `{study}` ({name}) against `{baseline}` ({baseline_name}): splits {shared}, "
        f"{n_pairs} test segmentations each. Settings that differ: "
        + (
            ", ".join(f"`{k}` ({json.dumps(settings_a.get(k))} vs {json.dumps(settings_b.get(k))})" for k in differ)
            or "none"
        )
        + ".",
        "",
        "## Segmentation",
        "",
    ] + _comparison_note(len(table))
    by_muscle = pd.concat(
        [agreement_by_muscle(metrics, [name, baseline_name], c, MUSCLES) for c in reversed(rules)], ignore_index=True
    )
    atomic_write_text(out / "ff_agreement_by_muscle.csv", by_muscle.to_csv(index=False), overwrite=True)
    lines += _markdown_comparison(table, name, baseline_name)
    lines += [
        "",
        "## Fat fraction agreement",
        "",
        "FF under each study's label against FF under the reference label (plain mean).",
        "",
    ]
    lines += FF_MUSCLE_NOTE + _markdown_ff_muscle(by_muscle, str)
    lines += [
        "",
        "Pooled over muscles and sides (descriptive; the rows are not independent, see the pooled row "
        "above for the clustered bias):",
        "",
    ]
    lines += _markdown_ff(ff, str)
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n", overwrite=True)
    return report


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
