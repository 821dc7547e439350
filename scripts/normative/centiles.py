"""Age centile curves of fat fraction: quantile regression on age, linear or natural cubic spline.

Age centile curves (:func:`fit_age_centiles`) are linear (or natural-spline) quantile regressions solved as linear
programmes (Koenker & Bassett 1978) with ``scipy.optimize.linprog`` (HiGHS); crossing centiles are sorted
(rearrangement, Chernozhukov et al. 2010). LMS / GAMLSS (Cole & Green 1992) would need raw data and more
subjects than most cohorts have.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, sparse
from scripts.normative.conventions import pkey

__all__ = ["DEFAULT_AGE_CENTILES", "CENTILE_AGES", "AgeCentiles", "fit_age_centiles"]

DEFAULT_AGE_CENTILES: tuple[float, ...] = (5, 25, 50, 75, 95)
#: ages (years) at which age centiles are tabulated by default
CENTILE_AGES: tuple[int, ...] = tuple(range(20, 71, 5))


def _natural_spline_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Natural cubic spline basis with ``len(knots)`` columns (Hastie et al., ESL eq. 5.4-5.5): 1, x, N_3.."""
    k = len(knots)
    cols = [np.ones_like(x), x]

    def d(j: int) -> np.ndarray:
        return (np.clip(x - knots[j], 0, None) ** 3 - np.clip(x - knots[-1], 0, None) ** 3) / (knots[-1] - knots[j])

    for j in range(k - 2):
        cols.append(d(j) - d(k - 2))
    return np.column_stack(cols)


