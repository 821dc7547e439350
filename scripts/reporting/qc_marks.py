"""How the quality verdict shows in the report: which sides failed or ask for review, and their colours and words.

Why: a side whose segmentation failed the quality check (:mod:`scripts.quality.verdict`) still has a number in the
tables; drawn as a point over the reference band, or placed in a percentile, it reads as a measurement. The chart and
the HTML page therefore look up each row's verdict here and withhold what a ``fail`` would make look true.
"""

from __future__ import annotations

import pandas as pd
from scripts.reporting.style import side_key

__all__ = ["QC_COLOURS", "QC_FAIL_TEXT", "QC_WITHHELD_TEXT", "qc_statuses", "qc_status_of"]

#: text and edge colours of the two verdicts that are not ``pass`` (red as the page's flags, amber as its notes)
QC_COLOURS: dict[str, str] = {"fail": "#b00020", "review": "#f9a825"}
#: the mark that stands in the chart where a failed side's value would be
QC_FAIL_TEXT: str = "QC fail"
#: what the normative comparison shows instead of a failed side's band, percentile and z-score
QC_WITHHELD_TEXT: str = "withheld (QC fail)"


def qc_statuses(table: pd.DataFrame | None) -> dict[tuple[str, str], str]:
    """``(muscle, side)`` -> ``qc_status`` (``pass`` / ``review`` / ``fail``) of a subject's FF table.

    Sides are ``left``, ``right`` and ``mean`` (:func:`scripts.reporting.style.side_key`, so the reference's
    ``lr_mean`` finds the ``mean`` row). A table without the column (made before 0.14.0) gives an empty mapping:
    nothing is withheld, nothing marked.
    """
    if table is None or "qc_status" not in table.columns:
        return {}
    out: dict[tuple[str, str], str] = {}
    for muscle, side, status in zip(table["muscle"], table["side"], table["qc_status"]):
        if not pd.isna(status):
            out[(str(muscle), side_key(side))] = str(status).strip().lower()
    return out


def qc_status_of(statuses: dict[tuple[str, str], str], muscle: object, side: object) -> str:
    """The verdict of one row, ``"pass"`` where the table has none."""
    return statuses.get((str(muscle), side_key(side)), "pass")
