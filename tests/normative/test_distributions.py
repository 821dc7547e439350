"""Tests of scripts.normative.distributions: distributions fitted to a reference's quartiles."""

from __future__ import annotations

import math

import pytest
from scripts.normative.distributions import fit_quartiles

from tests.normative.reference_cases import LOGNORMAL_QUARTILE_TOL_PCT, PAPER


@pytest.mark.parametrize("muscle", sorted(PAPER))
def test_lognormal_fit_exact_median_approximate_quartiles(muscle: str) -> None:
    q1, md, q3 = PAPER[muscle]
    fit = fit_quartiles(q1, md, q3, "lognormal")
    assert fit.ppf(0.5) == pytest.approx(md, rel=1e-12)
    assert fit.mu == pytest.approx(math.log(md))
    assert fit.sigma == pytest.approx(math.log(q3 / q1) / (2 * 0.6744897501960817))
    assert abs(fit.q1_residual_pct) <= LOGNORMAL_QUARTILE_TOL_PCT
    assert abs(fit.q3_residual_pct) <= LOGNORMAL_QUARTILE_TOL_PCT
    assert fit.ppf(0.25) - q1 == pytest.approx(fit.q1_residual_pct)
    assert fit.ppf(0.75) - q3 == pytest.approx(fit.q3_residual_pct)


def test_lognormal_residuals_known_values() -> None:
    fit = fit_quartiles(*PAPER["psoas"])
    assert fit.q1_residual_pct == pytest.approx(0.2549, abs=1e-3)
    assert fit.q3_residual_pct == pytest.approx(0.3957, abs=1e-3)


@pytest.mark.parametrize("quartiles", [(14.9, 18.0, 22.2), (9.5, 11.6, 13.8), (10.0, 14.0, 15.0)])
def test_shifted_lognormal_is_exact_on_all_quartiles(quartiles: tuple[float, float, float]) -> None:
    # The last case is left-skewed: the reflected form is used.
    fit = fit_quartiles(*quartiles, distribution="shifted_lognormal")
    for p, q in zip((0.25, 0.5, 0.75), quartiles):
        assert fit.ppf(p) == pytest.approx(q, abs=1e-9)
        assert fit.cdf(q) == pytest.approx(p, abs=1e-9)


def test_normal_fit_and_invalid_quartiles() -> None:
    fit = fit_quartiles(10.5, 13.4, 16.3, "normal")
    assert fit.sigma == pytest.approx(5.8 / 1.3489795003921634)
    with pytest.raises(ValueError, match="p25 <= p50 <= p75"):
        fit_quartiles(12.0, 11.0, 13.0)
    with pytest.raises(ValueError, match="positive"):
        fit_quartiles(0.0, 1.0, 2.0, "lognormal")
    with pytest.raises(ValueError, match="unknown distribution"):
        fit_quartiles(1.0, 2.0, 3.0, "gamma")
