"""Tests on independent units for resampled (Monte-Carlo) cross-validation and clustered agreement data.

A Monte-Carlo cross-validation draws each split's test subjects independently, so one subject can be tested in
several splits and every two splits share most of their training subjects. The per-(split, subject) results are
therefore not independent observations, and a test that treats them as such (pseudo-replication) understates the
p-value. This module gives three analyses whose unit is independent, or whose dependence is modelled and declared:

- :func:`corrected_resampled_ttest`: Nadeau & Bengio 2003 (Mach Learn 52:239-281), the t-test over the k split
  means with the variance inflated by ``1/k + n_test/n_train`` for the overlap of the training sets;
- :func:`subject_means` + :func:`scripts.evaluation.agreement.paired_wilcoxon`: one value per distinct test subject (the
mean
  over the splits it was tested in), then a paired test over distinct subjects;
- :func:`cluster_mean_test`: a mean with a cluster-robust (sandwich) standard error, clusters = subjects, t with
  G - 1 degrees of freedom (for a bias pooled over several muscles and splits of one subject).

Effect sizes come with analytic t intervals (:func:`mean_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "CorrectedTTestResult",
    "MeanCI",
    "corrected_resampled_ttest",
    "mean_ci",
    "subject_means",
    "split_means",
    "cluster_mean_test",
    "cluster_ols",
]


@dataclass(frozen=True)
class CorrectedTTestResult:
    """Corrected resampled t-test of the mean split-wise difference.

    Attributes:
        mean: mean over the k splits of the per-split mean difference.
        se: corrected standard error ``sqrt((1/k + n_test/n_train) * s^2)``.
        t: ``mean / se``.
        df: ``k - 1``.
        p: two-sided p-value.
        ci_lower, ci_upper: confidence interval of the mean, ``mean -+ t_{df} * se``.
        k: splits used.
    """

    mean: float
    se: float
    t: float
    df: int
    p: float
    ci_lower: float
    ci_upper: float
    k: int


def corrected_resampled_ttest(
    split_differences: Sequence[float], n_train: int, n_test: int, confidence: float = 0.95
) -> CorrectedTTestResult:
    """Nadeau-Bengio corrected resampled t-test over the k per-split mean differences.

    With ``d_j`` the mean difference (method a - method b) over the test set of split j, ``d̄`` their mean and
    ``s^2`` their sample variance (k - 1 denominator): ``t = d̄ / sqrt((1/k + n_test/n_train) s^2)``, k - 1 degrees
    of freedom. The plain ``1/k`` would assume independent splits; the added ``n_test/n_train`` accounts for the
    correlation that overlapping training and test sets induce.

    Args:
        split_differences: one mean difference per split (NaN splits are dropped).
        n_train: training subjects per split.
        n_test: test subjects per split.
        confidence: level of the interval.

    Raises:
        ValueError: fewer than 2 splits, or non-positive set sizes.
    """
    d = np.asarray(split_differences, dtype=float)
    d = d[np.isfinite(d)]
    if d.size < 2:
        raise ValueError(f"need at least 2 splits with a finite difference, got {d.size}")
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}")
    k = int(d.size)
    mean = float(d.mean())
    var = float(d.var(ddof=1))
    se = math.sqrt((1.0 / k + n_test / n_train) * var)
    tq = float(stats.t.ppf((1 + confidence) / 2, k - 1))
    if se == 0:
        # every split gives the same difference: no variance to test against
        t, p = (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    else:
        t = mean / se
        p = float(2 * stats.t.sf(abs(t), k - 1))
    return CorrectedTTestResult(mean, se, t, k - 1, p, mean - tq * se, mean + tq * se, k)


@dataclass(frozen=True)
class MeanCI:
    """A mean with its t interval and one-sample t-test against 0 (``n`` independent values)."""

    mean: float
    ci_lower: float
    ci_upper: float
    p: float
    n: int


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean of independent values, its t confidence interval and the two-sided p of mean = 0 (NaN dropped)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n < 2:
        raise ValueError(f"need at least 2 finite values, got {n}")
    mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(n))
    tq = float(stats.t.ppf((1 + confidence) / 2, n - 1))
    p = (1.0 if mean == 0 else 0.0) if se == 0 else float(2 * stats.t.sf(abs(mean / se), n - 1))
    return MeanCI(mean, mean - tq * se, mean + tq * se, p, n)


def subject_means(pairs: pd.DataFrame, subject: str = "subject") -> pd.DataFrame:
    """One row per distinct subject: the mean of every other numeric column over that subject's rows (its splits)."""
    return pairs.groupby(subject).mean(numeric_only=True)


