"""Distributions fitted to a reference's quartiles, and percentiles read off a percentile table.

A reference's quartiles are facts; a subject's percentile or z-score against them is an approximation under a
distribution fitted to the quartiles (:func:`fit_quartiles`), and every output row names that distribution.

- Default log-normal, because FF is right-skewed and positive: mu = ln(p50), sigma = ln(p75 / p25) / (2 * 0.6745).
  It reproduces the median exactly and the quartiles approximately; the residuals (fitted minus reference, FF
  points) are reported per row. For the paper's values they are at most 0.4 FF points (psoas Q3).
  ``"shifted_lognormal"`` (exact on all three quartiles) and ``"normal"`` are the alternatives.
- With more percentiles (a user-built reference): the percentile is read off the percentile table by monotone
  piecewise-linear interpolation (:func:`empirical_percentile`); beyond the lowest and highest tabulated
  percentiles the tails come from the fitted distribution, scaled so that the curve stays continuous.
- The z-score is always the normal score of the percentile, Phi^-1(percentile / 100) (:func:`z_of_percentile`),
  which for the log-normal is (ln x - mu) / sigma: an equivalent z, not (x - mean) / SD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["DISTRIBUTIONS", "QuartileFit", "fit_quartiles", "empirical_percentile", "z_of_percentile"]

DISTRIBUTIONS: tuple[str, ...] = ("lognormal", "shifted_lognormal", "normal")
#: Phi^-1(0.75): the quartiles of a standard normal lie at +-0.6745.
_Z_Q3: float = float(stats.norm.ppf(0.75))


@dataclass(frozen=True)
class QuartileFit:
    """A distribution fitted to a reference's quartiles (p25, p50, p75).

    The model is X = shift + sign * exp(mu + sigma * Z) with Z standard normal (a log-normal, shifted and/or
    reflected), or X = mu + sigma * Z for ``name == "normal"``.

    Args:
        name: ``"lognormal"``, ``"shifted_lognormal"`` or ``"normal"``.
        mu: log-scale location (log-normal) or mean (normal).
        sigma: log-scale or linear standard deviation, > 0.
        shift: lower (or, when reflected, upper) bound of the support; 0 for the plain log-normal.
        sign: +1, or -1 for a reflected (left-skewed) shifted log-normal.
        q1_residual_pct: fitted minus reference Q1, FF points.
        q3_residual_pct: fitted minus reference Q3, FF points.
    """

    name: str
    mu: float
    sigma: float
    shift: float = 0.0
    sign: float = 1.0
    q1_residual_pct: float = 0.0
    q3_residual_pct: float = 0.0

    @property
    def label(self) -> str:
        """Name used in the ``distribution`` column, e.g. ``"lognormal_quartile_fit"``."""
        return f"{self.name}_quartile_fit"

    def z(self, x: float) -> float:
        """Equivalent normal score of ``x``: Phi^-1(F(x)); +-inf outside the support."""
        if self.name == "normal":
            return (x - self.mu) / self.sigma
        y = self.sign * (x - self.shift)
        if y <= 0:
            return -math.inf * self.sign
        return self.sign * (math.log(y) - self.mu) / self.sigma

    def cdf(self, x: float) -> float:
        """F(x), 0-1."""
        return float(stats.norm.cdf(self.z(x)))

    def sf(self, x: float) -> float:
        """1 - F(x), computed without cancellation in the upper tail."""
        return float(stats.norm.sf(self.z(x)))

    def ppf(self, p: float) -> float:
        """The value at cumulative probability ``p`` (0-1)."""
        zp = float(stats.norm.ppf(p))
        if self.name == "normal":
            return self.mu + self.sigma * zp
        return self.shift + self.sign * math.exp(self.mu + self.sign * self.sigma * zp)


def fit_quartiles(p25: float, p50: float, p75: float, distribution: str = "lognormal") -> QuartileFit:
    """Fit a distribution to a median and quartiles, exactly on the median.

    - ``"lognormal"``: mu = ln(p50), sigma = ln(p75 / p25) / (2 * 0.6745). The median is exact; Q1 and Q3 are
      matched only as well as the quartiles are symmetric in log space (the residuals say how well).
    - ``"shifted_lognormal"``: X = c + exp(mu + sigma Z) through all three quartiles: with the half-IQRs
      u = p75 - p50 and l = p50 - p25, sigma = ln(u / l) / 0.6745, exp(mu) = u / (exp(0.6745 sigma) - 1),
      c = p50 - exp(mu). Left skew (u < l) uses the reflected form; symmetric quartiles give the normal.
    - ``"normal"``: mean p50, SD = IQR / 1.349; exact on symmetric quartiles.

    Args:
        p25: first quartile, FF %.
        p50: median, FF %.
        p75: third quartile, FF %.
        distribution: one of ``DISTRIBUTIONS``.

    Raises:
        ValueError: unknown distribution, quartiles out of order or with zero spread, or a log-normal asked for
            quartiles that are not all positive.
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; expected one of {DISTRIBUTIONS}")
    if not (p25 <= p50 <= p75) or not p75 > p25:
        raise ValueError(f"quartiles must satisfy p25 <= p50 <= p75 with p75 > p25, got {p25}, {p50}, {p75}")
    upper, lower = p75 - p50, p50 - p25
    if distribution == "normal" or (
        distribution == "shifted_lognormal" and abs(math.log(max(upper, 1e-300) / max(lower, 1e-300))) < 1e-9
    ):
        sigma = (p75 - p25) / (2.0 * _Z_Q3)
        return QuartileFit(
            "normal",
            p50,
            sigma,
            q1_residual_pct=(p50 - _Z_Q3 * sigma) - p25,
            q3_residual_pct=(p50 + _Z_Q3 * sigma) - p75,
        )
    if distribution == "lognormal":
        if p25 <= 0:
            raise ValueError(f"a log-normal needs positive quartiles, got p25 = {p25}")
        mu, sigma = math.log(p50), math.log(p75 / p25) / (2.0 * _Z_Q3)
        return QuartileFit(
            "lognormal",
            mu,
            sigma,
            q1_residual_pct=math.exp(mu - _Z_Q3 * sigma) - p25,
            q3_residual_pct=math.exp(mu + _Z_Q3 * sigma) - p75,
        )
    if lower <= 0 or upper <= 0:
        raise ValueError(f"a shifted log-normal needs p25 < p50 < p75, got {p25}, {p50}, {p75}")
    sign = 1.0 if upper > lower else -1.0
    # Fit the right-skewed form to sign * X, whose upper half-IQR is the larger one.
    big, small = max(upper, lower), min(upper, lower)
    sigma = math.log(big / small) / _Z_Q3
    scale = big / math.expm1(_Z_Q3 * sigma)
    shift = p50 - sign * scale
    fit = QuartileFit("shifted_lognormal", math.log(scale), sigma, shift=shift, sign=sign)
    return QuartileFit(
        "shifted_lognormal",
        fit.mu,
        sigma,
        shift=shift,
        sign=sign,
        q1_residual_pct=fit.ppf(0.25) - p25,
        q3_residual_pct=fit.ppf(0.75) - p75,
    )


