"""Tests of scripts.normative.centiles: quantile-regression age centile curves."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.normative.centiles import fit_age_centiles


def test_quantile_regression_recovers_linear_quantiles() -> None:
    rng = np.random.default_rng(0)
    age = rng.uniform(20, 70, 1000)
    ff = 10.0 + 0.2 * age + rng.normal(0.0, 2.0, age.size)
    curves = fit_age_centiles(age, ff, centiles=(5, 50, 95))
    slopes = curves.slope_per_year()
    # Tolerance: the median slope's standard error is ~0.01 per year at n = 1000; 0.03 is 3 SE.
    assert slopes[1] == pytest.approx(0.2, abs=0.03)
    assert np.all(np.abs(slopes - 0.2) < 0.05)
    at45 = curves(45.0)
    expected = 10.0 + 0.2 * 45.0 + 2.0 * np.array([-1.6449, 0.0, 1.6449])
    np.testing.assert_allclose(at45, expected, atol=0.4)
    table = curves.table()
    assert list(table.columns) == ["age", "p5", "p50", "p95"] and list(table["age"]) == list(range(20, 71, 5))
    spline = fit_age_centiles(age, ff, centiles=(50,), basis="natural_spline", n_knots=4)
    assert spline(45.0)[0] == pytest.approx(19.0, abs=0.4)


def test_age_centiles_arguments() -> None:
    with pytest.raises(ValueError, match="only 'quantile_regression'"):
        fit_age_centiles([20, 30], [1, 2], method="lms")
    with pytest.raises(ValueError, match="at least 10"):
        fit_age_centiles(np.arange(5.0), np.arange(5.0))
    with pytest.raises(ValueError, match="centiles"):
        fit_age_centiles(np.arange(20.0), np.arange(20.0), centiles=(50, 25))
