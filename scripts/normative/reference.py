"""Normative reference values of lumbar muscle fat fraction: load, select a stratum, compare a subject, build one.

A reference is a versioned JSON data file. The shipped default, ``resources/normative/bmc2026_lumbar_ff.json``,
holds the median and quartiles of the 173 healthy adults (20-70 years) of the BMC Medical Imaging 2026 paper
(doi 10.1186/s12880-026-02329-9), pooled over sex, age and activity, because the abstract publishes nothing
finer. Those numbers are facts; a subject's percentile or z-score against them is an approximation under a
distribution fitted to the quartiles, and every output row names that distribution. Users can build their own
reference from a cohort table (:func:`build_reference`), by sex, age band and activity, and point inference at it.

Reference file schema (``format_version`` "1.0"; :func:`validate_reference` enforces it):

.. code-block:: text

    {
      "format_version": "1.0",                 # major version 1 is what this module reads
      "reference_id": str,                     # stable name, e.g. "bmc2026_lumbar_ff"
      "version": str,                          # version of the values, e.g. "1.0.0"
      "description": str,                      # optional
      "source": {"citation": str, "doi": str | null, ...},
      "n": int,                                # subjects in the whole reference
      "population": {...},                     # free-form object: "healthy", "age_range_years": [lo, hi], ...
      "ff_definition": {"statistic": str, "is_pdff": bool, ...},
      "unit": "percent",                       # optional; FF is always in percent
      "side": "lr_mean",                       # the "muscles" blocks hold the mean of the left and right values
      "percentile_method": str,                # optional; how the percentiles were computed
      "unknown": [str, ...],                   # optional; what the reference does NOT tell (e.g. no sex strata)
      "age_bands": [[lo, hi], ...],            # optional; inclusive completed years of the age-band strata
      "strata": [                              # at least the pooled stratum sex = age_band = activity = "all"
        {
          "sex": "all" | "female" | "male" | ...,
          "age_band": "all" | "lo-hi",         # inclusive completed years: lo <= age < hi + 1
          "activity": "all" | str,
          "n": int,                            # subjects in the stratum
          "small_stratum": bool,               # optional (default false): n below the builder's min_n
          "muscles": {                         # L/R mean; keys are scripts.labels.MUSCLES
            "psoas": {"p25": float, "p50": float, "p75": float, "p5": ..., "n": int (optional)}, ...
          },
          "per_side": {"left": {muscle: {...}}, "right": {muscle: {...}}},   # optional
          "age_centiles": {                    # optional; only on strata with age_band "all"
            "method": str, "basis": str, "n": int, "fitted_age_range": [lo, hi],
            "ages": [20, 25, ..., 70],
            "muscles": {muscle: {"p5": [one value per age], "p25": [...], ...}}
          }
        }, ...
      ]
    }

Percentile keys are ``"p"`` plus the percentile (``"p5"``, ``"p2.5"``); ``p25``, ``p50`` and ``p75`` are required,
values are FF in percent within [0, 100] and must not decrease with the percentile. Sex and activity levels are
compared in lower case, with ``f``/``woman`` read as ``female`` and ``m``/``man`` as ``male``.

How a subject is placed (:func:`compare_to_reference`):

- ``band``: ``below_q1`` (value < p25), ``within_iqr`` (p25 <= value <= p75, both ends included),
  ``above_q3`` (value > p75) and, when the reference tabulates p95, ``above_p95`` (value > p95).
- With only quartiles (the paper): a distribution fitted to them. Default log-normal, because FF is
  right-skewed and positive: mu = ln(p50), sigma = ln(p75 / p25) / (2 * 0.6745). It reproduces the median exactly
  and the quartiles approximately; the residuals (fitted minus reference, FF points) are reported per row. For the
  paper's values they are at most 0.4 FF points (psoas Q3). ``"shifted_lognormal"`` (exact on all three quartiles)
  and ``"normal"`` are the alternatives.
- With more percentiles (a user-built reference): ``empirical_interpolated``, the percentile read off the
  percentile table by monotone piecewise-linear interpolation; beyond the lowest and highest tabulated
  percentiles the tails come from the fitted distribution, scaled so that the curve stays continuous.
- ``z_score_approx`` is always the normal score of the percentile, Phi^-1(percentile / 100), which for the
  log-normal is (ln x - mu) / sigma: it is an equivalent z, not (x - mean) / SD.

Age centile curves (:func:`fit_age_centiles`) are linear (or natural-spline) quantile regressions solved as linear
programmes (Koenker & Bassett 1978) with ``scipy.optimize.linprog`` (HiGHS); crossing centiles are sorted
(rearrangement, Chernozhukov et al. 2010). LMS / GAMLSS (Cole & Green 1992) would need raw data and more
subjects than most cohorts have.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, sparse, stats
from scripts.io.atomic import atomic_write_text
from scripts.labels import MUSCLES, SIDES

__all__ = [
    "FORMAT_VERSION",
    "DEFAULT_REFERENCE_PATH",
    "DEFAULT_AGE_BANDS",
    "DEFAULT_PERCENTILES",
    "DEFAULT_AGE_CENTILES",
    "DISTRIBUTIONS",
    "ReferenceFormatError",
    "QuartileFit",
    "StratumSelection",
    "Reference",
    "AgeCentiles",
    "validate_reference",
    "load_reference",
    "fit_quartiles",
    "compare_to_reference",
    "build_reference",
    "save_reference",
    "fit_age_centiles",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION: str = "1.0"
_SUPPORTED_MAJOR = 1

#: The reference shipped with the bundle: the paper's medians and quartiles.
DEFAULT_REFERENCE_PATH: Path = (
    Path(__file__).resolve().parents[2] / "resources" / "normative" / "bmc2026_lumbar_ff.json"
)

#: Inclusive completed-year age bands; the last one also takes the 70-year-olds of a 20-70 cohort.
DEFAULT_AGE_BANDS: tuple[tuple[int, int], ...] = ((20, 29), (30, 39), (40, 49), (50, 59), (60, 70))
DEFAULT_PERCENTILES: tuple[float, ...] = (5, 10, 25, 50, 75, 90, 95)
DEFAULT_AGE_CENTILES: tuple[float, ...] = (5, 25, 50, 75, 95)
DISTRIBUTIONS: tuple[str, ...] = ("lognormal", "shifted_lognormal", "normal")

_ALL = "all"
_LR_MEAN = "lr_mean"
_STRATUM_KEYS: tuple[str, ...] = ("sex", "age_band", "activity")
_REQUIRED_PERCENTILES: tuple[float, ...] = (25.0, 50.0, 75.0)
#: Phi^-1(0.75): the quartiles of a standard normal lie at +-0.6745.
_Z_Q3: float = float(stats.norm.ppf(0.75))
_PKEY_RE = re.compile(r"^p(\d+(?:\.\d+)?)$")
_BAND_RE = re.compile(r"^(\d+)-(\d+)$")
_SEX_ALIASES: dict[str, str] = {
    "f": "female",
    "female": "female",
    "w": "female",
    "woman": "female",
    "women": "female",
    "m": "male",
    "male": "male",
    "man": "male",
    "men": "male",
}
_SIDE_ALIASES: dict[str, str] = {
    "left": "left",
    "l": "left",
    "right": "right",
    "r": "right",
    "mean": _LR_MEAN,
    "lr_mean": _LR_MEAN,
    "l/r mean": _LR_MEAN,
    "lr": _LR_MEAN,
    "both": _LR_MEAN,
}


#: ages (years) at which age centiles are tabulated by default
CENTILE_AGES: tuple[int, ...] = tuple(range(20, 71, 5))


class ReferenceFormatError(ValueError):
    """A reference file or dict does not follow the schema; the message names the file and the faulty field."""


# ----------------------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------------------


def _pkey(q: float) -> str:
    """Percentile key of ``q``: 5 -> ``"p5"``, 2.5 -> ``"p2.5"``."""
    return f"p{float(q):g}"


def _parse_pkey(key: str) -> float | None:
    """Percentile of a key such as ``"p25"``; ``None`` when the key is not a percentile key."""
    match = _PKEY_RE.match(key)
    return float(match.group(1)) if match else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _norm_level(value: Any, key: str) -> str:
    """Lower-case text of a stratum level; sex aliases (``F``, ``woman``) become ``female``/``male``."""
    text = str(value).strip().lower()
    if key == "sex":
        return _SEX_ALIASES.get(text, text)
    return text


def _norm_side(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in _SIDE_ALIASES:
        raise ValueError(f"unknown side {value!r}; expected one of left, right, mean (or lr_mean)")
    return _SIDE_ALIASES[text]


def _band_label(lo: int, hi: int) -> str:
    return f"{lo}-{hi}"


def _parse_band(label: str) -> tuple[int, int] | None:
    match = _BAND_RE.match(label)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _age_in_band(age: float, band: tuple[int, int]) -> bool:
    # Completed years: 29.9 is still in 20-29, 70.5 is in 60-70.
    return band[0] <= age < band[1] + 1


def _sorted_table(entry: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Percentiles and values of one muscle entry, sorted by percentile."""
    pairs = sorted((q, float(v)) for k, v in entry.items() if (q := _parse_pkey(k)) is not None)
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


