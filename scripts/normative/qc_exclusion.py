"""Leaving the rows that failed the quality verdict out of reference building and group comparisons.

Why: a label drawn on the wrong muscle still gives a plausible-looking FF (:mod:`scripts.quality.verdict`); taken
into a reference or a group test it shifts the percentiles and p-values with nobody able to see it. The rule is per
row of the cohort table: a muscle side, or an L/R ``mean`` row, whose ``qc_status`` is ``fail`` is withheld; the
``review`` rows are kept (they ask a reader to look, they are not known to be wrong). A mean row takes its worse
side's verdict, so one failed side withholds that side and the subject's L/R mean of that muscle, not the other side.

Withheld rows stay in the table with their value set to NaN (not dropped): a builder that computes an L/R mean from
the two sides where a subject has no mean row (:func:`scripts.normative.building.build_reference`) would otherwise
rebuild the withheld mean. The counts go into the reference's ``source`` block and the group-comparison outputs.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scripts.labels import MUSCLES

logger = logging.getLogger(__name__)

__all__ = ["QC_RULE", "QCExclusion", "exclude_failed_qc"]

#: the rule, in words, as the reference's provenance and the group-comparison outputs state it
QC_RULE: str = (
    "rows (a muscle side or an L/R mean row) whose qc_status is 'fail' are left out; 'review' and 'pass' rows are "
    "kept; a mean row takes its worse side's verdict"
)
_SIDES = ("left", "right", "mean")


@dataclasses.dataclass(frozen=True)
class QCExclusion:
    """The cohort table after the rule, and what the rule did.

    Attributes:
        table: the cohort table; withheld rows have NaN in the value column (all rows kept).
        include_failed: the caller asked to keep ``fail`` rows.
        qc_columns: the table has a ``qc_status`` column (a table from before 0.14.0 has none: used as is).
        failed: muscle -> side (``left``/``right``/``mean``) -> rows with ``qc_status`` ``fail`` (finite value).
        excluded: muscle -> side -> rows withheld (all zero when ``include_failed`` or without the column).
    """

    table: pd.DataFrame
    include_failed: bool
    qc_columns: bool
    failed: dict[str, dict[str, int]]
    excluded: dict[str, dict[str, int]]

    @property
    def excluded_total(self) -> int:
        """Rows withheld, all muscles and sides."""
        return sum(n for sides in self.excluded.values() for n in sides.values())

    def provenance(self) -> dict[str, Any]:
        """The record written into a reference's ``source`` block (JSON-ready)."""
        rule = QC_RULE if not self.include_failed else "none: 'fail' rows kept on request (include_failed_qc true)"
        if not self.qc_columns:
            rule = "none: the cohort table has no qc_status column (made before 0.14.0); every row used"
        return {
            "qc_rule": rule,
            "include_failed_qc": self.include_failed,
            "qc_columns_present": self.qc_columns,
            "qc_excluded": self.excluded,
            "qc_excluded_total": self.excluded_total,
            "qc_failed_rows_total": sum(n for sides in self.failed.values() for n in sides.values()),
        }

    def summary(self, side: str | None = None) -> str:
        """One line for a log, a command's output or a Markdown note; ``side`` restricts the counts to one side."""
        if not self.qc_columns:
            return "QC: the cohort table has no qc_status column (made before 0.14.0): every row used, none checked"
        sides = (side,) if side else _SIDES
        counts = {m: {s: self.failed[m][s] for s in sides if self.failed[m][s]} for m in MUSCLES}
        parts = [f"{m} " + ", ".join(f"{s} {n}" for s, n in c.items()) for m, c in counts.items() if c]
        total = sum(sum(c.values()) for c in counts.values())
        what = "kept on request (include_failed_qc true)" if self.include_failed else "left out"
        where = f" of side {side}" if side else ""
        detail = f" ({'; '.join(parts)})" if parts else ""
        return f"QC: {total} row(s){where} with qc_status 'fail' {what}{detail}"


def _counts(rows: pd.DataFrame) -> dict[str, dict[str, int]]:
    counts = {m: dict.fromkeys(_SIDES, 0) for m in MUSCLES}
    for (muscle, side), n in rows.groupby(["muscle", "side"]).size().items():
        if muscle in counts and side in counts[muscle]:
            counts[muscle][side] = int(n)
    return counts


def exclude_failed_qc(
    table: pd.DataFrame,
    include_failed: bool = False,
    value_column: str = "ff_mean_pct",
    source: str = "cohort table",
) -> QCExclusion:
    """Withhold the rows whose ``qc_status`` is ``fail`` (value set to NaN), counting them per muscle and side.

    Args:
        table: a cohort table (``subject``, ``muscle``, ``side``, ``value_column``, ``qc_status`` when the run made
            one); not modified.
        include_failed: keep the ``fail`` rows (they are still counted in :attr:`QCExclusion.failed`).
        value_column: the FF column (percent) that is withheld.
        source: the file name, for the warning about a table without the column.

    Returns:
        A :class:`QCExclusion`. Rows already without a finite value are not counted (nothing is withheld there).

    Warns:
        UserWarning: the table has no ``qc_status`` column; it is used as is.
    """
    for col in ("muscle", "side", value_column):
        if col not in table.columns:
            raise ValueError(f"{source} lacks column {col!r}; it has {list(table.columns)}")
    out = table.copy()
    zero = {m: dict.fromkeys(_SIDES, 0) for m in MUSCLES}
    if "qc_status" not in out.columns:
        warnings.warn(
            f"{source} has no qc_status column (made before 0.14.0): every row is used, failed segmentations "
            "cannot be left out; run inference on the cohort again with this version to get the quality verdict",
            UserWarning,
            stacklevel=2,
        )
        return QCExclusion(out, bool(include_failed), False, zero, {m: dict(s) for m, s in zero.items()})
    sides = out["side"].astype(str).str.strip().str.lower().replace({"lr_mean": "mean"})
    values = pd.to_numeric(out[value_column], errors="coerce")
    fail = out["qc_status"].astype(str).str.strip().str.lower().eq("fail") & np.isfinite(values)
    failed = _counts(pd.DataFrame({"muscle": out["muscle"].astype(str), "side": sides})[fail])
    if include_failed:
        excluded = {m: dict(s) for m, s in zero.items()}
    else:
        out[value_column] = values.where(~fail)
        excluded = {m: dict(s) for m, s in failed.items()}
    result = QCExclusion(out, bool(include_failed), True, failed, excluded)
    # a warning when anything failed: a reader of the command's output must see that the n changed
    logger.log(logging.WARNING if fail.any() else logging.INFO, "%s: %s", source, result.summary())
    return result
