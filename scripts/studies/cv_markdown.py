"""Markdown of the cross-validation tables: number formats, the segmentation comparison and the FF agreement rows
(pooled and per muscle), with the notes that say how to read them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scripts.studies.cv_tables import FF_RULES, NAMES, SEG_METRICS

__all__ = [
    "FF_MUSCLE_NOTE",
    "fmt",
    "fmt_p",
    "markdown_comparison",
    "comparison_note",
    "markdown_ff",
    "markdown_ff_muscle",
]

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


def fmt(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; "n/a" for a missing or infinite one."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def fmt_p(p: float) -> str:
    """A p-value as the report prints it: "< 0.0001", 4 decimals below 0.01, else 3."""
    if p is None or not np.isfinite(p):
        return "n/a"
    return "< 0.0001" if p < 0.0001 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def markdown_comparison(table: pd.DataFrame, a: str, b: str) -> list[str]:
    """Markdown rows of :func:`scripts.studies.cv_tables.comparison_table` for methods ``a`` and ``b``."""
    lines = [
        f"| muscle (L/R mean) | metric | {NAMES.get(a, a)} mean ± SD | {NAMES.get(b, b)} mean ± SD | subjects | "
        "difference [95 % CI] | p Wilcoxon, subjects (Holm) | difference, corrected t [95 % CI] | "
        "p corrected t (Holm) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(r: pd.Series, method: str, digits: int) -> str:
        missing = f" ({int(r[f'{method}_missing'])} missed)" if r[f"{method}_missing"] else ""
        return f"{fmt(r[f'{method}_mean'], digits)} ± {fmt(r[f'{method}_sd'], digits)}{missing}"

    def ci(r: pd.Series, mean: str, lo: str, hi: str, digits: int) -> str:
        return (
            f"{fmt(r.get(mean, np.nan), digits)} [{fmt(r.get(lo, np.nan), digits)}, {fmt(r.get(hi, np.nan), digits)}]"
        )

    for _, r in table.iterrows():
        name, unit, _ = SEG_METRICS[r.metric]
        digits = 2 if unit == "mm" else 3
        label = (f"{name} ({unit})" if unit else name) + (" (tests on |RVD|)" if r.metric == "rvd" else "")
        lines.append(
            f"| {r.muscle.replace('_', ' ')} | {label} | {cell(r, a, digits)} | {cell(r, b, digits)} | "
            f"{int(r.n_subjects)} | {ci(r, 'diff_mean', 'diff_ci_lower', 'diff_ci_upper', digits)} | "
            f"{fmt_p(r.p_wilcoxon_subjects)} ({fmt_p(r.p_holm_subjects)}) | "
            f"{ci(r, 'crt_diff', 'crt_ci_lower', 'crt_ci_upper', digits)} | "
            f"{fmt_p(r.p_crt)} ({fmt_p(r.p_crt_holm)}) |"
        )
    return lines


def comparison_note(n_tests: int) -> list[str]:
    """How the comparison table's numbers and tests were made (placed above it)."""
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


def markdown_ff(ff: pd.DataFrame, name: Callable[[str], str]) -> list[str]:
    """Markdown rows of the pooled FF agreement (:func:`scripts.studies.cv_tables.ff_agreement_table`)."""
    lines = [
        "| method | FF rule | n | slope | intercept | R² | bias (pp) | 95 % LoA (pp) | CCC | ICC(2,1) | "
        "mean abs. error (pp) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in ff.iterrows():
        lines.append(
            f"| {name(r.method)} | {FF_RULES[r.ff_rule]} | {int(r.n)} | {fmt(r.get('slope', np.nan))} | "
            f"{fmt(r.get('intercept', np.nan), 2)} | {fmt(r.get('r2', np.nan), 4)} | "
            f"{fmt(r.get('bias_pp', np.nan), 2)} | {fmt(r.get('loa_lower_pp', np.nan), 2)} to "
            f"{fmt(r.get('loa_upper_pp', np.nan), 2)} | {fmt(r.get('ccc', np.nan))} | "
            f"{fmt(r.get('icc21', np.nan))} | {fmt(r.get('mean_abs_error_pp', np.nan), 2)} |"
        )
    return lines


def markdown_ff_muscle(ff: pd.DataFrame, name: Callable[[str], str]) -> list[str]:
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
            f"{fmt(r.slope)} [{fmt(r.slope_ci_lower)}, {fmt(r.slope_ci_upper)}] | {fmt(r.intercept, 2)} "
            f"[{fmt(r.intercept_ci_lower, 2)}, {fmt(r.intercept_ci_upper, 2)}] | {fmt(r.r2)} | "
            f"{fmt(r.r2_identity)} | {fmt(r.ccc)} | {fmt(r.bias_pp, 2)} [{fmt(r.bias_ci_lower_pp, 2)}, "
            f"{fmt(r.bias_ci_upper_pp, 2)}], {fmt_p(r.p_bias_cluster)} | {fmt(r.loa_lower_pp, 2)} to "
            f"{fmt(r.loa_upper_pp, 2)} | {fmt(r.prop_slope)}, {fmt_p(r.p_prop_cluster)} |"
        )
    return lines
