"""Building a normative reference from a cohort table: percentiles per stratum and age centile curves.

Strata are every combination of a subset of (sex, age band, activity) with the levels present, from the pooled
stratum to the full cross-classification; percentiles are ``numpy.percentile`` (Hyndman & Fan type 7) over the
subjects of a stratum. The result follows :mod:`scripts.normative.schema` and is written with
:func:`scripts.normative.reference_file.save_reference`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scripts.labels import MUSCLES, SIDES
from scripts.normative.centiles import CENTILE_AGES, DEFAULT_AGE_CENTILES, fit_age_centiles
from scripts.normative.conventions import (
    ALL,
    LR_MEAN,
    REQUIRED_PERCENTILES,
    STRATUM_KEYS,
    age_in_band,
    band_label,
    is_int,
    norm_level,
    norm_side,
    pkey,
)
from scripts.normative.schema import FORMAT_VERSION, validate_reference

__all__ = ["DEFAULT_AGE_BANDS", "DEFAULT_PERCENTILES", "build_reference"]

#: Inclusive completed-year age bands; the last one also takes the 70-year-olds of a 20-70 cohort.
DEFAULT_AGE_BANDS: tuple[tuple[int, int], ...] = ((20, 29), (30, 39), (40, 49), (50, 59), (60, 70))
DEFAULT_PERCENTILES: tuple[float, ...] = (5, 10, 25, 50, 75, 90, 95)


def _percentile_entry(values: np.ndarray, percentiles: Sequence[float]) -> dict[str, Any]:
    # numpy's default method="linear" (Hyndman & Fan type 7), the same as pandas.quantile.
    qv = np.percentile(values, percentiles)
    entry: dict[str, Any] = {"n": int(values.size)}
    entry.update({pkey(q): round(float(v), 6) for q, v in zip(percentiles, qv)})
    return entry


def _check_arguments(
    group_columns: Sequence[str],
    min_n: int,
    percentiles: Sequence[float],
    age_centiles: Sequence[float],
    age_bands: Sequence[tuple[int, int]],
) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...], list[tuple[int, int]]]:
    """Validated group columns, sorted percentiles and age centiles, and integer age bands."""
    group_columns = tuple(group_columns)
    if not set(group_columns) <= set(STRATUM_KEYS) or len(set(group_columns)) != len(group_columns):
        raise ValueError(f"group_columns must be distinct names among {STRATUM_KEYS}, got {group_columns}")
    if not is_int(min_n) or min_n < 1:
        raise ValueError(f"min_n must be a positive integer, got {min_n!r}")
    pcts = tuple(sorted({float(q) for q in percentiles}))
    acs = tuple(sorted({float(q) for q in age_centiles}))
    for name, qs in (("percentiles", pcts), ("age_centiles", acs)):
        if any(not 0.0 < q < 100.0 for q in qs) or not set(REQUIRED_PERCENTILES) <= set(qs):
            raise ValueError(f"{name} must lie within (0, 100) and include 25, 50 and 75, got {qs}")
    bands = [(int(lo), int(hi)) for lo, hi in age_bands]
    for (lo, hi), nxt in zip(bands, bands[1:] + [None]):
        if lo > hi or (nxt is not None and nxt[0] <= hi):
            raise ValueError(f"age_bands must be increasing, non-overlapping (lo, hi) pairs, got {bands}")
    return group_columns, pcts, acs, bands


def _clean_rows(table: pd.DataFrame, group_columns: tuple[str, ...], value_column: str) -> pd.DataFrame:
    """The cohort rows of known muscles, sides normalised, values numeric; no duplicate (subject, muscle, side)."""
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
        # stacklevel 3: the warning points at the caller of build_reference
        warnings.warn(f"build_reference: rows of unknown muscles {unknown} dropped", UserWarning, stacklevel=3)
        df = df[df["muscle"].astype(str).isin(MUSCLES)]
    df["subject"] = df["subject"].astype(str)
    df["side"] = df["side"].map(norm_side)
    df[value_column] = pd.to_numeric(df[value_column], errors="coerce")
    dup = df.duplicated(["subject", "muscle", "side"])
    if dup.any():
        first = df.loc[dup, ["subject", "muscle", "side"]].iloc[0].tolist()
        raise ValueError(f"duplicate rows for (subject, muscle, side), e.g. {first}")
    return df


def _band_of(age: float, bands: Sequence[tuple[int, int]]) -> Any:
    for lo, hi in bands:
        if age_in_band(age, (lo, hi)):
            return band_label(lo, hi)
    return np.nan


def _participants(df: pd.DataFrame, group_columns: tuple[str, ...], bands: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """One row per participant (index: subject) with sex, age, age_band, activity and bmi where present.

    Raises:
        ValueError: a participant column disagrees with itself across a subject's rows, or holds the level "all".
    """
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
            part[col] = part[col].map(lambda v: np.nan if pd.isna(v) else norm_level(v, col))
            if (part[col] == ALL).any():
                raise ValueError(f"the level 'all' is reserved for pooled strata; found it in column {col!r}")
    if "age" in part.columns:
        part["age"] = pd.to_numeric(part["age"], errors="coerce")
        part["age_band"] = part["age"].map(lambda a: np.nan if pd.isna(a) else _band_of(float(a), bands))
        outside = int((part["age"].notna() & part["age_band"].isna()).sum())
        if "age_band" in group_columns and outside:
            warnings.warn(
                f"build_reference: {outside} subject(s) outside the age bands {bands}; they count only "
                "in strata pooled over age",
                UserWarning,
                stacklevel=3,  # the caller of build_reference
            )
    elif "age_band" in part.columns:
        part["age_band"] = part["age_band"].map(lambda v: np.nan if pd.isna(v) else str(v).strip().lower())
    return part


def _wide_values(df: pd.DataFrame, subjects: pd.Index, value_column: str) -> pd.DataFrame:
    """Subjects x (side, muscle) values; the L/R mean computed where a subject has no mean row of that muscle.

    A mean row with a NaN value stays NaN: it is a value withheld (e.g. a failed quality verdict,
    :mod:`scripts.normative.qc_exclusion`) or not measurable, not one to rebuild from the sides.
    """
    wide = df.pivot(index="subject", columns=["side", "muscle"], values=value_column).reindex(subjects)
    mean_rows = set(zip(df.loc[df["side"] == LR_MEAN, "subject"], df.loc[df["side"] == LR_MEAN, "muscle"]))
    for muscle in MUSCLES:
        if ("left", muscle) not in wide.columns or ("right", muscle) not in wide.columns:
            continue
        lr = 0.5 * (wide[("left", muscle)] + wide[("right", muscle)])  # NaN unless both sides are known
        if (LR_MEAN, muscle) in wide.columns:
            has_row = pd.Series([(s, muscle) in mean_rows for s in wide.index], index=wide.index)
            wide[(LR_MEAN, muscle)] = wide[(LR_MEAN, muscle)].where(has_row, lr)
        else:
            wide[(LR_MEAN, muscle)] = lr
    return wide


def _muscle_block(wide: pd.DataFrame, subjects: pd.Index, side: str, pcts: Sequence[float]) -> dict[str, Any]:
    """Percentile entry per muscle over ``subjects`` on ``side``; muscles without a finite value are left out."""
    block: dict[str, Any] = {}
    for muscle in MUSCLES:
        if (side, muscle) not in wide.columns:
            continue
        vals = wide.loc[subjects, (side, muscle)].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals)]
        if vals.size:
            block[muscle] = _percentile_entry(vals, pcts)
    return block


def _build_strata(
    part: pd.DataFrame,
    wide: pd.DataFrame,
    group_columns: tuple[str, ...],
    min_n: int,
    pcts: Sequence[float],
    curve_args: tuple[Sequence[float], int, Sequence[float], str],
) -> list[dict[str, Any]]:
    """Every stratum from the pooled one to the full cross-classification, in that order.

    ``curve_args`` is ``(centiles, min_n, ages, basis)`` of the age centile curves; ``min_n == 0`` switches them off.
    """
    has_sides = any(side in wide.columns.get_level_values(0) for side in SIDES)
    strata: list[dict[str, Any]] = []
    for r in range(len(group_columns) + 1):
        for keys in combinations(group_columns, r):
            sub = part.dropna(subset=list(keys)) if keys else part
            groups = sub.groupby(list(keys), sort=True) if keys else [((), sub)]
            for level, members in groups:
                levels = level if isinstance(level, tuple) else (level,)
                spec = dict(zip(keys, (str(v) for v in levels)))
                muscles = _muscle_block(wide, members.index, LR_MEAN, pcts)
                if not muscles:
                    continue
                stratum: dict[str, Any] = {k: spec.get(k, ALL) for k in STRATUM_KEYS}
                stratum.update(
                    {"n": int(len(members)), "small_stratum": bool(len(members) < min_n), "muscles": muscles}
                )
                if has_sides:
                    per_side = {s: b for s in SIDES if (b := _muscle_block(wide, members.index, s, pcts))}
                    if per_side:
                        stratum["per_side"] = per_side
                if stratum["age_band"] == ALL and "age" in part.columns and curve_args[1] > 0:
                    curves = _stratum_curves(members, wide, *curve_args)
                    if curves is not None:
                        stratum["age_centiles"] = curves
                strata.append(stratum)
    return strata


def _population_block(part: pd.DataFrame, population: Mapping[str, Any] | None) -> dict[str, Any]:
    """Age range, level counts and median BMI of the cohort, updated with the caller's ``population``."""
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
    return population_block


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
    """Build a reference from a cohort table, stratified by sex, age band and activity.

    Strata are every combination of a subset of ``group_columns`` with the levels present, from the pooled
    stratum (all keys ``"all"``) to the full cross-classification, so that
    :meth:`scripts.normative.strata.Reference.select` can fall back key by key. Percentiles use ``numpy.percentile``
    with its default linear interpolation (Hyndman & Fan type 7) over the subjects of a stratum; a stratum with
    fewer than ``min_n`` subjects is kept but flagged ``small_stratum``. Strata with age_band ``"all"`` and at least
    ``age_centile_min_n`` subjects also get linear quantile-regression centile curves of the L/R mean against age
    (:func:`scripts.normative.centiles.fit_age_centiles`), tabulated at ``age_centile_ages``. The reference follows
    the schema of :mod:`scripts.normative.schema`.

    Args:
        table: long format, one row per (subject, muscle, side): columns ``subject``, ``muscle`` (names from
            ``scripts.labels.MUSCLES``; others are dropped with a warning), ``side`` (``left``/``right``/``mean``),
            ``value_column`` (FF %), and the participant columns the strata need: ``sex``, ``age`` (years; or a
            ready ``age_band``), ``activity``; ``bmi`` is optional and only summarised. The L/R mean is computed
            from left and right where a subject has no ``mean`` row (a ``mean`` row with NaN stays NaN). NaN
            values are left out of that muscle's n.
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
        The reference dict, already validated; write it with :func:`scripts.normative.reference_file.save_reference`.

    Raises:
        ValueError: missing columns, bad arguments, duplicate rows, a participant with conflicting sex/age/activity.
    """
    # Over 80 lines only through its docstring (every argument and output column documented); the code is short.
    group_columns, pcts, acs, bands = _check_arguments(group_columns, min_n, percentiles, age_centiles, age_bands)
    df = _clean_rows(table, group_columns, value_column)
    part = _participants(df, group_columns, bands)
    wide = _wide_values(df, part.index, value_column)
    curve_args = (acs, age_centile_min_n, age_centile_ages, age_centile_basis)
    strata = _build_strata(part, wide, group_columns, min_n, pcts, curve_args)
    notes = [f"not stratified by {k}" for k in STRATUM_KEYS if k not in group_columns]
    ref: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "reference_id": reference_id,
        "version": version,
        "description": description,
        "source": {
            "citation": description or "user-built reference",
            "doi": None,
            "built_by": "scripts.normative.building.build_reference",
            **dict(source or {}),
        },
        "n": int(len(part)),
        "population": _population_block(part, population),
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
        "side": LR_MEAN,
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
        if (LR_MEAN, muscle) not in wide.columns:
            continue
        y = wide.loc[ages_known.index, (LR_MEAN, muscle)].to_numpy(dtype=float)
        ok = np.isfinite(y)
        if ok.sum() < min_n:
            continue
        curves = fit_age_centiles(ages_known.to_numpy(dtype=float)[ok], y[ok], centiles, basis=basis)
        values = curves(grid)
        table[muscle] = {pkey(c): [round(float(v), 6) for v in values[:, j]] for j, c in enumerate(centiles)}
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
