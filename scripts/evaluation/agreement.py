"""Agreement and comparison statistics for the validation study (pure functions returning small dataclasses).

The paper (BMC Medical Imaging 2026, doi 10.1186/s12880-026-02329-9) reports FF agreement between the automatic and
the manual segmentation by linear regression (R^2 = 0.96) and Bland-Altman analysis (no bias), and compares the U-Net
with a multi-atlas method by paired Wilcoxon tests (p < 0.01). This module gives those statistics plus Lin's
concordance correlation coefficient and intraclass correlations, which reviewers often ask for.

Conventions shared by every function:

- Paired inputs ``a`` (or ``x``) and ``b`` (or ``y``) are 1-D and of equal length. ``a`` is the method under test
  (e.g. the U-Net), ``b`` the reference (manual); differences are ``a - b``, so a positive bias means the method
  reads higher.
- A pair with a NaN in either value is dropped and counted in ``n_dropped``; ``n`` is the number of pairs used.
  An infinite value raises ``ValueError``: an infinite Hausdorff distance (an empty prediction) has to be dealt with
  deliberately before a test, not averaged.
- Fewer than 3 usable pairs raise ``ValueError``.

References: Bland & Altman 1986 (Lancet 327:307-310) and 1999 (Stat Methods Med Res 8:135-160); Lin 1989 (Biometrics
45:255-268) and 2000 (correction, Biometrics 56:324-325); Shrout & Fleiss 1979 (Psychol Bull 86:420-428); McGraw &
Wong 1996 (Psychol Methods 1:30-46); Wilcoxon 1945; Pratt 1959; Holm 1979 (Scand J Stat 6:65-70).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy import stats

__all__ = [
    "MIN_PAIRS",
    "RegressionResult",
    "BlandAltmanResult",
    "CCCResult",
    "ICCResult",
    "WilcoxonResult",
    "paired_finite",
    "linear_regression",
    "bland_altman",
    "lins_ccc",
    "icc",
    "icc_from_ratings",
    "paired_wilcoxon",
    "holm_correction",
]

#: The fewest usable pairs any function here accepts.
MIN_PAIRS: int = 3

ICC_KINDS: tuple[str, ...] = ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)")

ArrayLike = Sequence[float] | np.ndarray


def _as_1d(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def paired_finite(a: ArrayLike, b: ArrayLike, min_n: int = MIN_PAIRS) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop pairs with a NaN, reject infinities, and require ``min_n`` pairs.

    Returns:
        ``(a_kept, b_kept, n_dropped)``.

    Raises:
        ValueError: on unequal lengths, an infinite value, or fewer than ``min_n`` complete pairs.
    """
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same length, got {x.size} and {y.size}")
    if np.isinf(x).any() or np.isinf(y).any():
        raise ValueError(
            "a or b contains an infinite value (e.g. a Hausdorff distance with an empty mask); "
            "replace or drop it explicitly before computing agreement statistics"
        )
    keep = ~(np.isnan(x) | np.isnan(y))
    n = int(keep.sum())
    if n < min_n:
        raise ValueError(f"need at least {min_n} complete pairs, got {n} ({x.size - n} dropped for NaN)")
    return x[keep], y[keep], int(x.size - n)


# ---------------------------------------------------------------------------------------------------------------------
# regression
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegressionResult:
    """Ordinary least-squares fit ``y = slope * x + intercept``.

    Attributes:
        slope: fitted slope (1 for perfect proportional agreement).
        intercept: fitted intercept, in the units of ``y``.
        r: Pearson correlation coefficient.
        r2: coefficient of determination, ``r ** 2``.
        p: two-sided p-value of slope = 0 (t-test, n - 2 degrees of freedom).
        stderr: standard error of the slope.
        intercept_stderr: standard error of the intercept.
        n: pairs used.
        n_dropped: pairs dropped for NaN.
    """

    slope: float
    intercept: float
    r: float
    r2: float
    p: float
    stderr: float
    intercept_stderr: float
    n: int
    n_dropped: int


