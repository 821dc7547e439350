"""The subject's muscle FF against the normative reference of people of the same sex, age and activity."""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.normative.comparison import compare_to_reference
from scripts.normative.level_comparison import compare_levels_to_reference
from scripts.normative.reference_file import load_reference
from scripts.pipeline.keys import LEVEL_ROWS_KEY, LEVELS_KEY, NORMATIVE_KEY, SCAN_INFO_KEY, STATS_KEY

__all__ = ["NormativeComparisond"]


class NormativeComparisond(MapTransform):
    """Place each muscle's mean FF in the reference distribution of its stratum (band, percentile, z-score).

    Adds ``normative_comparison`` (one row per muscle and side, :func:`compare_to_reference`). The stratum comes
    from the subject's row of ``participants_file`` when there is one (sex, age, activity); otherwise the whole
    reference. Runs after :class:`MuscleStatisticsd`; entries without statistics pass through.

    When the reference holds per-level strata (built with ``cohort_study build_reference --per_level true``) and the
    subject has vertebral levels (:class:`scripts.pipeline.level_statistics.LevelStatisticsd`), each level side is
    placed in its level's strata too: the per-level table (and ``<subject>_ff_levels.csv``) gets the reference
    quartiles, band, approximate percentile and z-score and ``normative_flags``
    (:func:`scripts.normative.level_comparison.compare_levels_to_reference`).

    Args:
        keys: the label-map key (unused here; kept for the MONAI signature and the order of the steps).
        reference_file: normative reference JSON (None = the paper's, shipped with the bundle).
        participants_file: optional BIDS participants.tsv (participant_id, sex, age, activity) for strata; a path
            that is not a file is ignored.
    """

    def __init__(
        self,
        keys: KeysCollection,
        reference_file: str | None = None,
        participants_file: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reference = load_reference(reference_file) if reference_file else load_reference(None)
        self.participants = None
        if participants_file and Path(participants_file).is_file():
            self.participants = pd.read_csv(participants_file, sep="\t", dtype={"participant_id": str})

    def demographics(self, subject: str) -> dict[str, Any]:
        """The subject's ``sex``, ``age`` and ``activity`` from the participants table (only those present)."""
        if self.participants is None:
            return {}
        row = self.participants[self.participants.participant_id == subject]
        if row.empty:
            return {}
        r = row.iloc[0]
        return {k: (None if pd.isna(r.get(k)) else r.get(k)) for k in ("sex", "age", "activity") if k in r}

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if STATS_KEY not in d:
            return d
        subject = json.loads(d[SCAN_INFO_KEY])["subject"]
        demographics = self.demographics(subject)
        d[NORMATIVE_KEY] = compare_to_reference(d[STATS_KEY].table, self.reference, **demographics)
        if d.get(LEVELS_KEY) is not None and self.reference.level_rule is not None:
            d[LEVELS_KEY] = d[LEVEL_ROWS_KEY] = compare_levels_to_reference(
                d[LEVELS_KEY], self.reference, **demographics
            )
        return d
