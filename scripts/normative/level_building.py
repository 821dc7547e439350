"""Per-level reference strata from a cohort run's per-level table (``cohort_ff_levels.csv``, issue #26).

Each vertebral level gets the strata :func:`scripts.normative.building.build_reference` gives a whole-muscle cohort
table (pooled, by sex, age band and activity; percentiles of the L/R mean and of each side), built from that level's
rows only. Two rules decide which rows count:

- **Level status.** A subject's levels whose ``level_status`` is not ``ok`` (the names were not anchored on the
  sacrum or failed a check, :func:`scripts.quantification.levels.assign_levels`) are left out by default: an L2 called
  L3 would put one level's FF into another's percentiles. They are counted per level.
- **Quality verdict.** Rows whose muscle side failed the quality check are withheld before (``qc_status`` ``fail``,
  :mod:`scripts.normative.qc_exclusion`), as for the whole-muscle reference.

All rows must share one ``boundary_rule``: levels bounded at mid-disc and at mid-body are different segments.
Nothing here is a published value: the strata are the user's cohort's percentiles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scripts.normative.building import build_reference
from scripts.normative.schema import LEVEL_RULES

__all__ = ["LEVEL_STATUS_RULE", "build_level_strata", "level_summary"]

#: the level-status rule, in words, as the reference's provenance states it
LEVEL_STATUS_RULE: str = (
    "a subject's levels whose level_status is not 'ok' (names not anchored on the sacrum, or a failed check) are left "
    "out; the counts per level are in uncertain_excluded"
)
_NEEDED = ("subject", "level", "muscle", "side", "ff_mean_pct", "level_status", "boundary_rule")


def _boundary_rule(table: pd.DataFrame, source: str) -> str:
    rules = sorted({str(r) for r in table["boundary_rule"].dropna()})
    if len(rules) != 1 or rules[0] not in LEVEL_RULES:
        raise ValueError(
            f"{source}: the per-level rows must share one boundary_rule among {LEVEL_RULES}, found {rules}: levels "
            "bounded by different rules are different segments; build from one run (one --level_rule)"
        )
    return rules[0]


def _level_order(table: pd.DataFrame) -> list[str]:
    """Level names cranial to caudal (T12-L1, L1 ... L5, L5-S1), whichever subjects have them."""

    def rank(name: str) -> int:
        first = name.split("-")[0]
        return -1 if first == "T12" else 99 if first == "S1" else int(first[1:])

    return sorted(dict.fromkeys(table["level"].astype(str)), key=rank)


def _uncertain_subjects(table: pd.DataFrame) -> dict[str, int]:
    """Level -> subjects whose level is not ``ok``."""
    bad = table[table["level_status"].astype(str) != "ok"]
    return {str(k): int(v) for k, v in bad.groupby("level")["subject"].nunique().items()}


def build_level_strata(
    table: pd.DataFrame,
    include_uncertain: bool = False,
    source: str = "per-level table",
    **build_kwargs: Any,
) -> dict[str, Any]:
    """The ``vertebral_levels`` block of a reference: strata per level built from a cohort's per-level rows.

    Args:
        table: long format, one row per (subject, level, muscle, side): columns ``subject``, ``level``, ``muscle``,
            ``side`` (``left``/``right``), ``ff_mean_pct`` (FF %, NaN where withheld or not measured),
            ``level_status``, ``boundary_rule`` and the participant columns the strata need (``sex``, ``age``,
            ``activity``; as for :func:`scripts.normative.building.build_reference`).
        include_uncertain: keep the levels whose ``level_status`` is not ``ok``.
        source: the file name, for messages.
        build_kwargs: passed to :func:`scripts.normative.building.build_reference` for every level (``min_n``,
            ``group_columns``, ``percentiles``, ``reference_id`` ...).

    Returns:
        ``{"boundary_rule", "levels": {level: strata}, "level_status_rule", "include_uncertain_levels",
        "uncertain_excluded": {level: subjects}, "subjects": {level: subjects with a value},
        "levels_without_values": [...]}``; the level names run cranial to caudal.

    Raises:
        ValueError: a needed column is missing, the rows mix boundary rules, or no level has a usable FF left
            (the message counts the uncertain levels left out).
    """
    missing = [c for c in _NEEDED if c not in table.columns]
    if missing:
        raise ValueError(f"{source} lacks columns {missing}: give the cohort_ff_levels.csv of a finished run")
    rule = _boundary_rule(table, source)
    uncertain = _uncertain_subjects(table)
    used = table if include_uncertain else table[table["level_status"].astype(str) == "ok"]
    values = pd.to_numeric(used["ff_mean_pct"], errors="coerce")
    levels: dict[str, Any] = {}
    subjects: dict[str, int] = {}
    empty: list[str] = []
    for level in _level_order(table):
        rows = used[used["level"].astype(str) == level]
        finite = np.isfinite(values[rows.index])
        if not finite.any():
            empty.append(level)
            continue
        ref = build_reference(rows.drop(columns=["level"]), **build_kwargs)
        levels[level] = ref["strata"]
        subjects[level] = int(rows.loc[finite, "subject"].nunique())
    if not levels:
        left_out = sum(uncertain.values()) if not include_uncertain else 0
        raise ValueError(
            f"{source}: no vertebral level has a usable FF: {left_out} subject-level(s) were left out because their "
            "level_status is not 'ok' (the sacrum not in view, or a naming check failed), the others have no FF "
            "value or failed the quality check. Look at the runs' level status first (<subject>_ff_table.json, "
            "'levels'); --include_uncertain_levels true builds from the uncertain levels anyway."
        )
    return {
        "boundary_rule": rule,
        "levels": levels,
        "level_status_rule": LEVEL_STATUS_RULE if not include_uncertain else "none: uncertain levels kept on request",
        "include_uncertain_levels": bool(include_uncertain),
        "uncertain_excluded": {} if include_uncertain else uncertain,
        "uncertain_levels_total": int(sum(uncertain.values())),
        "subjects": subjects,
        "levels_without_values": empty,
    }


def level_summary(block: Mapping[str, Any]) -> str:
    """One line for the command's output: levels built, subjects per level, uncertain levels left out."""
    per_level = ", ".join(f"{lv} n = {n}" for lv, n in block["subjects"].items())
    excluded = block["uncertain_excluded"]
    left = sum(excluded.values())
    what = (
        f"{left} uncertain subject-level(s) left out ({', '.join(f'{k} {v}' for k, v in excluded.items())})"
        if left
        else "no uncertain level left out"
    )
    if block["include_uncertain_levels"]:
        what = f"{block['uncertain_levels_total']} uncertain subject-level(s) kept on request"
    return f"levels ({block['boundary_rule']}): {per_level}; {what}"