# ----------------------------------------------------------------------------------------------------------------
# schema validation
# ----------------------------------------------------------------------------------------------------------------


def _check_percentile_entry(entry: Any, where: str, stratum_n: int | None) -> None:
    if not isinstance(entry, Mapping):
        raise ReferenceFormatError(f"{where}: expected an object of percentiles, got {type(entry).__name__}")
    for key, value in entry.items():
        if key == "n":
            if not _is_int(value) or value < 1:
                raise ReferenceFormatError(f"{where}.n: expected a positive integer, got {value!r}")
            if stratum_n is not None and value > stratum_n:
                raise ReferenceFormatError(f"{where}.n: {value} is larger than the stratum n = {stratum_n}")
            continue
        q = _parse_pkey(key)
        if q is None or not 0.0 < q < 100.0:
            raise ReferenceFormatError(f"{where}: unknown key {key!r}; expected 'n' or percentiles 'p<q>', 0 < q < 100")
        if not _is_number(value) or not 0.0 <= value <= 100.0:
            raise ReferenceFormatError(
                f"{where}.{key}: expected a fat fraction in percent within [0, 100], got {value!r}"
            )
    missing = [_pkey(q) for q in _REQUIRED_PERCENTILES if _pkey(q) not in entry]
    if missing:
        raise ReferenceFormatError(f"{where}: missing required percentiles {missing}")
    qs, vs = _sorted_table(entry)
    for i in range(1, len(qs)):
        if vs[i] < vs[i - 1]:
            raise ReferenceFormatError(
                f"{where}: {_pkey(qs[i - 1])} = {vs[i - 1]:g} is greater than {_pkey(qs[i])} = {vs[i]:g}; "
                "percentiles must not decrease"
            )


def _check_muscle_block(block: Any, where: str, stratum_n: int | None) -> None:
    if not isinstance(block, Mapping) or not block:
        raise ReferenceFormatError(f"{where}: expected a non-empty object keyed by muscle name")
    for muscle, entry in block.items():
        if muscle not in MUSCLES:
            raise ReferenceFormatError(f"{where}: unknown muscle {muscle!r}; expected one of {MUSCLES}")
        _check_percentile_entry(entry, f"{where}.{muscle}", stratum_n)


def _check_age_centiles(curves: Any, where: str) -> None:
    if not isinstance(curves, Mapping):
        raise ReferenceFormatError(f"{where}: expected an object")
    ages = curves.get("ages")
    if not isinstance(ages, list) or len(ages) < 2 or not all(_is_number(a) for a in ages):
        raise ReferenceFormatError(f"{where}.ages: expected a list of at least 2 numbers, got {ages!r}")
    if any(b <= a for a, b in zip(ages, ages[1:])):
        raise ReferenceFormatError(f"{where}.ages: ages must increase strictly, got {ages}")
    rng = curves.get("fitted_age_range")
    if rng is not None and (not isinstance(rng, list) or len(rng) != 2 or not all(_is_number(a) for a in rng)):
        raise ReferenceFormatError(f"{where}.fitted_age_range: expected [lo, hi], got {rng!r}")
    muscles = curves.get("muscles")
    if not isinstance(muscles, Mapping) or not muscles:
        raise ReferenceFormatError(f"{where}.muscles: expected a non-empty object keyed by muscle name")
    for muscle, table in muscles.items():
        w = f"{where}.muscles.{muscle}"
        if muscle not in MUSCLES:
            raise ReferenceFormatError(f"{w}: unknown muscle; expected one of {MUSCLES}")
        if not isinstance(table, Mapping):
            raise ReferenceFormatError(f"{w}: expected an object of centile lists")
        for key, values in table.items():
            q = _parse_pkey(key)
            if q is None or not 0.0 < q < 100.0:
                raise ReferenceFormatError(f"{w}: unknown key {key!r}; expected centiles 'p<q>', 0 < q < 100")
            if not isinstance(values, list) or len(values) != len(ages) or not all(_is_number(v) for v in values):
                raise ReferenceFormatError(f"{w}.{key}: expected {len(ages)} finite numbers (one per age)")
        missing = [_pkey(q) for q in _REQUIRED_PERCENTILES if _pkey(q) not in table]
        if missing:
            raise ReferenceFormatError(f"{w}: missing required centiles {missing}")
        keys = sorted(table, key=lambda k: _parse_pkey(k) or 0.0)
        grid = np.array([table[k] for k in keys], dtype=float)
        if np.any(np.diff(grid, axis=0) < 0):
            raise ReferenceFormatError(f"{w}: centiles cross (a lower centile exceeds a higher one at some age)")