def linear_regression(x: ArrayLike, y: ArrayLike) -> RegressionResult:
    """Least-squares regression of ``y`` (method) on ``x`` (reference) with ``scipy.stats.linregress``.

    Example:
        >>> res = linear_regression([1, 2, 3, 4], [2.1, 3.9, 6.1, 7.9])
        >>> round(res.slope, 2), round(res.r2, 3)
        (1.96, 0.998)
    """
    xs, ys, dropped = paired_finite(x, y)
    if np.ptp(xs) == 0:
        raise ValueError("x is constant; the regression slope is undefined")
    res = stats.linregress(xs, ys)
    return RegressionResult(
        slope=float(res.slope),
        intercept=float(res.intercept),
        r=float(res.rvalue),
        r2=float(res.rvalue**2),
        p=float(res.pvalue),
        stderr=float(res.stderr),
        intercept_stderr=float(res.intercept_stderr),
        n=int(xs.size),
        n_dropped=dropped,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Bland-Altman
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlandAltmanResult:
    """Bland-Altman agreement of ``a`` (method) with ``b`` (reference); differences are ``a - b``.

    Attributes:
        bias: mean difference ``mean(a - b)``; positive means the method reads higher.
        sd: sample standard deviation of the differences (n - 1 in the denominator).
        loa_lower: lower limit of agreement, ``bias - z * sd``.
        loa_upper: upper limit of agreement, ``bias + z * sd``.
        bias_ci_lower, bias_ci_upper: confidence interval of the bias.
        loa_lower_ci_lower, loa_lower_ci_upper: confidence interval of the lower limit.
        loa_upper_ci_lower, loa_upper_ci_upper: confidence interval of the upper limit.
        p_bias: two-sided p-value of bias = 0 (one-sample t-test on the differences).
        n: pairs used.
        n_dropped: pairs dropped for NaN.
        z: the multiplier of the limits (1.96 for 95 % limits).
        confidence: level of the confidence intervals.
    """

    bias: float
    sd: float
    loa_lower: float
    loa_upper: float
    bias_ci_lower: float
    bias_ci_upper: float
    loa_lower_ci_lower: float
    loa_lower_ci_upper: float
    loa_upper_ci_lower: float
    loa_upper_ci_upper: float
    p_bias: float
    n: int
    n_dropped: int
    z: float
    confidence: float


def bland_altman(a: ArrayLike, b: ArrayLike, z: float = 1.96, confidence: float = 0.95) -> BlandAltmanResult:
    """Bias and limits of agreement of ``a`` (method) against ``b`` (reference), Bland & Altman 1986/1999.

    With ``d = a - b``, ``n`` pairs, ``s = sd(d)`` (n - 1 denominator) and ``t = t_{(1+confidence)/2, n-1}``:

    - bias ``d̄``, its CI ``d̄ ± t * s / sqrt(n)``;
    - limits of agreement ``d̄ ± z * s``;
    - CI of each limit ``limit ± t * s * sqrt(1/n + z^2 / (2 (n - 1)))`` (Bland & Altman 1999: the
      variance of ``d̄ ± z s`` is approximately ``(1/n + z^2 / (2 (n - 1))) s^2``; the cruder ``sqrt(3 s^2 / n)``
      of the 1986 paper is its large-sample form for z = 1.96);
    - ``p_bias``: one-sample t-test of mean(d) = 0. When every difference is the same (s = 0) it is 1.0 if that
      difference is 0 and 0.0 otherwise.

    Example:
        >>> res = bland_altman([1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.2, 3.8])
        >>> round(res.bias, 3)
        0.0
    """
    if z <= 0:
        raise ValueError(f"z must be positive, got {z}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x, y, dropped = paired_finite(a, b)
    d = x - y
    n = d.size
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    t = float(stats.t.ppf((1 + confidence) / 2, n - 1))
    se_bias = sd / math.sqrt(n)
    se_loa = sd * math.sqrt(1.0 / n + z**2 / (2.0 * (n - 1)))
    lower, upper = bias - z * sd, bias + z * sd
    if sd == 0:
        # scipy returns NaN for a constant sample; the answer is clear without a test
        p_bias = 1.0 if bias == 0 else 0.0
    else:
        p_bias = float(stats.ttest_1samp(d, 0.0).pvalue)
    return BlandAltmanResult(
        bias=bias,
        sd=sd,
        loa_lower=lower,
        loa_upper=upper,
        bias_ci_lower=bias - t * se_bias,
        bias_ci_upper=bias + t * se_bias,
        loa_lower_ci_lower=lower - t * se_loa,
        loa_lower_ci_upper=lower + t * se_loa,
        loa_upper_ci_lower=upper - t * se_loa,
        loa_upper_ci_upper=upper + t * se_loa,
        p_bias=p_bias,
        n=n,
        n_dropped=dropped,
        z=float(z),
        confidence=float(confidence),
    )


# ---------------------------------------------------------------------------------------------------------------------
# Lin's concordance correlation coefficient
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CCCResult:
    """Lin's concordance correlation coefficient.

    Attributes:
        ccc: ``rho_c`` in [-1, 1]; 1 only for perfect agreement (all pairs on the identity line).
        ci_lower, ci_upper: confidence interval from Fisher's z transform (Lin 1989, corrected 2000); NaN when
            undefined (``|rho_c| = 1`` gives a degenerate interval at the estimate, ``r = 0`` none).
        pearson_r: Pearson's r (precision).
        bias_correction: ``C_b = rho_c / r`` (accuracy, 1 when means and variances agree).
        n: pairs used.
        n_dropped: pairs dropped for NaN.
    """

    ccc: float
    ci_lower: float
    ci_upper: float
    pearson_r: float
    bias_correction: float
    n: int
    n_dropped: int


def lins_ccc(a: ArrayLike, b: ArrayLike, confidence: float = 0.95) -> CCCResult:
    """Lin's concordance correlation coefficient ``rho_c = 2 s_ab / (s_a^2 + s_b^2 + (mean_a - mean_b)^2)``.

    The moments use ``1/n`` denominators, as in Lin 1989. The interval: ``Z = atanh(rho_c)`` with
    ``var(Z) = [ (1 - r^2) rho_c^2 / ((1 - rho_c^2) r^2) + 2 rho_c^3 (1 - rho_c) u^2 / (r (1 - rho_c^2)^2)
    - rho_c^4 u^4 / (2 r^2 (1 - rho_c^2)^2) ] / (n - 2)``, ``u = (mean_a - mean_b) / sqrt(s_a s_b)``, back-transformed
    with ``tanh``.

    Returns NaN for ``ccc`` when both samples are constant and equal (0 / 0).

    Example:
        >>> round(lins_ccc([1, 2, 3, 4, 5], [2, 3, 4, 5, 6]).ccc, 6)  # 2*2 / (2 + 2 + 1)
        0.8
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x, y, dropped = paired_finite(a, b)
    n = x.size
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(), y.var()  # 1/n, Lin 1989
    sxy = float(np.mean((x - mx) * (y - my)))
    denom = vx + vy + (mx - my) ** 2
    nan = float("nan")
    if denom == 0:
        return CCCResult(nan, nan, nan, nan, nan, n, dropped)
    ccc = 2.0 * sxy / denom
    r = sxy / math.sqrt(vx * vy) if vx > 0 and vy > 0 else nan
    cb = ccc / r if r and not math.isnan(r) else nan
    if math.isclose(abs(ccc), 1.0, rel_tol=0, abs_tol=1e-12):
        lo = hi = float(np.sign(ccc))
    elif math.isnan(r) or r == 0 or n <= 2:
        lo = hi = nan
    else:
        u = (mx - my) / math.sqrt(math.sqrt(vx * vy))
        one_m = 1.0 - ccc**2
        var_z = (
            (1 - r**2) * ccc**2 / (one_m * r**2)
            + 2 * ccc**3 * (1 - ccc) * u**2 / (r * one_m**2)
            - ccc**4 * u**4 / (2 * r**2 * one_m**2)
        ) / (n - 2)
        zq = float(stats.norm.ppf((1 + confidence) / 2))
        zc = math.atanh(ccc)
        half = zq * math.sqrt(max(var_z, 0.0))
        lo, hi = math.tanh(zc - half), math.tanh(zc + half)
    return CCCResult(float(ccc), lo, hi, float(r), float(cb), n, dropped)


# ---------------------------------------------------------------------------------------------------------------------
# intraclass correlation
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ICCResult:
    """An intraclass correlation of Shrout & Fleiss 1979 with its F test and confidence interval.

    Attributes:
        kind: ``"ICC(1,1)"``, ``"ICC(2,1)"`` or ``"ICC(3,1)"``.
        icc: the coefficient.
        ci_lower, ci_upper: confidence interval (Shrout & Fleiss 1979; McGraw & Wong 1996 for ICC(2,1)).
        f: F statistic of ICC = 0 (``BMS / WMS`` for ICC(1,1), ``BMS / EMS`` otherwise).
        df1, df2: its degrees of freedom.
        p: one-sided p-value of the F test.
        n: targets (subjects) used.
        k: raters (methods).
        n_dropped: targets dropped for a NaN rating.
        bms, jms, ems, wms: between-targets, between-judges, residual and within-target mean squares.
    """

    kind: str
    icc: float
    ci_lower: float
    ci_upper: float
    f: float
    df1: float
    df2: float
    p: float
    n: int
    k: int
    n_dropped: int
    bms: float
    jms: float
    ems: float
    wms: float


def icc_from_ratings(ratings: Any, kind: str = "ICC(3,1)", confidence: float = 0.95) -> ICCResult:
    """Intraclass correlation of an ``(n targets, k raters)`` matrix from two-way ANOVA mean squares.

    With ``BMS`` (between targets, df n - 1), ``JMS`` (between raters, df k - 1), ``EMS`` (residual, df
    (n - 1)(k - 1)) and ``WMS`` (within targets, df n (k - 1)), Shrout & Fleiss 1979:

    - ``ICC(1,1) = (BMS - WMS) / (BMS + (k - 1) WMS)``: one-way random, single measures;
    - ``ICC(2,1) = (BMS - EMS) / (BMS + (k - 1) EMS + k (JMS - EMS) / n)``: two-way random, absolute agreement,
      single measures (a systematic offset between methods lowers it);
    - ``ICC(3,1) = (BMS - EMS) / (BMS + (k - 1) EMS)``: two-way mixed, consistency, single measures (an offset does
      not count).

    Confidence intervals: F-based for ICC(1,1) and ICC(3,1); for ICC(2,1) the Satterthwaite approximation of
    Shrout & Fleiss 1979 (the same as McGraw & Wong 1996, case 2A). Rows with a NaN are dropped.

    Args:
        ratings: ``(n, k)`` array, one row per target, one column per rater/method; n >= 3, k >= 2.
        kind: one of ``"ICC(1,1)"``, ``"ICC(2,1)"``, ``"ICC(3,1)"``.
        confidence: level of the interval.
    """
    if kind not in ICC_KINDS:
        raise ValueError(f"kind must be one of {ICC_KINDS}, got {kind!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x, dropped = _complete_ratings(ratings)
    n, k = x.shape
    bms, jms, ems, wms = _mean_squares(x)
    value, f, df1, df2, lo, hi = _icc_with_interval(kind, n, k, bms, jms, ems, wms, 1 - confidence)
    p = float(stats.f.sf(f, df1, df2)) if math.isfinite(f) else 0.0
    return ICCResult(
        kind=kind,
        icc=float(value),
        ci_lower=float(lo),
        ci_upper=float(hi),
        f=float(f),
        df1=float(df1),
        df2=float(df2),
        p=p,
        n=n,
        k=k,
        n_dropped=dropped,
        bms=bms,
        jms=jms,
        ems=ems,
        wms=wms,
    )


def _complete_ratings(ratings: Any) -> tuple[np.ndarray, int]:
    """The ``(n, k)`` ratings without the rows holding a NaN, and how many were dropped (inf is an error)."""
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"ratings must be (n targets, k >= 2 raters), got shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError("ratings contain an infinite value; replace or drop it explicitly")
    complete = ~np.isnan(x).any(axis=1)
    dropped = int(x.shape[0] - complete.sum())
    x = x[complete]
    if x.shape[0] < MIN_PAIRS:
        raise ValueError(f"need at least {MIN_PAIRS} complete targets, got {x.shape[0]} ({dropped} dropped for NaN)")
    return x, dropped


def _mean_squares(x: np.ndarray) -> tuple[float, float, float, float]:
    """Two-way ANOVA mean squares of an ``(n, k)`` matrix: between targets, between raters, residual, within."""
    n, k = x.shape
    grand = x.mean()
    ss_total = float(((x - grand) ** 2).sum())
    ss_rows = float(k * ((x.mean(axis=1) - grand) ** 2).sum())
    ss_cols = float(n * ((x.mean(axis=0) - grand) ** 2).sum())
    ss_err = ss_total - ss_rows - ss_cols
    bms = ss_rows / (n - 1)
    jms = ss_cols / (k - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    wms = (ss_total - ss_rows) / (n * (k - 1))
    return bms, jms, ems, wms


def _icc_with_interval(
    kind: str, n: int, k: int, bms: float, jms: float, ems: float, wms: float, alpha: float
) -> tuple[float, float, float, float, float, float]:
    """ICC of ``kind``, its F statistic with degrees of freedom, and the ``1 - alpha`` interval (lower, upper)."""
    nan = float("nan")

    def fq(d1: float, d2: float) -> float:
        return float(stats.f.ppf(1 - alpha / 2, d1, d2))

    if kind == "ICC(1,1)":
        df1, df2 = n - 1, n * (k - 1)
        value = (bms - wms) / (bms + (k - 1) * wms)
        f = bms / wms if wms > 0 else math.inf
        fl, fu = f / fq(df1, df2), f * fq(df2, df1)
        lo, hi = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
    elif kind == "ICC(3,1)":
        df1, df2 = n - 1, (n - 1) * (k - 1)
        value = (bms - ems) / (bms + (k - 1) * ems)
        f = bms / ems if ems > 0 else math.inf
        fl, fu = f / fq(df1, df2), f * fq(df2, df1)
        lo, hi = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
    else:
        df1, df2 = n - 1, (n - 1) * (k - 1)
        value = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
        f = bms / ems if ems > 0 else math.inf
        if ems > 0:
            # Satterthwaite degrees of freedom v (Shrout & Fleiss 1979; equal to McGraw & Wong 1996, case 2A)
            fj = jms / ems
            core = n * (1 + (k - 1) * value) - k * value
            v = (k - 1) * (n - 1) * (k * value * fj + core) ** 2 / ((n - 1) * k**2 * value**2 * fj**2 + core**2)
            f_up, f_lo = fq(n - 1, v), fq(v, n - 1)
            lo = n * (bms - f_up * ems) / (f_up * (k * jms + (k * n - k - n) * ems) + n * bms)
            hi = n * (f_lo * bms - ems) / (k * jms + (k * n - k - n) * ems + n * f_lo * bms)
        else:
            lo = hi = nan
    return value, f, df1, df2, lo, hi


def icc(a: ArrayLike, b: ArrayLike, kind: str = "ICC(3,1)", confidence: float = 0.95) -> ICCResult:
    """Intraclass correlation of two methods measuring the same targets; see :func:`icc_from_ratings`.

    ``"ICC(3,1)"`` (default) is consistency (two-way mixed, single measures); ``"ICC(2,1)"`` is absolute agreement
    (two-way random, single measures), which also penalises a systematic offset between ``a`` and ``b``.
    """
    x, y, dropped = paired_finite(a, b)
    res = icc_from_ratings(np.column_stack([x, y]), kind=kind, confidence=confidence)
    return replace(res, n_dropped=dropped)


# ---------------------------------------------------------------------------------------------------------------------
# paired Wilcoxon and Holm
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank test of ``a - b``.

    Attributes:
        statistic: ``min(W+, W-)``, the sums of the ranks of the positive and negative differences.
        p: two-sided p-value.
        n: pairs used (after dropping NaN; zero differences included).
        n_dropped: pairs dropped for NaN.
        n_zero: pairs with ``a == b``.
        median_difference: median of ``a - b`` over all ``n`` pairs.
        zero_method: how zero differences were handled (``"wilcox"`` or ``"pratt"``).
        method: ``"exact"`` or ``"approx"`` (normal approximation with tie and continuity correction).
    """

    statistic: float
    p: float
    n: int
    n_dropped: int
    n_zero: int
    median_difference: float
    zero_method: str
    method: str


def paired_wilcoxon(
    a: ArrayLike,
    b: ArrayLike,
    zero_method: Literal["wilcox", "pratt"] = "wilcox",
    method: Literal["auto", "exact", "approx"] = "auto",
) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of ``a`` against ``b`` (paired), via ``scipy.stats.wilcoxon``.

    Zero differences: ``"wilcox"`` (default, Wilcoxon 1945, also R's ``wilcox.test``) drops them before ranking;
    ``"pratt"`` (Pratt 1959) ranks them and then drops their ranks, which uses them in the tie structure. Ties among
    the non-zero ``|a - b|`` get mid-ranks. Zeros and ties are exact floating-point comparisons: differences of
    rounded inputs (0.93 - 0.91 vs 0.95 - 0.93) may differ in the last bit, so round the inputs (or ``a - b``) to their
    real precision first if ties matter.

    ``method="auto"`` chooses as R's ``wilcox.test(paired = TRUE)`` does: the exact null distribution when fewer than
    50 pairs remain and there are no zeros and no ties, otherwise the normal approximation with tie correction and a
    continuity correction. The choice is made here and passed to scipy explicitly, so the result does not depend on
    scipy's own ``auto`` rule (which in 1.14 keeps "exact" with ties). If every difference is zero the methods agree
    completely: ``statistic`` is 0 and ``p`` is 1.0 (scipy would raise).

    Example:
        >>> res = paired_wilcoxon([2, 0, 4, 5, 6], [1, 2, 1, 1, 1])  # d = 1, -2, 3, 4, 5: W- = 2
        >>> res.statistic, res.p  # exact: P(W- <= 2) = 3/32, two-sided 6/32
        (2.0, 0.1875)
    """
    if zero_method not in ("wilcox", "pratt"):
        raise ValueError(f"zero_method must be 'wilcox' or 'pratt', got {zero_method!r}")
    if method not in ("auto", "exact", "approx"):
        raise ValueError(f"method must be 'auto', 'exact' or 'approx', got {method!r}")
    x, y, dropped = paired_finite(a, b)
    d = x - y
    n_zero = int(np.sum(d == 0))
    median_diff = float(np.median(d))
    nonzero = np.abs(d[d != 0])
    if nonzero.size == 0:
        return WilcoxonResult(0.0, 1.0, d.size, dropped, n_zero, median_diff, zero_method, "none")
    has_ties = np.unique(nonzero).size < nonzero.size
    if method == "auto":
        method = "exact" if nonzero.size < 50 and n_zero == 0 and not has_ties else "approx"
    res = stats.wilcoxon(d, zero_method=zero_method, correction=(method == "approx"), method=method)
    return WilcoxonResult(
        statistic=float(res.statistic),
        p=float(res.pvalue),
        n=int(d.size),
        n_dropped=dropped,
        n_zero=n_zero,
        median_difference=median_diff,
        zero_method=zero_method,
        method=method,
    )


def holm_correction(pvalues: ArrayLike) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the input order.

    Sort the ``m`` p-values ascending, ``p_(1) <= ... <= p_(m)``; the adjusted value is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``. Reject where the adjusted value is below alpha; this controls the
    family-wise error rate. NaN entries stay NaN and do not count in ``m``.

    Example:
        >>> holm_correction([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
        [0.03, 0.06, 0.06, 0.02]
    """
    p = _as_1d(pvalues, "pvalues")
    valid = ~np.isnan(p)
    if np.any((p[valid] < 0) | (p[valid] > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p[valid][(p[valid] < 0) | (p[valid] > 1)].tolist()}")
    out = np.full_like(p, np.nan)
    pv = p[valid]
    m = pv.size
    if m == 0:
        return out
    order = np.argsort(pv, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * pv[order])
    adjusted = np.maximum.accumulate(scaled)
    res = np.empty(m)
    res[order] = adjusted
    out[valid] = res
    return out
