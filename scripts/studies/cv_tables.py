"""Tables of the cross-validation study: the paired segmentation comparison (tests on independent units only), FF
agreement and timing, from the long metric table (one row per split, test subject, method, muscle and side).

A Hausdorff distance is infinite when a method misses a muscle entirely; such values cannot enter a mean or a
rank test, so they are left out and counted (column ``n_missing``), never replaced by a number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
from scripts.evaluation.independent_stats import corrected_resampled_ttest, mean_ci, split_means, subject_means
from scripts.labels import MUSCLES

__all__ = [
    "SEG_METRICS",
    "FF_RULES",
    "NAMES",
    "comparison_table",
    "ff_agreement_table",
    "timing_table",
    "split_sizes",
]

#: metric column -> (display name, unit, higher is better)
SEG_METRICS: dict[str, tuple[str, str, bool]] = {
    "dice": ("Dice", "", True),
    "rvd": ("RVD", "", False),
    "hd_mm": ("HD", "mm", False),
    "hd95_mm": ("HD95", "mm", False),
}
#: FF column -> how the report names the rule behind it
FF_RULES: dict[str, str] = {
    "ff_method_pct": "plain mean over the label (the paper's rule)",
    "ff_method_trim_pct": "the bundle's rule: mostly-fat border voxels left out (border_trim_ff)",
}
NAMES = {"unet": "U-Net", "multi_atlas": "multi-atlas (LWV)", "multi_atlas_mv": "multi-atlas (MV)"}


def _paired(metrics: pd.DataFrame, a: str, b: str, muscle: str, column: str) -> pd.DataFrame:
    """Columns a, b of one muscle's L/R mean rows, paired by (split, subject)."""
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
        metrics: long table of :func:`scripts.studies.cv_evaluation.evaluate_split` (columns split, subject, method,
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


def split_sizes(splits_json: Path) -> tuple[int | None, int | None]:
    """Training and test subjects per split from a study's ``splits.json`` (None when absent or unequal)."""
    if not splits_json.is_file():
        return None, None
    splits = json.loads(splits_json.read_text()).get("splits", [])
    sizes = {(len(sp.get("train", [])), len(sp.get("test", []))) for sp in splits}
    if len(sizes) != 1:
        return None, None
    n_train, n_test = sizes.pop()
    return (n_train or None), (n_test or None)
