"""Placing a subject's per-level fat fractions against the per-level strata of a reference (issue #26).

A reference built with ``--per_level true`` (:mod:`scripts.normative.level_building`) holds strata per vertebral level.
Each level side of the subject's per-level table is compared with its level's strata exactly as a whole muscle is
(:func:`scripts.normative.comparison.compare_to_reference`: stratum by sex, age and activity, band, approximate
percentile and z-score). What makes a level's comparison unsure is said in ``normative_flags``, never hidden:

- ``level_uncertain``: the subject's level names were not anchored or failed a check (the reference holds ``ok``
  levels only, unless built with ``--include_uncertain_levels true``);
- ``level_rule_differs_from_reference``: the subject's levels were bounded by another rule (no comparison);
- ``level_not_in_reference``: the reference has no strata for this level (no comparison);
- the whole-muscle flags (``small_stratum``, ``in_tail``, ``side_compared_to_lr_mean_reference`` ...).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pandas as pd
from scripts.normative.comparison import compare_to_reference
from scripts.normative.strata import Reference

__all__ = ["LEVEL_COMPARISON_COLUMNS", "compare_levels_to_reference"]

#: columns added to the per-level table, in order (reference stratum and quartiles, placement, flags)
LEVEL_COMPARISON_COLUMNS: tuple[str, ...] = (
    "ref_stratum",
    "ref_n_muscle",
    "ref_p25",
    "ref_p50",
    "ref_p75",
    "band",
    "percentile_approx",
    "z_score_approx",
    "normative_flags",
)
_FROM_COMPARISON = {
    "stratum": "ref_stratum",
    "n_muscle": "ref_n_muscle",
    "p25": "ref_p25",
    "p50": "ref_p50",
    "p75": "ref_p75",
    "band": "band",
    "percentile_approx": "percentile_approx",
    "z_score_approx": "z_score_approx",
}


def _blank(n: int) -> dict[str, list[Any]]:
    return {c: [None if c in ("ref_stratum", "band") else math.nan] * n for c in LEVEL_COMPARISON_COLUMNS[:-1]}


def _compare_level(
    rows: pd.DataFrame, ref: Reference, demographics: dict[str, Any], value_column: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """(muscle, side) -> comparison values and flags of one level's rows (left and right sides)."""
    with warnings.catch_warnings():
        # the small-stratum warning would repeat for every level of every subject; the flag says it per row
        warnings.simplefilter("ignore", UserWarning)
        cmp = compare_to_reference(
            rows[["muscle", "side", value_column]], ref, **demographics, value_column=value_column
        )
    out = {}
    for _, r in cmp[cmp["side"].isin(("left", "right"))].iterrows():
        values = {new: r.get(old) for old, new in _FROM_COMPARISON.items()}
        values["normative_flags"] = str(r.get("flags") or "")
        out[(str(r["muscle"]), str(r["side"]))] = values
    return out


def compare_levels_to_reference(
    levels: pd.DataFrame,
    reference: Reference,
    sex: str | None = None,
    age: float | str | None = None,
    activity: str | None = None,
    value_column: str = "ff_mean_pct",
) -> pd.DataFrame:
    """The per-level table with each level side placed in its level's reference strata.

    Args:
        levels: one subject's per-level table (:func:`scripts.quantification.level_statistics.level_statistics`:
            ``level``, ``muscle``, ``side``, ``value_column``, ``level_status``, ``boundary_rule``).
        reference: a reference; without per-level strata the table is returned unchanged.
        sex, age, activity: the subject's demographics (None = unknown), as for
            :func:`scripts.normative.comparison.compare_to_reference`.
        value_column: the FF column (percent).

    Returns:
        A copy of ``levels`` with :data:`LEVEL_COMPARISON_COLUMNS` (NaN statistics and a flag where a level is not
        compared; see the module docstring for the flags).
    """
    if reference.level_rule is None or not len(levels):
        return levels
    demographics = {"sex": sex, "age": age, "activity": activity}
    added = _blank(len(levels))
    flags = [""] * len(levels)
    position = {i: k for k, i in enumerate(levels.index)}
    for level, rows in levels.groupby(levels["level"].astype(str), sort=False):
        ref = reference.for_level(level)
        if {str(r) for r in rows["boundary_rule"]} != {reference.level_rule}:
            ref, common = None, ["level_rule_differs_from_reference"]
        elif ref is None:
            common = ["level_not_in_reference"]
        else:
            common = [] if set(rows["level_status"].astype(str)) == {"ok"} else ["level_uncertain"]
        placed = _compare_level(rows, ref, demographics, value_column) if ref is not None else {}
        for i, r in rows.iterrows():
            k = position[i]
            values = placed.get((str(r["muscle"]), str(r["side"])), {})
            for col in LEVEL_COMPARISON_COLUMNS[:-1]:
                if col in values:
                    added[col][k] = values[col]
            flags[k] = ";".join(f for f in (*common, values.get("normative_flags", "")) if f)
    return levels.assign(**added, normative_flags=flags)
