"""Placing one subject's per-muscle fat fractions against a normative reference.

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
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scripts.labels import MUSCLES, SIDES
from scripts.normative.conventions import LR_MEAN, REQUIRED_PERCENTILES, norm_side, pkey, sorted_table
from scripts.normative.distributions import (
    DISTRIBUTIONS,
    QuartileFit,
    empirical_percentile,
    fit_quartiles,
    z_of_percentile,
)
from scripts.normative.reference_file import load_reference
from scripts.normative.strata import Reference, StratumSelection

__all__ = ["compare_to_reference"]

_APPROXIMATION = (
    "percentile_approx and z_score_approx are approximations under the distribution named "
    "in the 'distribution' column (z = Phi^-1(percentile)); bands use the reference values."
)


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
            side = norm_side(row["side"]) if "side" in ff_pct.columns and not pd.isna(row["side"]) else LR_MEAN
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
            put(name, LR_MEAN, value)
    return values, subject


def _describe_fit(entry: Mapping[str, float], distribution: str) -> tuple[QuartileFit | None, list[str]]:
    """The distribution fitted to the entry's quartiles, or the normal when it does not apply, with flags."""
    flags: list[str] = []
    p25, p50, p75 = (float(entry[pkey(q)]) for q in REQUIRED_PERCENTILES)
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


def _add_lr_means(values: dict[tuple[str, str], float], given_sides: list[str]) -> set[str]:
    """Fill in the L/R mean of each muscle given only by side; returns the muscles so derived."""
    derived: set[str] = set()
    for muscle in MUSCLES:
        if (muscle, LR_MEAN) not in values and given_sides:
            left, right = values.get((muscle, "left"), math.nan), values.get((muscle, "right"), math.nan)
            values[(muscle, LR_MEAN)] = 0.5 * (left + right)  # NaN when either side is missing
            derived.add(muscle)
    return derived


def _lookup_entry(sel: StratumSelection, muscle: str, side: str, flags: list[str]) -> dict[str, float] | None:
    """The reference entry for ``muscle`` on ``side``; a side without per-side values uses the L/R mean (flagged)."""
    entry = sel.entry(muscle, side)
    if entry is None and side != LR_MEAN:
        entry = sel.entry(muscle, LR_MEAN)
        if entry is not None:
            flags.append("side_compared_to_lr_mean_reference")
    return entry


def _stratum_flags(sel: StratumSelection, age: float | str | None, age_range: Any) -> list[str]:
    flags: list[str] = []
    if sel.small_stratum:
        flags.append("small_stratum")
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
    return flags


def _base_row(
    muscle: str, side: str, value: float, value_column: str, ref: Reference, sel: StratumSelection, subject: str | None
) -> dict[str, Any]:
    """A row with the stratum's description and NaN statistics, filled in later when the muscle is compared."""
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
    return row


def _band(value: float, entry: Mapping[str, float]) -> str:
    p25, p75 = entry["p25"], entry["p75"]
    band = "below_q1" if value < p25 else ("above_q3" if value > p75 else "within_iqr")
    if band == "above_q3" and "p95" in entry and value > entry["p95"]:
        band = "above_p95"
    return band


def _percentile_and_z(
    value: float, fit: QuartileFit, qs: np.ndarray, vs: np.ndarray, empirical: bool, flags: list[str]
) -> tuple[float, float]:
    """Approximate percentile (0-100) and z of ``value``; flags tails, saturation and values outside the support."""
    if empirical:
        pct, in_tail = empirical_percentile(value, qs, vs, fit)
        if in_tail:
            flags.append("in_tail")
        z = z_of_percentile(pct)
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
    return pct, z


def _compare_entry(
    row: dict[str, Any],
    value: float,
    entry: Mapping[str, float],
    sel: StratumSelection,
    distribution: str,
    flags: list[str],
) -> np.ndarray:
    """Fill ``row`` with the reference percentiles, the fit and the subject's placement; returns the percentiles."""
    qs, vs = sorted_table(entry)
    row.update({pkey(q): v for q, v in zip(qs, vs)})
    row["n_muscle"] = int(entry.get("n", sel.n))
    fit, fit_flags = _describe_fit(entry, distribution)
    flags.extend(fit_flags)
    empirical = len(qs) > len(REQUIRED_PERCENTILES)
    if fit is not None:
        row["distribution"] = "empirical_interpolated" if empirical else fit.label
        row["tail_model"] = fit.label
        row["fit_q1_residual_pct"] = fit.q1_residual_pct
        row["fit_q3_residual_pct"] = fit.q3_residual_pct
    if not math.isnan(value):
        row["band"] = _band(value, entry)
        if fit is not None:
            pct, z = _percentile_and_z(value, fit, qs, vs, empirical, flags)
            row["percentile_approx"] = pct
            row["z_score_approx"] = z
            row["above_p95_approx"] = bool(pct > 95.0)
    return qs


def _finish_table(rows: list[dict[str, Any]], pcols: set[float], ref: Reference) -> pd.DataFrame:
    """Rows to a table with the percentile columns in percentile order and the reference provenance in attrs."""
    df = pd.DataFrame(rows)
    # Percentile columns sit after n_muscle, in percentile order, so CSV headers are stable for a reference.
    pnames = [pkey(q) for q in sorted(pcols)]
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
            "approximation": _APPROXIMATION,
        }
    )
    return df


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
        allow_small_strata: see :meth:`scripts.normative.strata.Reference.select`.
        use_age_centiles: see :meth:`scripts.normative.strata.Reference.select`.
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
    # Over 80 lines only through its docstring (every argument and output column documented); the code is short.
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; expected one of {DISTRIBUTIONS}")
    ref = reference if isinstance(reference, Reference) else load_reference(reference)
    values, subject = _subject_values(ff_pct, value_column)
    given_sides = sorted({side for (_, side) in values if side != LR_MEAN}, key=SIDES.index)
    derived = _add_lr_means(values, given_sides)
    out_sides = [LR_MEAN, *(["left", "right"] if given_sides else [])]
    selections = {
        side: ref.select(
            sex, age, activity, side=side, allow_small_strata=allow_small_strata, use_age_centiles=use_age_centiles
        )
        for side in out_sides
    }
    rows: list[dict[str, Any]] = []
    pcols: set[float] = set()
    population = ref.data.get("population", {})
    age_range = population.get("age_range_years") if isinstance(population, Mapping) else None
    for side in out_sides:
        sel = selections[side]
        for muscle in MUSCLES:
            value = values.get((muscle, side), math.nan)
            flags = ["missing_value"] if math.isnan(value) else []
            if side == LR_MEAN and muscle in derived:
                flags.append("lr_mean_from_sides")
            entry = _lookup_entry(sel, muscle, side, flags)
            flags.extend(_stratum_flags(sel, age, age_range))
            row = _base_row(muscle, side, value, value_column, ref, sel, subject)
            if entry is None:
                flags.append("muscle_not_in_reference")
            else:
                pcols.update(_compare_entry(row, value, entry, sel, distribution, flags).tolist())
            row["flags"] = ";".join(flags)
            rows.append(row)
    small_used = {selections[side].label for side in out_sides if selections[side].small_stratum}
    if small_used:
        warnings.warn(
            f"normative reference {ref.reference_id}: small stratum used ({'; '.join(sorted(small_used))}); "
            "its percentiles are imprecise",
            UserWarning,
            stacklevel=2,
        )
    return _finish_table(rows, pcols, ref)