def split_means(pairs: pd.DataFrame, split: str = "split") -> pd.DataFrame:
    """One row per split: the mean of every other numeric column over the split's test subjects."""
    return pairs.groupby(split).mean(numeric_only=True)


@dataclass(frozen=True)
class ClusterFit:
    """OLS coefficients with cluster-robust (CR1) standard errors; t with ``G - 1`` degrees of freedom."""

    names: tuple[str, ...]
    coef: np.ndarray
    se: np.ndarray
    p: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    n: int
    clusters: int


def cluster_ols(
    design: np.ndarray, y: np.ndarray, groups: Sequence[object], names: Sequence[str], confidence: float = 0.95
) -> ClusterFit:
    """Least squares ``y = X b`` with the cluster-robust sandwich covariance (Liang & Zeger 1986, CR1 scaling).

    ``V = c (X'X)^-1 [sum_g X_g' e_g e_g' X_g] (X'X)^-1`` (``X`` = ``design``) with ``c = G/(G-1) * (n-1)/(n-p)``;
    tests and intervals use t with ``G - 1`` degrees of freedom, since there are only G independent clusters.
    """
    xm, y = np.asarray(design, dtype=float), np.asarray(y, dtype=float)
    g = np.asarray(groups)
    keep = np.isfinite(y) & np.all(np.isfinite(xm), axis=1)
    xm, y, g = xm[keep], y[keep], g[keep]
    n, p = xm.shape
    labels = np.unique(g)
    n_groups = labels.size
    if n_groups < 3 or n <= p:
        raise ValueError(f"need at least 3 clusters and more rows than coefficients, got {n_groups} clusters, {n} rows")
    xtx_inv = np.linalg.inv(xm.T @ xm)
    b = xtx_inv @ xm.T @ y
    e = y - xm @ b
    meat = np.zeros((p, p))
    for lab in labels:
        s = xm[g == lab].T @ e[g == lab]
        meat += np.outer(s, s)
    c = n_groups / (n_groups - 1) * (n - 1) / (n - p)
    se = np.sqrt(np.diag(c * xtx_inv @ meat @ xtx_inv))
    tq = float(stats.t.ppf((1 + confidence) / 2, n_groups - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        pv = 2 * stats.t.sf(np.abs(b / se), n_groups - 1)
    return ClusterFit(tuple(names), b, se, pv, b - tq * se, b + tq * se, int(n), int(n_groups))


def cluster_mean_test(values: Sequence[float], groups: Sequence[object], confidence: float = 0.95) -> MeanCI:
    """Mean of all values with a cluster-robust interval and p (clusters = ``groups``, e.g. subjects).

    The same as :func:`cluster_ols` with an intercept only: ``var = G/(G-1) * sum_g (sum_{i in g} (x_i - x̄))^2 / n^2``
    (with the (n-1)/(n-1) small-sample factor), t with G - 1 degrees of freedom. ``n`` in the result is G.
    """
    x = np.asarray(values, dtype=float)
    fit = cluster_ols(np.ones((x.size, 1)), x, groups, ["mean"], confidence)
    return MeanCI(float(fit.coef[0]), float(fit.ci_lower[0]), float(fit.ci_upper[0]), float(fit.p[0]), fit.clusters)
