"""The lowest lumbar vertebral body in each subject's field of view, as the user states it.

The levels of a scan without the sacrum (the L2-L5 lumbar protocol) are named from this statement
(:mod:`scripts.quantification.vertebra_naming`, rule 6). A cohort scanned with one protocol states it once for the
run (inference.json ``--lowest_vertebra L5``); a cohort of several protocols states it per subject in a
``lowest_vertebra`` column of its BIDS ``participants.tsv`` (an empty cell takes the run's value). The run record
keeps each subject's value, so a changed statement neither resumes nor overwrites earlier results. A MONAI Label
infer request states it for its one image (``params`` ``{"lowest_vertebra": "L5"}``): MONAI Label hands the
request's parameters to the pipeline as keys of the entry, and such a key wins over the table and the run's value.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from scripts.pipeline.keys import SCAN_INFO_KEY
from scripts.quantification.vertebra_naming import LOWEST_BODY_NAMES, lowest_body_value

__all__ = ["PARTICIPANTS_COLUMN", "StatedLowestVertebra"]

#: the participants.tsv column that states a subject's lowest body in view
PARTICIPANTS_COLUMN = "lowest_vertebra"


def _canonical(name: str | None) -> str | None:
    value = lowest_body_value(name)
    return None if value is None else str(name).strip().upper()


class StatedLowestVertebra:
    """Subject -> the stated lowest lumbar body in view (``"L1"`` ... ``"L5"``), or None where nothing is stated.

    Args:
        default: the run's statement (inference.json ``lowest_vertebra``), for every subject without one of its own.
        participants_file: BIDS participants.tsv; its ``lowest_vertebra`` column, where present, states it per
            subject (``participant_id``). A path that is not a file, or a table without the column, states nothing.

    Raises:
        ValueError: an unknown name, naming the file, the row and the subject, and what is accepted.

    Example:
        >>> StatedLowestVertebra("l5")("sub-01")
        'L5'
    """

    def __init__(self, default: str | None = None, participants_file: str | None = None) -> None:
        self.default = _canonical(default)
        self.per_subject: dict[str, str] = {}
        if not participants_file or not Path(participants_file).is_file():
            return
        table = pd.read_csv(participants_file, sep="\t", dtype=str)
        if PARTICIPANTS_COLUMN not in table.columns:
            return
        if "participant_id" not in table.columns:
            raise ValueError(
                f"{participants_file}: a {PARTICIPANTS_COLUMN} column needs a participant_id column to say whose it is"
            )
        for row, (subject, cell) in enumerate(zip(table["participant_id"], table[PARTICIPANTS_COLUMN]), start=2):
            if pd.isna(cell) or not str(cell).strip():
                continue
            if str(cell).strip().upper() not in LOWEST_BODY_NAMES:
                raise ValueError(
                    f"{participants_file}, line {row} ({subject}): {PARTICIPANTS_COLUMN} {cell!r} is not one of "
                    f"{', '.join(LOWEST_BODY_NAMES)}; write the lowest lumbar body in that subject's field of view, "
                    "or leave the cell empty for the run's --lowest_vertebra"
                )
            self.per_subject[str(subject)] = str(cell).strip().upper()

    @classmethod
    def of(cls, stated: str | StatedLowestVertebra | None) -> StatedLowestVertebra:
        """``stated`` as it is when already one, else the run-wide statement ``stated`` (a name or None)."""
        return stated if isinstance(stated, cls) else cls(stated)

    def __call__(self, subject: str | None) -> str | None:
        return self.per_subject.get(str(subject), self.default)

    def for_entry(self, data: Mapping[Hashable, Any]) -> str | None:
        """The statement for a pipeline entry: its own ``lowest_vertebra`` key where set (a MONAI Label request's
        parameter; the bundle's discovery entries have no such key), else the one for its subject (its scan record,
        else its ``subject``).

        Raises:
            ValueError: the entry's own statement is not a lumbar body name.
        """
        own = data.get(PARTICIPANTS_COLUMN)
        name = "" if own is None else str(own).strip().upper()
        if name:
            if name not in LOWEST_BODY_NAMES:
                raise ValueError(
                    f"the request's {PARTICIPANTS_COLUMN} {own!r} is not one of {', '.join(LOWEST_BODY_NAMES)}; "
                    "state the lowest lumbar body in this scan's field of view, or leave it empty to count from the "
                    "sacrum"
                )
            return name
        subject = json.loads(data[SCAN_INFO_KEY])["subject"] if SCAN_INFO_KEY in data else data.get("subject")
        return self(subject)