def validate_reference(data: Any, source: str | os.PathLike[str] = "<reference dict>") -> None:
    """Check that ``data`` follows the reference schema of this module (see the module docstring).

    Args:
        data: the parsed JSON object.
        source: the file name (or a description) that error messages start with.

    Raises:
        ReferenceFormatError: naming ``source``, the faulty field and the value received.
    """
    src = str(source)

    def fail(message: str) -> None:
        raise ReferenceFormatError(f"{src}: {message}")

    if not isinstance(data, Mapping):
        fail(f"expected a JSON object at the top level, got {type(data).__name__}")
    required = (
        "format_version",
        "reference_id",
        "version",
        "source",
        "n",
        "population",
        "ff_definition",
        "side",
        "strata",
    )
    missing = [k for k in required if k not in data]
    if missing:
        fail(f"missing required keys {missing}")
    fmt = data["format_version"]
    if not isinstance(fmt, str) or not re.match(r"^\d+\.\d+$", fmt):
        fail(f"format_version: expected text such as '1.0', got {fmt!r}")
    if int(fmt.split(".")[0]) != _SUPPORTED_MAJOR:
        fail(f"format_version {fmt!r} is not supported; this module reads {_SUPPORTED_MAJOR}.x")
    for key in ("reference_id", "version"):
        if not isinstance(data[key], str) or not data[key].strip():
            fail(f"{key}: expected non-empty text, got {data[key]!r}")
    src_block = data["source"]
    if not isinstance(src_block, Mapping) or not isinstance(src_block.get("citation"), str):
        fail("source: expected an object with a 'citation' text (and 'doi': text or null)")
    if "doi" in src_block and src_block["doi"] is not None and not isinstance(src_block["doi"], str):
        fail(f"source.doi: expected text or null, got {src_block['doi']!r}")
    if not _is_int(data["n"]) or data["n"] < 1:
        fail(f"n: expected a positive integer, got {data['n']!r}")
    if not isinstance(data["population"], Mapping):
        fail("population: expected an object")
    ffd = data["ff_definition"]
    if (
        not isinstance(ffd, Mapping)
        or not isinstance(ffd.get("statistic"), str)
        or not isinstance(ffd.get("is_pdff"), bool)
    ):
        fail("ff_definition: expected an object with 'statistic' (text) and 'is_pdff' (true/false)")
    if data["side"] != _LR_MEAN:
        fail(f"side: expected {_LR_MEAN!r} (the 'muscles' blocks hold the L/R mean), got {data['side']!r}")
    if "unit" in data and data["unit"] != "percent":
        fail(f"unit: fat fraction must be in 'percent', got {data['unit']!r}")
    if "unknown" in data and (
        not isinstance(data["unknown"], list) or not all(isinstance(u, str) for u in data["unknown"])
    ):
        fail("unknown: expected a list of texts")
    strata = data["strata"]
    if not isinstance(strata, list) or not strata:
        fail("strata: expected a non-empty list")
    seen: set[tuple[str, str, str]] = set()
    for i, stratum in enumerate(strata):
        where = f"strata[{i}]"
        if not isinstance(stratum, Mapping):
            fail(f"{where}: expected an object")
        for key in _STRATUM_KEYS:
            value = stratum.get(key)
            if not isinstance(value, str) or not value.strip():
                fail(f"{where}.{key}: expected non-empty text ('all' when not stratified), got {value!r}")
        band = stratum["age_band"]
        if band != _ALL:
            parsed = _parse_band(band)
            if parsed is None or parsed[0] > parsed[1]:
                fail(f"{where}.age_band: expected 'all' or 'lo-hi' in years with lo <= hi, got {band!r}")
        n = stratum.get("n")
        if not _is_int(n) or n < 1:
            fail(f"{where}.n: expected a positive integer, got {n!r}")
        if n > data["n"]:
            fail(f"{where}.n: {n} is larger than the reference n = {data['n']}")
        if "small_stratum" in stratum and not isinstance(stratum["small_stratum"], bool):
            fail(f"{where}.small_stratum: expected true/false, got {stratum['small_stratum']!r}")
        ident = tuple(_norm_level(stratum[k], k) for k in _STRATUM_KEYS)
        if ident in seen:
            fail(f"{where}: duplicate stratum sex={ident[0]}, age_band={ident[1]}, activity={ident[2]}")
        seen.add(ident)  # type: ignore[arg-type]
        try:
            if "muscles" not in stratum:
                raise ReferenceFormatError(f"{where}: missing 'muscles'")
            _check_muscle_block(stratum["muscles"], f"{where}.muscles", n)
            per_side = stratum.get("per_side")
            if per_side is not None:
                if not isinstance(per_side, Mapping) or not set(per_side) <= set(SIDES):
                    raise ReferenceFormatError(f"{where}.per_side: expected an object with keys among {SIDES}")
                for side, block in per_side.items():
                    _check_muscle_block(block, f"{where}.per_side.{side}", n)
            if "age_centiles" in stratum:
                if band != _ALL:
                    raise ReferenceFormatError(f"{where}.age_centiles: only allowed on strata with age_band 'all'")
                _check_age_centiles(stratum["age_centiles"], f"{where}.age_centiles")
        except ReferenceFormatError as err:
            fail(str(err))
    if (_ALL, _ALL, _ALL) not in seen:
        fail("strata: the pooled stratum (sex, age_band and activity all 'all') is required as the fallback")


# ----------------------------------------------------------------------------------------------------------------
# distributions fitted to quartiles
# ----------------------------------------------------------------------------------------------------------------


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