def empirical_percentile(x: float, qs: np.ndarray, vs: np.ndarray, fit: QuartileFit) -> tuple[float, bool]:
    """Percentile of ``x`` on a percentile table, piecewise-linear inside, fitted tails outside.

    Tied table values (``p5 == p10`` in a small stratum) get the middle of their percentile range, so the mapping
    stays monotone.

    Args:
        x: the subject's FF, percent.
        qs: tabulated percentiles (0-100), increasing, shape ``(k,)``.
        vs: FF values at ``qs``, percent, non-decreasing, shape ``(k,)``.
        fit: the distribution fitted to the quartiles; it supplies the tails.

    Returns:
        ``(percentile 0-100, in_tail)``; ``in_tail`` is True beyond the tabulated range.
    """
    uniq, first = np.unique(vs, return_index=True)
    q_lo = qs[first]
    q_hi = np.array([qs[vs == u].max() for u in uniq])
    if x < uniq[0]:
        # Scale the fitted CDF so it meets the lowest tabulated percentile at its value.
        f0 = fit.cdf(float(uniq[0]))
        return (q_lo[0] * fit.cdf(x) / f0 if f0 > 0 else 0.0), True
    if x > uniq[-1]:
        s0 = fit.sf(float(uniq[-1]))
        return (100.0 - (100.0 - q_hi[-1]) * fit.sf(x) / s0 if s0 > 0 else 100.0), True
    j = int(np.searchsorted(uniq, x, side="left"))
    if uniq[j] == x:
        return float(0.5 * (q_lo[j] + q_hi[j])), False
    x0, x1 = uniq[j - 1], uniq[j]
    return float(q_hi[j - 1] + (q_lo[j] - q_hi[j - 1]) * (x - x0) / (x1 - x0)), False


def z_of_percentile(p: float) -> float:
    """Normal score Phi^-1(p / 100) of a percentile ``p`` (0-100); +-inf at 0 and 100."""
    # isf in the upper half keeps precision for percentiles close to 100.
    return float(stats.norm.ppf(p / 100.0) if p <= 50.0 else stats.norm.isf(1.0 - p / 100.0))
