"""Status and flags of the per-muscle FF table rows: one status per row, the most consequential first, and every
condition listed in ``flags`` (the rules are stated in :func:`scripts.quantification.statistics.quantify_muscles`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from scripts.labels import LEFT_RIGHT_SWAP
from scripts.quantification.columns import _SWAP_COLUMNS
from scripts.quantification.swap import SwapReport

#: Row statuses from the least to the most severe; an L/R-mean row takes the worse of its two sides.
_STATUS_SEVERITY: tuple[str, ...] = ("ok", "truncated", "swap_suspected", "too_small", "no_valid_ff", "missing")


def _swap_fields(value: int, first: int | None, last: int | None, report: SwapReport | None) -> dict[str, Any]:
    """The swap columns of label ``value`` spanning slices ``first``-``last`` from a swap report on the FF grid."""
    if report is None:
        # unknown is not "no swap": nullable booleans stay empty in the CSV and null in the JSON
        return dict.fromkeys(_SWAP_COLUMNS, pd.NA)
    flags = report.per_label.get(value)
    asym = bool(flags.asymmetric) if flags is not None else False
    region = bool(flags.swapped_region) if flags is not None else False
    in_slices = first is not None and last is not None and any(first <= s <= last for s in report.swapped_slices)
    return {
        "swap_global": bool(report.global_swap),
        "swap_asymmetric": asym,
        "swap_region": region,
        "swap_slices": bool(in_slices),
        "swap_suspected": bool(report.global_swap or asym or region or in_slices),
    }


def _status(n_voxels: int, n_valid: int, truncated: bool, swap: Any, too_small: bool = False) -> str:
    """One status per row, the most consequential first; every condition is also listed in ``flags``."""
    if n_voxels == 0:
        return "missing"
    if n_valid == 0:
        return "no_valid_ff"
    if too_small:
        return "too_small"
    if swap is True:
        return "swap_suspected"
    if truncated:
        return "truncated"
    return "ok"


def _row_flags(row: Mapping[str, Any]) -> list[str]:
    """Every condition of one label row, in a fixed order (volume asymmetry is added by :func:`_finish_flags`)."""
    flags: list[str] = []
    if row["n_voxels"] == 0:
        flags.append("missing")
    elif row["n_voxels"] == row["n_excluded_voxels"]:
        flags.append("no_valid_ff")
    if row["truncated_inferior"]:
        flags.append("truncated_inferior")
    if row["truncated_superior"]:
        flags.append("truncated_superior")
    for name in ("swap_global", "swap_asymmetric", "swap_region", "swap_slices"):
        if row[name] is True:
            flags.append(name)
    if row["n_voxels"] > 0 and row["n_core_voxels"] == 0:
        flags.append("core_empty")
    if row.get("too_small"):
        flags.append("too_small")
    return flags


def _finish_flags(rows: list[dict[str, Any]]) -> None:
    """Write the ``flags`` of every label row in place, adding ``volume_asymmetry``, and drop the ``too_small`` key.

    A side under half the other side's volume is flagged: a likely segmentation failure or a one-sided truncation.
    """
    by_value = {r["label"]: r for r in rows}
    for row in rows:
        other = by_value.get(LEFT_RIGHT_SWAP.get(row["label"]))
        small, large = sorted((row["volume_ml"], other["volume_ml"])) if other else (0.0, 0.0)
        asym = 0 < small < 0.5 * large  # an absent side is already flagged "missing"
        row["flags"] = ";".join(_row_flags(row) + (["volume_asymmetry"] if asym else []))
        del row["too_small"]


def _worse_status(left: str, right: str) -> str:
    """The more severe of two statuses (:data:`_STATUS_SEVERITY`)."""
    return max(left, right, key=_STATUS_SEVERITY.index)