def _empirical_percentile(x: float, qs: np.ndarray, vs: np.ndarray, fit: QuartileFit) -> tuple[float, bool]:
    """Percentile of ``x`` on a percentile table, piecewise-linear inside, fitted tails outside.

    Tied table values (``p5 == p10`` in a small stratum) get the middle of their percentile range, so the mapping
    stays monotone. Returns ``(percentile 0-100, in_tail)``.
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


def _z_of_percentile(p: float) -> float:
    # isf in the upper half keeps precision for percentiles close to 100.
    return float(stats.norm.ppf(p / 100.0) if p <= 50.0 else stats.norm.isf(1.0 - p / 100.0))


# ----------------------------------------------------------------------------------------------------------------
# reference object and stratum selection
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StratumSelection:
    """The stratum of a reference chosen for a subject, and why.

    Args:
        sex: stratum level (``"all"`` when pooled).
        age_band: ``"lo-hi"``, ``"all"``, or ``"curve@<age>"`` when read off age centile curves.
        activity: stratum level.
        n: subjects in the stratum.
        small_stratum: the stratum has fewer subjects than its builder's ``min_n``.
        muscles: muscle -> {percentile key: FF %} (L/R mean).
        per_side: side -> muscle -> {percentile key: FF %}; empty when the reference has no per-side values.
        requested: the sex, age and activity asked for (normalised).
        fallback: the requested keys answered by the pooled ``"all"`` level.
        index: position of the stratum in the reference's ``strata``.
        age_clamped: the age lay outside the centile curves' fitted range and was clamped to it.
    """

    sex: str
    age_band: str
    activity: str
    n: int
    small_stratum: bool
    muscles: dict[str, dict[str, float]]
    per_side: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    requested: dict[str, Any] = field(default_factory=dict)
    fallback: tuple[str, ...] = ()
    index: int = 0
    age_clamped: bool = False

    @property
    def label(self) -> str:
        """``"sex=female, age_band=all, activity=all"``."""
        return f"sex={self.sex}, age_band={self.age_band}, activity={self.activity}"

    @property
    def age_adjusted(self) -> bool:
        """True when the percentiles come from age centile curves."""
        return self.age_band.startswith("curve@")

    def entry(self, muscle: str, side: str = _LR_MEAN) -> dict[str, float] | None:
        """Percentile entry of ``muscle`` on ``side`` (``"lr_mean"``, ``"left"``, ``"right"``), or ``None``."""
        block = self.muscles if side == _LR_MEAN else self.per_side.get(side, {})
        return block.get(muscle)


@dataclass(frozen=True)
class Reference:
    """A validated normative reference (see the module docstring for the schema).

    Args:
        data: the reference object; validated and deep-copied by :meth:`from_dict`.
        path: the file it was read from, if any.
    """

    data: dict[str, Any]
    path: Path | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> Reference:
        """Validate ``data`` and wrap a deep copy of it."""
        validate_reference(data, path if path is not None else "<reference dict>")
        return cls(copy.deepcopy(dict(data)), Path(path) if path is not None else None)

    @property
    def reference_id(self) -> str:
        return str(self.data["reference_id"])

    @property
    def version(self) -> str:
        return str(self.data["version"])

    @property
    def n(self) -> int:
        return int(self.data["n"])

    @property
    def strata(self) -> list[dict[str, Any]]:
        return list(self.data["strata"])

    def select(
        self,
        sex: str | None = None,
        age: float | str | None = None,
        activity: str | None = None,
        *,
        side: str = _LR_MEAN,
        allow_small_strata: bool = False,
        use_age_centiles: bool = True,
    ) -> StratumSelection:
        """Choose the most specific stratum that matches the subject, falling back to ``"all"`` per key.

        A stratum matches when each of its keys is ``"all"`` or equals the subject's level (age: the band that
        contains ``age`` in completed years, or the band label itself). Among matches the one with the most
        specific keys wins; ties go to the one specific in the earlier key of (sex, age_band, activity), sex first
        because sex differences in FF are the best documented, then to the larger n. Small strata are skipped
        while a larger one matches, unless ``allow_small_strata``. The pooled stratum always matches, so there is
        always an answer; :attr:`StratumSelection.fallback` lists the requested keys it could not honour.

        When ``use_age_centiles`` and ``age`` is a number and ``side`` is the L/R mean, a stratum with age centile
        curves (age_band ``"all"``) at least as specific in sex and activity as the chosen one takes precedence:
        its curves, interpolated linearly at ``age``, use every subject of the stratum rather than one band.

        Args:
            sex: e.g. ``"female"``, ``"F"``; ``None`` = not given.
            age: years, or an age-band label such as ``"30-39"``; ``None`` = not given.
            activity: activity level as spelled in the reference (case-insensitive); ``None`` = not given.
            side: ``"lr_mean"``, ``"left"`` or ``"right"``; curves exist only for the L/R mean.
            allow_small_strata: let a small stratum win over a larger, less specific one.
            use_age_centiles: prefer age centile curves when available.
        """
        req_sex = _norm_level(sex, "sex") if sex is not None else None
        req_act = _norm_level(activity, "activity") if activity is not None else None
        req_age: float | str | None
        if age is None:
            req_age = None
        elif isinstance(age, str):
            req_age = age.strip().lower()
        else:
            req_age = float(age)
            if not math.isfinite(req_age):
                req_age = None
        requested = {"sex": req_sex, "age": req_age, "activity": req_act}

        def level(stratum: Mapping[str, Any], key: str) -> str:
            return _norm_level(stratum[key], key)

        def matches(stratum: Mapping[str, Any]) -> bool:
            s, a, band = level(stratum, "sex"), level(stratum, "activity"), level(stratum, "age_band")
            if s != _ALL and s != req_sex:
                return False
            if a != _ALL and a != req_act:
                return False
            if band == _ALL:
                return True
            if isinstance(req_age, float):
                parsed = _parse_band(band)
                return parsed is not None and _age_in_band(req_age, parsed)
            return req_age is not None and band == req_age

        def rank(item: tuple[int, Mapping[str, Any]], keys: Sequence[str] = _STRATUM_KEYS) -> tuple[Any, ...]:
            i, stratum = item
            specific = tuple(level(stratum, k) != _ALL for k in keys)
            return (sum(specific), specific, int(stratum["n"]), -i)

        candidates = [(i, s) for i, s in enumerate(self.data["strata"]) if matches(s)]
        large = [c for c in candidates if not c[1].get("small_stratum", False)]
        pool = candidates if allow_small_strata or not large else large
        index, best = max(pool, key=rank)

        if use_age_centiles and side == _LR_MEAN and isinstance(req_age, float):
            curved = [c for c in pool if level(c[1], "age_band") == _ALL and "age_centiles" in c[1]]
            if curved:
                c_index, c_best = max(curved, key=lambda c: rank(c, ("sex", "activity")))
                if rank((c_index, c_best), ("sex", "activity"))[0] >= rank((index, best), ("sex", "activity"))[0]:
                    return self._curve_selection(c_index, c_best, req_age, requested)

        fallback = tuple(
            key
            for key, req in (("sex", req_sex), ("age_band", req_age), ("activity", req_act))
            if req is not None and level(best, key) == _ALL
        )
        if fallback:
            logger.info(
                "reference %s: no stratum for %s; using %s",
                self.reference_id,
                ", ".join(fallback),
                {k: best[k] for k in _STRATUM_KEYS},
            )
        return StratumSelection(
            sex=str(best["sex"]),
            age_band=str(best["age_band"]),
            activity=str(best["activity"]),
            n=int(best["n"]),
            small_stratum=bool(best.get("small_stratum", False)),
            muscles={m: dict(e) for m, e in best["muscles"].items()},
            per_side={s: {m: dict(e) for m, e in b.items()} for s, b in best.get("per_side", {}).items()},
            requested=requested,
            fallback=fallback,
            index=index,
        )

    def _curve_selection(
        self, index: int, stratum: Mapping[str, Any], age: float, requested: dict[str, Any]
    ) -> StratumSelection:
        curves = stratum["age_centiles"]
        ages = np.asarray(curves["ages"], dtype=float)
        lo, hi = curves.get("fitted_age_range", [ages[0], ages[-1]])
        clamped = not (max(lo, ages[0]) <= age <= min(hi, ages[-1]))
        muscles: dict[str, dict[str, float]] = {}
        for muscle, table in curves["muscles"].items():
            # Linear interpolation between tabulated ages keeps the centiles ordered (a convex combination).
            muscles[muscle] = {k: float(np.interp(age, ages, np.asarray(v, dtype=float))) for k, v in table.items()}
        fallback = tuple(
            key
            for key, req in (("sex", requested["sex"]), ("activity", requested["activity"]))
            if req is not None and _norm_level(stratum[key], key) == _ALL
        )
        return StratumSelection(
            sex=str(stratum["sex"]),
            age_band=f"curve@{age:g}",
            activity=str(stratum["activity"]),
            n=int(curves.get("n", stratum["n"])),
            small_stratum=bool(stratum.get("small_stratum", False)),
            muscles=muscles,
            per_side={},
            requested=requested,
            fallback=fallback,
            index=index,
            age_clamped=clamped,
        )


def load_reference(path: str | os.PathLike[str] | None = None) -> Reference:
    """Read and validate a reference file.

    Args:
        path: the JSON file; ``None`` = the paper's reference shipped with the bundle (``DEFAULT_REFERENCE_PATH``).

    Raises:
        FileNotFoundError: no such file.
        ReferenceFormatError: not JSON, or not the schema; the message names the file and the problem.
    """
    file = Path(path) if path is not None else DEFAULT_REFERENCE_PATH
    if not file.is_file():
        raise FileNotFoundError(f"normative reference file not found: {file}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReferenceFormatError(f"{file}: not valid JSON ({err})") from err
    return Reference.from_dict(data, file)


# ----------------------------------------------------------------------------------------------------------------
# comparing a subject
# ----------------------------------------------------------------------------------------------------------------


def _subject_values(
    ff_pct: Mapping[str, Any] | pd.Series | pd.DataFrame, value_column: str
) -> tuple[dict[tuple[str, str], float], str | None]:
    """Normalise the subject's input to {(muscle, side): FF %} with side in lr_mean / left / right."""
    values: dict[tuple[str, str], float] = {}
    subject: str | None = None

    def put(muscle: str, side: str, value: Any) -> None:
        if muscle not in MUSCLES:
            raise ValueError(f"unknown muscle {muscle!r}; expected one of {MUSCLES} (or '<muscle>_left/_right')")
        if (muscle, side) in values:
            raise ValueError(f"two values for muscle {muscle!r}, side {side!r}")
        number = float(value) if value is not None and not pd.isna(value) else math.nan
        values[(muscle, side)] = number

    if isinstance(ff_pct, pd.DataFrame):
        if "muscle" not in ff_pct.columns or value_column not in ff_pct.columns:
            raise ValueError(
                f"the subject table needs columns 'muscle' and {value_column!r}; got {list(ff_pct.columns)}"
            )
        if "subject" in ff_pct.columns:
            subjects = ff_pct["subject"].dropna().unique()
            if len(subjects) > 1:
                raise ValueError(
                    f"compare_to_reference takes one subject at a time (sex, age and activity are "
                    f"per subject); the table holds {len(subjects)}: group it by 'subject' first"
                )
            subject = str(subjects[0]) if len(subjects) else None
        for _, row in ff_pct.iterrows():
            side = _norm_side(row["side"]) if "side" in ff_pct.columns and not pd.isna(row["side"]) else _LR_MEAN
            put(str(row["muscle"]), side, row[value_column])
        return values, subject
    items = ff_pct.items()
    for key, value in items:
        name = str(key)
        for side in SIDES:
            if name.endswith(f"_{side}") and name[: -len(side) - 1] in MUSCLES:
                put(name[: -len(side) - 1], side, value)
                break
        else:
            put(name, _LR_MEAN, value)
    return values, subject