@dataclass(frozen=True)
class AgeCentiles:
    """Centile curves of FF against age from quantile regression.

    Args:
        centiles: the centiles (0-100), increasing.
        coef: shape ``(len(centiles), n_basis)``; coefficients on the basis of the scaled age.
        basis: ``"linear"`` or ``"natural_spline"``.
        age_range: ``(min, max)`` age of the fitted data; calls clamp ages into it (no extrapolation).
        knots: natural-spline knots on the scaled age (empty for linear).
        n: subjects used.
    """

    centiles: tuple[float, ...]
    coef: np.ndarray
    basis: str
    age_range: tuple[float, float]
    knots: tuple[float, ...] = ()
    n: int = 0

    def _design(self, age: np.ndarray) -> np.ndarray:
        lo, hi = self.age_range
        x = (np.clip(age, lo, hi) - lo) / (hi - lo)
        if self.basis == "linear":
            return np.column_stack([np.ones_like(x), x])
        return _natural_spline_basis(x, np.asarray(self.knots))

    def __call__(self, age: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """FF % at each centile: shape ``(len(centiles),)`` for a scalar age, else ``(n_ages, len(centiles))``.

        Crossing curves are rearranged (sorted per age), which keeps each centile a valid quantile estimate
        (Chernozhukov, Fernandez-Val & Galichon 2010).
        """
        ages = np.atleast_1d(np.asarray(age, dtype=float))
        out = np.sort(self._design(ages) @ self.coef.T, axis=1)
        return out[0] if np.ndim(age) == 0 else out

    def slope_per_year(self) -> np.ndarray:
        """For the linear basis: FF points per year, one per centile (before rearrangement)."""
        if self.basis != "linear":
            raise ValueError("slope_per_year is defined for the linear basis only")
        return self.coef[:, 1] / (self.age_range[1] - self.age_range[0])

    def table(self, ages: Iterable[float] = CENTILE_AGES) -> pd.DataFrame:
        """Centiles at ``ages``: columns ``age``, ``p5``, ``p25``, ... (FF %)."""
        grid = np.asarray(list(ages), dtype=float)
        values = self(grid)
        df = pd.DataFrame(values, columns=[pkey(c) for c in self.centiles])
        df.insert(0, "age", grid)
        return df


def _quantile_regression(design: np.ndarray, y: np.ndarray, tau: float) -> np.ndarray:
    """Koenker-Bassett check-loss minimisation as a linear programme: min tau 1'u + (1-tau) 1'v, Xb + u - v = y."""
    n, p = design.shape
    c = np.concatenate([np.zeros(p), np.full(n, tau), np.full(n, 1.0 - tau)])
    a_eq = sparse.hstack(
        [sparse.csr_matrix(design), sparse.identity(n, format="csr"), -sparse.identity(n, format="csr")]
    )
    bounds = [(None, None)] * p + [(0.0, None)] * (2 * n)
    res = optimize.linprog(c, A_eq=a_eq.tocsr(), b_eq=y, bounds=bounds, method="highs")
    if not res.success:
        raise RuntimeError(f"quantile regression at centile {100 * tau:g} did not converge: {res.message}")
    return np.asarray(res.x[:p])


def fit_age_centiles(
    age: Sequence[float] | np.ndarray,
    ff: Sequence[float] | np.ndarray,
    centiles: Sequence[float] = DEFAULT_AGE_CENTILES,
    method: str = "quantile_regression",
    *,
    basis: str = "linear",
    n_knots: int = 3,
) -> AgeCentiles:
    """Fit FF centile curves against age by quantile regression (linear or natural cubic spline in age).

    Each centile is a separate linear programme solved with HiGHS (``scipy.optimize.linprog``); no statsmodels.
    Age is scaled to [0, 1] over the fitted range for conditioning. Spline knots sit at the 10 %, ..., 90 %
    quantiles of age (Harrell's placement); the curves are linear beyond the boundary knots.

    Args:
        age: years, one per subject.
        ff: FF %, one per subject; pairs with a NaN are dropped.
        centiles: 0-100, e.g. ``(5, 25, 50, 75, 95)``.
        method: only ``"quantile_regression"``.
        basis: ``"linear"`` or ``"natural_spline"``.
        n_knots: spline knots (>= 3); ignored for the linear basis.

    Raises:
        ValueError: bad arguments, fewer subjects than 10 or than basis functions, or no spread in age.

    Warns:
        UserWarning: when fewer than 5 subjects are expected beyond an extreme centile (unstable estimate).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = rng.uniform(20, 70, 400)
        >>> curves = fit_age_centiles(a, 10 + 0.2 * a + rng.normal(0, 2, 400))
        >>> curves.table().shape
        (11, 6)
    """
    if method != "quantile_regression":
        raise ValueError(f"unknown method {method!r}; only 'quantile_regression' is implemented")
    if basis not in ("linear", "natural_spline"):
        raise ValueError(f"unknown basis {basis!r}; expected 'linear' or 'natural_spline'")
    cs = tuple(float(c) for c in centiles)
    if not cs or any(not 0.0 < c < 100.0 for c in cs) or list(cs) != sorted(set(cs)):
        raise ValueError(f"centiles must be increasing, unique and within (0, 100), got {tuple(centiles)}")
    a = np.asarray(age, dtype=float).ravel()
    y = np.asarray(ff, dtype=float).ravel()
    if a.shape != y.shape:
        raise ValueError(f"age and ff must have the same length, got {a.size} and {y.size}")
    keep = np.isfinite(a) & np.isfinite(y)
    a, y = a[keep], y[keep]
    n_basis = 2 if basis == "linear" else n_knots
    if basis == "natural_spline" and n_knots < 3:
        raise ValueError(f"n_knots must be at least 3 for a natural spline, got {n_knots}")
    if a.size < max(10, n_basis + 1):
        raise ValueError(f"need at least {max(10, n_basis + 1)} subjects with age and FF, got {a.size}")
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        raise ValueError(f"age has no spread (all {lo}); centile curves need a range of ages")
    x = (a - lo) / (hi - lo)
    knots: tuple[float, ...] = ()
    if basis == "natural_spline":
        kn = np.quantile(x, np.linspace(0.1, 0.9, n_knots))
        if np.any(np.diff(kn) <= 0):
            raise ValueError("natural-spline knots coincide (too few distinct ages); use fewer knots or 'linear'")
        knots = tuple(float(k) for k in kn)
        design = _natural_spline_basis(x, kn)
    else:
        design = np.column_stack([np.ones_like(x), x])
    tail = min(min(cs), 100.0 - max(cs)) / 100.0
    if a.size * tail < 5:
        warnings.warn(
            f"only {a.size * tail:.1f} subjects expected beyond the extreme centiles {cs[0]:g}/{cs[-1]:g}"
            f" (n = {a.size}); those curves are unstable",
            UserWarning,
            stacklevel=2,
        )
    coef = np.vstack([_quantile_regression(design, y, c / 100.0) for c in cs])
    return AgeCentiles(centiles=cs, coef=coef, basis=basis, age_range=(lo, hi), knots=knots, n=int(a.size))
