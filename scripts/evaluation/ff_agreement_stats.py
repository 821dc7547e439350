"""FF agreement with several observations per subject: repeated-measures limits, clustered bias, proportional bias.

In the cross-validation study every test subject contributes eight muscle-side FF values per split it was tested in,
so the rows of an FF agreement analysis are clustered by subject. This module gives, for one set of paired values
with their subject labels (:func:`agreement_row`):

- regression of method on reference with cluster-robust (subject) intervals for slope and intercept;
- the identity R^2, ``1 - sum (y - x)^2 / sum (x - x̄)^2`` (how well ``y = x`` itself explains the reference spread;
  the regression R^2 rewards any straight line, however far from the identity), and Lin's CCC (point estimate);
- the bias with a cluster-robust interval and p (:func:`scripts.evaluation.independent_stats.cluster_mean_test`);
- limits of agreement for repeated measurements where the true value varies (Bland & Altman 2007, J Biopharm Stat
  17:571-582, section 3; :func:`repeated_measures_loa`);
- the proportional-bias test: regression of the difference on the pair mean, cluster-robust slope p.

:func:`agreement_by_muscle` builds the per-muscle and per-side table the report leads with, and the pooled row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scripts.evaluation.agreement import lins_ccc
from scripts.evaluation.independent_stats import cluster_mean_test, cluster_ols

__all__ = ["RepeatedLoA", "repeated_measures_loa", "identity_r2", "agreement_row", "agreement_by_muscle"]


@dataclass(frozen=True)
class RepeatedLoA:
    """Limits of agreement with several differences per subject (Bland & Altman 2007, true value varies).

    Attributes:
        bias: mean of all differences.
        sd_within: within-subject SD of the differences, ``sqrt(MS_within)``.
        sd_between: between-subject SD of the subject mean differences, ``sqrt(max(0, (MS_b - MS_w) / divisor))``.
        sd_total: ``sqrt(sd_between^2 + sd_within^2)``, the SD of a single difference.
        loa_lower, loa_upper: ``bias -+ z * sd_total``.
        n: differences used; subjects: distinct subjects.
    """

    bias: float
    sd_within: float
    sd_between: float
    sd_total: float
    loa_lower: float
    loa_upper: float
    n: int
    subjects: int


def repeated_measures_loa(differences: Sequence[float], subjects: Sequence[object], z: float = 1.96) -> RepeatedLoA:
    """Bland & Altman 2007 limits of agreement from a one-way ANOVA of the differences by subject.

    With ``m_i`` differences of subject i, ``N = sum m_i`` and ``n`` subjects: ``MS_b = sum m_i (d̄_i - d̄)^2 / (n - 1)``,
    ``MS_w = sum (d_ij - d̄_i)^2 / (N - n)``, ``divisor = (N^2 - sum m_i^2) / ((n - 1) N)``; the between-subject
    variance is ``(MS_b - MS_w) / divisor`` (0 if negative) and the variance of one difference is that plus
    ``MS_w``. With one difference per subject this is the ordinary ``sd(d)`` (MS_w undefined, taken as 0).
    """
    d = np.asarray(differences, dtype=float)
    g = np.asarray(subjects)
    keep = np.isfinite(d)
    d, g = d[keep], g[keep]
    frame = pd.DataFrame({"d": d, "g": g})
    by = frame.groupby("g").d
    m, means = by.size().to_numpy(dtype=float), by.mean().to_numpy()
    n_sub, big_n = m.size, float(m.sum())
    if n_sub < 3:
        raise ValueError(f"need at least 3 subjects, got {n_sub}")
    bias = float(d.mean())
    ms_b = float(np.sum(m * (means - bias) ** 2) / (n_sub - 1))
    within = frame.d - by.transform("mean")
    ms_w = float(np.sum(within**2) / (big_n - n_sub)) if big_n > n_sub else 0.0
    divisor = (big_n**2 - float(np.sum(m**2))) / ((n_sub - 1) * big_n)
    var_b = max(0.0, (ms_b - ms_w) / divisor)
    sd_t = math.sqrt(var_b + ms_w)
    return RepeatedLoA(
        bias, math.sqrt(ms_w), math.sqrt(var_b), sd_t, bias - z * sd_t, bias + z * sd_t, int(d.size), int(n_sub)
    )


def identity_r2(reference: Sequence[float], method: Sequence[float]) -> float:
    """R^2 of the identity line: ``1 - sum (method - reference)^2 / sum (reference - mean(reference))^2``."""
    x, y = np.asarray(reference, dtype=float), np.asarray(method, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    return float(1 - np.sum((y - x) ** 2) / np.sum((x - x.mean()) ** 2))


def agreement_row(reference: Sequence[float], method: Sequence[float], subjects: Sequence[object]) -> dict[str, Any]:
    """All agreement statistics of one set of pairs clustered by subject (see the module docstring).

    Returns:
        a dict: n, subjects, slope (+ _ci_lower/_ci_upper), intercept (+ CI), r2 (regression), r2_identity, ccc,
        bias_pp (+ CI, ``p_bias_cluster``), loa_lower_pp/loa_upper_pp (repeated measures), sd_within/sd_between,
        prop_slope (difference on mean, + CI, ``p_prop_cluster``), mean_abs_error_pp.
    """
    x, y, g = np.asarray(reference, dtype=float), np.asarray(method, dtype=float), np.asarray(subjects)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, g = x[keep], y[keep], g[keep]
    ones = np.ones_like(x)
    reg = cluster_ols(np.column_stack([ones, x]), y, g, ["intercept", "slope"])
    d, avg = y - x, (x + y) / 2
    prop = cluster_ols(np.column_stack([ones, avg]), d, g, ["intercept", "slope"])
    bias = cluster_mean_test(d, g)
    loa = repeated_measures_loa(d, g)
    r = np.corrcoef(x, y)[0, 1]
    return dict(
        n=int(x.size),
        subjects=int(np.unique(g).size),
        slope=reg.coef[1],
        slope_ci_lower=reg.ci_lower[1],
        slope_ci_upper=reg.ci_upper[1],
        intercept=reg.coef[0],
        intercept_ci_lower=reg.ci_lower[0],
        intercept_ci_upper=reg.ci_upper[0],
        r2=float(r**2),
        r2_identity=identity_r2(x, y),
        ccc=lins_ccc(y, x).ccc,
        bias_pp=bias.mean,
        bias_ci_lower_pp=bias.ci_lower,
        bias_ci_upper_pp=bias.ci_upper,
        p_bias_cluster=bias.p,
        loa_lower_pp=loa.loa_lower,
        loa_upper_pp=loa.loa_upper,
        sd_within_pp=loa.sd_within,
        sd_between_pp=loa.sd_between,
        prop_slope=prop.coef[1],
        prop_slope_ci_lower=prop.ci_lower[1],
        prop_slope_ci_upper=prop.ci_upper[1],
        p_prop_cluster=prop.p[1],
        mean_abs_error_pp=float(np.mean(np.abs(d))),
    )


def agreement_by_muscle(
    metrics: pd.DataFrame, methods: Sequence[str], column: str, muscles: Sequence[str]
) -> pd.DataFrame:
    """Per method: one row per muscle and side (left, right, both sides) and the pooled row (muscle ``all``).

    Args:
        metrics: the long cross-validation table (split, subject, method, muscle, side, ``ff_ref_pct``, ``column``).
        methods: methods to summarise.
        column: the method's FF column.
        muscles: muscle order.
    """
    rows = []
    for method in methods:
        d = metrics[(metrics.method == method) & (metrics.side != "mean")]
        groups = [(mu, side, d[(d.muscle == mu) & (d.side == side)]) for mu in muscles for side in ("left", "right")]
        groups += [(mu, "both", d[d.muscle == mu]) for mu in muscles] + [("all", "both", d)]
        for muscle, side, part in groups:
            row: dict[str, Any] = {"method": method, "ff_rule": column, "muscle": muscle, "side": side}
            try:
                row.update(agreement_row(part.ff_ref_pct, part[column], part.subject.astype(str)))
            except (ValueError, np.linalg.LinAlgError) as err:  # too few subjects for a clustered fit
                row["note"] = str(err)
            rows.append(row)
    return pd.DataFrame(rows)