def _describe_fit(entry: Mapping[str, float], distribution: str) -> tuple[QuartileFit | None, list[str]]:
    flags: list[str] = []
    p25, p50, p75 = (float(entry[_pkey(q)]) for q in _REQUIRED_PERCENTILES)
    try:
        return fit_quartiles(p25, p50, p75, distribution), flags
    except ValueError:
        pass
    if distribution != "normal":
        try:
            fit = fit_quartiles(p25, p50, p75, "normal")
            flags.append(f"{distribution}_not_applicable_normal_used")
            return fit, flags
        except ValueError:
            pass
    flags.append("degenerate_reference_quartiles")
    return None, flags


def compare_to_reference(
    ff_pct: Mapping[str, Any] | pd.Series | pd.DataFrame,
    reference: Reference | str | os.PathLike[str] | None = None,
    sex: str | None = None,
    age: float | str | None = None,
    activity: str | None = None,
    *,
    distribution: str = "lognormal",
    allow_small_strata: bool = False,
    use_age_centiles: bool = True,
    value_column: str = "ff_mean_pct",
) -> pd.DataFrame:
    """Place one subject's per-muscle fat fractions against a normative reference.

    Percentiles and z-scores are approximations: with only quartiles they come from ``distribution`` fitted to
    them (log-normal by default, exact on the median, residuals on Q1/Q3 reported); with a percentile table
    (user-built references) from monotone piecewise-linear interpolation with fitted tails
    (``distribution == "empirical_interpolated"``). See the module docstring for the exact rules.

    Args:
        ff_pct: FF in percent. Either a mapping ``{muscle: value}`` (L/R mean) that may also hold
            ``"<muscle>_left"``/``"<muscle>_right"`` keys, or a table of one subject with columns ``muscle``,
            ``value_column`` and optionally ``side`` (``left``/``right``/``mean``) and ``subject``. A missing muscle
            or a NaN value gives a row with NaN statistics and the flag ``missing_value``, never 0. When sides are
            given without their mean, the L/R mean is computed (the paper's convention) and flagged.
        reference: a :class:`Reference`, a path to a reference file, or ``None`` for the shipped paper reference.
        sex: the subject's sex (``female``/``male``, or ``F``/``M``); ``None`` = unknown.
        age: years, or an age-band label; ``None`` = unknown.
        activity: activity level, as spelled in the reference; ``None`` = unknown.
        distribution: fitted to the quartiles: ``"lognormal"``, ``"shifted_lognormal"`` or ``"normal"``.
        allow_small_strata: see :meth:`Reference.select`.
        use_age_centiles: see :meth:`Reference.select`.
        value_column: the FF column of a table input.

    Returns:
        One row per muscle for the L/R mean (and per side when sides were given), with the columns ``subject``
        (when known), ``muscle``, ``side``, ``value_column``, ``reference_id``, ``reference_version``, ``stratum``,
        ``stratum_sex``, ``stratum_age_band``, ``stratum_activity``, ``stratum_fallback`` (comma-separated keys
        that fell back to "all"), ``n`` (subjects in the stratum), ``n_muscle``, ``small_stratum``, one column per
        reference percentile (``p25``, ``p50``, ``p75`` and more when present), ``band``, ``percentile_approx``
        (0-100), ``z_score_approx``, ``above_p95_approx``, ``distribution``, ``tail_model``,
        ``fit_q1_residual_pct``, ``fit_q3_residual_pct`` and ``flags`` (semicolon-separated).
        ``DataFrame.attrs`` holds the reference provenance and a statement that the statistics are approximate.

        Flags: ``missing_value``; ``lr_mean_from_sides``; ``muscle_not_in_reference``;
        ``side_compared_to_lr_mean_reference`` (no per-side values in the reference); ``small_stratum``;
        ``age_centile_curve``; ``age_outside_centile_range`` (clamped); ``age_outside_reference_population``;
        ``in_tail`` (beyond the tabulated percentiles: tail from the fitted distribution); ``extreme_value``
        (the tail saturated numerically; z from the fitted distribution); ``outside_distribution_support``
        (e.g. FF <= 0 under a log-normal: percentile 0, z NaN); ``<distribution>_not_applicable_normal_used``;
        ``degenerate_reference_quartiles`` (p25 == p75: no percentile).

    Warns:
        UserWarning: when a small stratum is used.

    Example:
        >>> df = compare_to_reference({"psoas": 13.4, "iliacus": 11.6})
        >>> df.loc[df.muscle == "psoas", "band"].item()
        'within_iqr'
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; expected one of {DISTRIBUTIONS}")
    ref = reference if isinstance(reference, Reference) else load_reference(reference)
    values, subject = _subject_values(ff_pct, value_column)
    given_sides = sorted({side for (_, side) in values if side != _LR_MEAN}, key=SIDES.index)
    derived: set[str] = set()
    for muscle in MUSCLES:
        if (muscle, _LR_MEAN) not in values and given_sides:
            left, right = values.get((muscle, "left"), math.nan), values.get((muscle, "right"), math.nan)
            values[(muscle, _LR_MEAN)] = 0.5 * (left + right)  # NaN when either side is missing
            derived.add(muscle)

    out_sides = [_LR_MEAN, *(["left", "right"] if given_sides else [])]
    selections = {
        side: ref.select(
            sex, age, activity, side=side, allow_small_strata=allow_small_strata, use_age_centiles=use_age_centiles
        )
        for side in out_sides
    }
    rows: list[dict[str, Any]] = []
    pcols: set[float] = set()
    small_used: set[str] = set()
    population = ref.data.get("population", {})
    age_range = population.get("age_range_years") if isinstance(population, Mapping) else None
    for side in out_sides:
        sel = selections[side]
        for muscle in MUSCLES:
            flags: list[str] = []
            value = values.get((muscle, side), math.nan)
            if math.isnan(value):
                flags.append("missing_value")
            if side == _LR_MEAN and muscle in derived:
                flags.append("lr_mean_from_sides")
            entry = sel.entry(muscle, side)
            if entry is None and side != _LR_MEAN:
                entry = sel.entry(muscle, _LR_MEAN)
                if entry is not None:
                    flags.append("side_compared_to_lr_mean_reference")
            if sel.small_stratum:
                flags.append("small_stratum")
                small_used.add(sel.label)
            if sel.age_adjusted:
                flags.append("age_centile_curve")
            if sel.age_clamped:
                flags.append("age_outside_centile_range")
            if (
                isinstance(age, (int, float))
                and isinstance(age_range, list)
                and len(age_range) == 2
                and not age_range[0] <= age <= age_range[1]
            ):
                flags.append("age_outside_reference_population")
            row: dict[str, Any] = {
                "muscle": muscle,
                "side": side,
                value_column: value,
                "reference_id": ref.reference_id,
                "reference_version": ref.version,
                "stratum": sel.label,
                "stratum_sex": sel.sex,
                "stratum_age_band": sel.age_band,
                "stratum_activity": sel.activity,
                "stratum_fallback": ",".join(sel.fallback),
                "n": sel.n,
                "n_muscle": math.nan,
                "small_stratum": sel.small_stratum,
                "band": None,
                "percentile_approx": math.nan,
                "z_score_approx": math.nan,
                "above_p95_approx": None,
                "distribution": None,
                "tail_model": None,
                "fit_q1_residual_pct": math.nan,
                "fit_q3_residual_pct": math.nan,
            }
            if subject is not None:
                row = {"subject": subject, **row}
            if entry is None:
                flags.append("muscle_not_in_reference")
                row["flags"] = ";".join(flags)
                rows.append(row)
                continue
            qs, vs = _sorted_table(entry)
            pcols.update(qs.tolist())
            row.update({_pkey(q): v for q, v in zip(qs, vs)})
            row["n_muscle"] = int(entry.get("n", sel.n))
            fit, fit_flags = _describe_fit(entry, distribution)
            flags.extend(fit_flags)
            empirical = len(qs) > len(_REQUIRED_PERCENTILES)
            if fit is not None:
                row["distribution"] = "empirical_interpolated" if empirical else fit.label
                row["tail_model"] = fit.label
                row["fit_q1_residual_pct"] = fit.q1_residual_pct
                row["fit_q3_residual_pct"] = fit.q3_residual_pct
            if not math.isnan(value):
                p25, p75 = entry["p25"], entry["p75"]
                band = "below_q1" if value < p25 else ("above_q3" if value > p75 else "within_iqr")
                if band == "above_q3" and "p95" in entry and value > entry["p95"]:
                    band = "above_p95"
                row["band"] = band
                if fit is not None:
                    if empirical:
                        pct, in_tail = _empirical_percentile(value, qs, vs, fit)
                        if in_tail:
                            flags.append("in_tail")
                        z = _z_of_percentile(pct)
                    else:
                        z = fit.z(value)
                        pct = float(100.0 * stats.norm.cdf(z))
                    if math.isinf(z) and math.isfinite(fit.z(value)):
                        # The scaled tail saturated in floating point; the fitted z is the best finite answer.
                        flags.append("extreme_value")
                        z = fit.z(value)
                    elif math.isinf(z):
                        # A value the fitted distribution cannot produce (e.g. FF <= 0 under a log-normal).
                        flags.append("outside_distribution_support")
                        z = math.nan
                    row["percentile_approx"] = pct
                    row["z_score_approx"] = z
                    row["above_p95_approx"] = bool(pct > 95.0)
            row["flags"] = ";".join(flags)
            rows.append(row)
    if small_used:
        warnings.warn(
            f"normative reference {ref.reference_id}: small stratum used ({'; '.join(sorted(small_used))}); "
            "its percentiles are imprecise",
            UserWarning,
            stacklevel=2,
        )
    df = pd.DataFrame(rows)
    # Percentile columns sit after n_muscle, in percentile order, so CSV headers are stable for a reference.
    pnames = [_pkey(q) for q in sorted(pcols)]
    for name in pnames:
        if name not in df.columns:
            df[name] = math.nan
    cols = list(df.columns)
    base = [c for c in cols if c not in pnames]
    at = base.index("small_stratum") + 1
    df = df[base[:at] + pnames + base[at:]]
    df.attrs.update(
        {
            "reference_id": ref.reference_id,
            "reference_version": ref.version,
            "reference_path": str(ref.path) if ref.path else None,
            "ff_definition": ref.data["ff_definition"].get("statistic"),
            "approximation": "percentile_approx and z_score_approx are approximations under the distribution named "
            "in the 'distribution' column (z = Phi^-1(percentile)); bands use the reference values.",
        }
    )
    return df


# ----------------------------------------------------------------------------------------------------------------
# age centile curves
# ----------------------------------------------------------------------------------------------------------------


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
        df = pd.DataFrame(values, columns=[_pkey(c) for c in self.centiles])
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


# ----------------------------------------------------------------------------------------------------------------
# building and saving a reference
# ----------------------------------------------------------------------------------------------------------------


def _percentile_entry(values: np.ndarray, percentiles: Sequence[float]) -> dict[str, Any]:
    # numpy's default method="linear" (Hyndman & Fan type 7), the same as pandas.quantile.
    qv = np.percentile(values, percentiles)
    entry: dict[str, Any] = {"n": int(values.size)}
    entry.update({_pkey(q): round(float(v), 6) for q, v in zip(percentiles, qv)})
    return entry


def build_reference(
    table: pd.DataFrame,
    group_columns: Sequence[str] = ("sex", "age_band", "activity"),
    min_n: int = 20,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    reference_id: str = "user_reference",
    version: str = "1.0.0",
    description: str = "",
    *,
    age_bands: Sequence[tuple[int, int]] = DEFAULT_AGE_BANDS,
    value_column: str = "ff_mean_pct",
    population: Mapping[str, Any] | None = None,
    ff_definition: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
    age_centile_min_n: int = 100,
    age_centiles: Sequence[float] = DEFAULT_AGE_CENTILES,
    age_centile_ages: Sequence[float] = CENTILE_AGES,
    age_centile_basis: str = "linear",
) -> dict[str, Any]:
    """Build a reference (schema of this module) from a cohort table, stratified by sex, age band and activity.

    Strata are every combination of a subset of ``group_columns`` with the levels present, from the pooled
    stratum (all keys ``"all"``) to the full cross-classification, so that :meth:`Reference.select` can fall back
    key by key. Percentiles use ``numpy.percentile`` with its default linear interpolation (Hyndman & Fan type 7)
    over the subjects of a stratum; a stratum with fewer than ``min_n`` subjects is kept but flagged
    ``small_stratum``. Strata with age_band ``"all"`` and at least ``age_centile_min_n`` subjects also get linear
    quantile-regression centile curves of the L/R mean against age (:func:`fit_age_centiles`), tabulated at
    ``age_centile_ages``.

    Args:
        table: long format, one row per (subject, muscle, side): columns ``subject``, ``muscle`` (names from
            ``scripts.labels.MUSCLES``; others are dropped with a warning), ``side`` (``left``/``right``/``mean``),
            ``value_column`` (FF %), and the participant columns the strata need: ``sex``, ``age`` (years; or a
            ready ``age_band``), ``activity``; ``bmi`` is optional and only summarised. The L/R mean is computed
            from left and right where a subject has no ``mean`` row. NaN values are left out of that muscle's n.
        group_columns: a subset of ``("sex", "age_band", "activity")``.
        min_n: strata with fewer subjects are flagged ``small_stratum``.
        percentiles: 0-100; must include 25, 50 and 75.
        reference_id: stable name of the reference.
        version: version of the values.
        description: free text.
        age_bands: inclusive completed-year bands ``(lo, hi)``; a subject aged lo <= age < hi + 1 belongs to it.
        value_column: the FF column.
        population: merged into the computed population summary (e.g. ``{"healthy": True}``).
        ff_definition: how the FF values were made; default: the paper's whole-muscle F/(F+W) mean, not PDFF.
        source: merged into ``{"citation": description or "user-built reference", "doi": None}``.
        age_centile_min_n: fewest subjects with an age (and FF) for centile curves in a stratum; ``0`` switches
            the curves off.
        age_centiles: centiles of the curves; must include 25, 50 and 75.
        age_centile_ages: ages at which the curves are tabulated.
        age_centile_basis: ``"linear"`` or ``"natural_spline"``.

    Returns:
        The reference dict, already validated; write it with :func:`save_reference`.

    Raises:
        ValueError: missing columns, bad arguments, duplicate rows, a participant with conflicting sex/age/activity.
    """
    group_columns = tuple(group_columns)
    if not set(group_columns) <= set(_STRATUM_KEYS) or len(set(group_columns)) != len(group_columns):
        raise ValueError(f"group_columns must be distinct names among {_STRATUM_KEYS}, got {group_columns}")
    if not _is_int(min_n) or min_n < 1:
        raise ValueError(f"min_n must be a positive integer, got {min_n!r}")
    pcts = tuple(sorted({float(q) for q in percentiles}))
    acs = tuple(sorted({float(q) for q in age_centiles}))
    for name, qs in (("percentiles", pcts), ("age_centiles", acs)):
        if any(not 0.0 < q < 100.0 for q in qs) or not set(_REQUIRED_PERCENTILES) <= set(qs):
            raise ValueError(f"{name} must lie within (0, 100) and include 25, 50 and 75, got {qs}")
    bands = [(int(lo), int(hi)) for lo, hi in age_bands]
    for (lo, hi), nxt in zip(bands, bands[1:] + [None]):
        if lo > hi or (nxt is not None and nxt[0] <= hi):
            raise ValueError(f"age_bands must be increasing, non-overlapping (lo, hi) pairs, got {bands}")

    needed = ["subject", "muscle", "side", value_column]
    if "sex" in group_columns:
        needed.append("sex")
    if "activity" in group_columns:
        needed.append("activity")
    if "age_band" in group_columns and "age" not in table.columns and "age_band" not in table.columns:
        needed.append("age")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"the cohort table lacks columns {missing}; it has {list(table.columns)}")

    df = table.copy()
    unknown = sorted(set(df["muscle"].astype(str)) - set(MUSCLES))
    if unknown:
        warnings.warn(f"build_reference: rows of unknown muscles {unknown} dropped", UserWarning, stacklevel=2)
        df = df[df["muscle"].astype(str).isin(MUSCLES)]
    df["subject"] = df["subject"].astype(str)
    df["side"] = df["side"].map(_norm_side)
    df[value_column] = pd.to_numeric(df[value_column], errors="coerce")
    dup = df.duplicated(["subject", "muscle", "side"])
    if dup.any():
        first = df.loc[dup, ["subject", "muscle", "side"]].iloc[0].tolist()
        raise ValueError(f"duplicate rows for (subject, muscle, side), e.g. {first}")

    # One row per participant; a participant column must not disagree with itself across rows.
    pcols = [c for c in ("sex", "age", "age_band", "activity", "bmi") if c in df.columns]
    participants = df.groupby("subject")[pcols].agg(lambda s: s.dropna().unique().tolist()) if pcols else None
    part = pd.DataFrame(index=sorted(df["subject"].unique()))
    for col in pcols:
        assert participants is not None
        conflict = participants[col].map(len) > 1
        if conflict.any():
            raise ValueError(
                f"participant column {col!r} differs between rows of subject "
                f"{participants.index[conflict][0]!r}: {participants[col][conflict].iloc[0]}"
            )
        part[col] = participants[col].map(lambda v: v[0] if v else np.nan)
    for col in ("sex", "activity"):
        if col in part.columns:
            part[col] = part[col].map(lambda v: np.nan if pd.isna(v) else _norm_level(v, col))
            if (part[col] == _ALL).any():
                raise ValueError(f"the level 'all' is reserved for pooled strata; found it in column {col!r}")
    if "age" in part.columns:
        part["age"] = pd.to_numeric(part["age"], errors="coerce")

        def band_of(age: float) -> Any:
            for lo, hi in bands:
                if _age_in_band(age, (lo, hi)):
                    return _band_label(lo, hi)
            return np.nan

        part["age_band"] = part["age"].map(lambda a: np.nan if pd.isna(a) else band_of(float(a)))
        outside = int((part["age"].notna() & part["age_band"].isna()).sum())
        if "age_band" in group_columns and outside:
            warnings.warn(
                f"build_reference: {outside} subject(s) outside the age bands {bands}; they count only "
                "in strata pooled over age",
                UserWarning,
                stacklevel=2,
            )
    elif "age_band" in part.columns:
        part["age_band"] = part["age_band"].map(lambda v: np.nan if pd.isna(v) else str(v).strip().lower())

    # Wide values: (side, muscle) columns; compute the L/R mean where only the sides were given.
    wide = df.pivot(index="subject", columns=["side", "muscle"], values=value_column).reindex(part.index)
    for muscle in MUSCLES:
        if ("left", muscle) not in wide.columns or ("right", muscle) not in wide.columns:
            continue
        lr = 0.5 * (wide[("left", muscle)] + wide[("right", muscle)])  # NaN unless both sides are known
        if (_LR_MEAN, muscle) in wide.columns:
            wide[(_LR_MEAN, muscle)] = wide[(_LR_MEAN, muscle)].fillna(lr)
        else:
            wide[(_LR_MEAN, muscle)] = lr
    has_sides = any(side in wide.columns.get_level_values(0) for side in SIDES)

    def muscle_block(subjects: pd.Index, side: str) -> dict[str, Any]:
        block: dict[str, Any] = {}
        for muscle in MUSCLES:
            if (side, muscle) not in wide.columns:
                continue
            vals = wide.loc[subjects, (side, muscle)].to_numpy(dtype=float)
            vals = vals[np.isfinite(vals)]
            if vals.size:
                block[muscle] = _percentile_entry(vals, pcts)
        return block

    strata: list[dict[str, Any]] = []
    for r in range(len(group_columns) + 1):
        for keys in combinations(group_columns, r):
            sub = part.dropna(subset=list(keys)) if keys else part
            groups = sub.groupby(list(keys), sort=True) if keys else [((), sub)]
            for level, members in groups:
                levels = level if isinstance(level, tuple) else (level,)
                spec = dict(zip(keys, (str(v) for v in levels)))
                muscles = muscle_block(members.index, _LR_MEAN)
                if not muscles:
                    continue
                stratum: dict[str, Any] = {k: spec.get(k, _ALL) for k in _STRATUM_KEYS}
                stratum.update(
                    {"n": int(len(members)), "small_stratum": bool(len(members) < min_n), "muscles": muscles}
                )
                if has_sides:
                    per_side = {s: b for s in SIDES if (b := muscle_block(members.index, s))}
                    if per_side:
                        stratum["per_side"] = per_side
                if stratum["age_band"] == _ALL and "age" in part.columns and age_centile_min_n > 0:
                    curves = _stratum_curves(members, wide, acs, age_centile_min_n, age_centile_ages, age_centile_basis)
                    if curves is not None:
                        stratum["age_centiles"] = curves
                strata.append(stratum)

    population_block: dict[str, Any] = {"healthy": None}
    if "age" in part.columns and part["age"].notna().any():
        population_block["age_range_years"] = [float(part["age"].min()), float(part["age"].max())]
    for col in ("sex", "activity", "age_band"):
        if col in part.columns:
            population_block[f"{col}_counts"] = {str(k): int(v) for k, v in part[col].value_counts().items()}
    if "bmi" in part.columns:
        bmi = pd.to_numeric(part["bmi"], errors="coerce").dropna()
        if len(bmi):
            population_block["bmi_median"] = round(float(bmi.median()), 3)
    population_block.update(dict(population or {}))

    notes = [f"not stratified by {k}" for k in _STRATUM_KEYS if k not in group_columns]
    ref: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "reference_id": reference_id,
        "version": version,
        "description": description,
        "source": {
            "citation": description or "user-built reference",
            "doi": None,
            "built_by": "scripts.normative.reference.build_reference",
            **dict(source or {}),
        },
        "n": int(len(part)),
        "population": population_block,
        "ff_definition": (
            dict(ff_definition)
            if ff_definition is not None
            else {
                "statistic": "mean F/(F+W) over the whole muscle label, L/R mean, percent, no erosion",
                "is_pdff": False,
                "note": f"not PDFF unless the cohort's FF maps were PDFF; values from column {value_column!r}",
            }
        ),
        "unit": "percent",
        "side": _LR_MEAN,
        "percentile_method": "numpy.percentile, default method 'linear' (Hyndman & Fan type 7), over the subjects "
        "of each stratum",
        "unknown": notes,
        "group_columns": list(group_columns),
        "min_n": int(min_n),
        "age_bands": [[lo, hi] for lo, hi in bands],
        "strata": strata,
    }
    validate_reference(ref, f"build_reference({reference_id!r})")
    return ref


def _stratum_curves(
    members: pd.DataFrame,
    wide: pd.DataFrame,
    centiles: Sequence[float],
    min_n: int,
    ages: Sequence[float],
    basis: str,
) -> dict[str, Any] | None:
    """Age centile table of one stratum (L/R mean), or ``None`` when too few subjects have an age."""
    ages_known = members["age"].dropna()
    if len(ages_known) < min_n:
        return None
    grid = np.asarray(list(ages), dtype=float)
    table: dict[str, Any] = {}
    n_used = 0
    for muscle in MUSCLES:
        if (_LR_MEAN, muscle) not in wide.columns:
            continue
        y = wide.loc[ages_known.index, (_LR_MEAN, muscle)].to_numpy(dtype=float)
        ok = np.isfinite(y)
        if ok.sum() < min_n:
            continue
        curves = fit_age_centiles(ages_known.to_numpy(dtype=float)[ok], y[ok], centiles, basis=basis)
        values = curves(grid)
        table[muscle] = {_pkey(c): [round(float(v), 6) for v in values[:, j]] for j, c in enumerate(centiles)}
        n_used = max(n_used, int(ok.sum()))
    if not table:
        return None
    return {
        "method": f"{basis} quantile regression of the L/R mean on age (linprog HiGHS), crossing centiles sorted; "
        "clamped outside the fitted age range",
        "basis": basis,
        "n": n_used,
        "fitted_age_range": [float(ages_known.min()), float(ages_known.max())],
        "ages": [float(a) for a in grid],
        "muscles": table,
    }


def save_reference(ref: Mapping[str, Any], path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Validate ``ref`` and write it as indented JSON, atomically (temporary file in the same folder + os.replace).

    Args:
        ref: a reference dict (e.g. from :func:`build_reference`).
        path: the target file; its folder is created.
        overwrite: replace an existing file whose content differs. An identical file is left as it is.

    Raises:
        ReferenceFormatError: ``ref`` does not follow the schema (NaN values included: JSON has no NaN).
        FileExistsError: ``path`` exists with different content and ``overwrite`` is False.
    """
    target = Path(path)
    validate_reference(ref, target)
    try:
        text = json.dumps(ref, indent=2, allow_nan=False) + "\n"
    except ValueError as err:
        raise ReferenceFormatError(f"{target}: cannot be written as JSON ({err}); NaN and inf are not allowed") from err
    atomic_write_text(target, text, overwrite=overwrite)
    return target
