"""Per-level FF and cross-section area of every muscle side (vertebral levels L1-L5), when the model outputs them."""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.io.atomic import atomic_write_text
from scripts.pipeline.keys import FF_KEY, LEVEL_ROWS_KEY, LEVELS_KEY, RESULTS_DIR_KEY, SCAN_INFO_KEY, STATS_KEY
from scripts.pipeline.label_map import label_and_affine
from scripts.quantification.level_statistics import LEVEL_UNITS, level_statistics
from scripts.quantification.levels import BOUNDARY_RULES, assign_levels

__all__ = ["LevelStatisticsd", "NO_CONTEXT_TEXT", "LEVELS_SUFFIX"]

logger = logging.getLogger(__name__)

#: what a subject's JSON and the log say when the label map holds no vertebral labels (a 9-output model)
NO_CONTEXT_TEXT = "no vertebral context in this model's output: per-level tables need a model with 15 outputs"
#: file name ending of the per-level table, beside ``<subject>_ff_table.csv``
LEVELS_SUFFIX = "_ff_levels.csv"


class LevelStatisticsd(MapTransform):
    """Vertebral levels of the label map and the FF, volume and CSA of every muscle side in each level.

    Runs after :class:`scripts.pipeline.muscle_statistics.MuscleStatisticsd`, with the same ``min_volume_ml`` and
    ``border_trim_ff``. The levels come from the label map's vertebral labels 9-14
    (:func:`scripts.quantification.levels.assign_levels`, bounds in world z); the statistics from
    :func:`scripts.quantification.level_statistics.level_statistics` on the FF grid. It adds ``levels`` to the FF
    table's JSON meta (status, reasons, rule, bodies, bounds, units), writes ``<subject>_ff_levels.csv`` into the
    subject's staged folder, and adds ``level_statistics`` and ``cohort_level_rows`` (which
    :class:`scripts.pipeline.mark_done.MarkDoned` adds to ``cohort_ff_levels.csv``). A label map without vertebral
    labels (the shipped 9-output model) gets ``levels: {"status": "not available", ...}`` in the JSON and no
    per-level file; the log says why once per run. Entries without statistics pass through.

    Args:
        keys: the label-map key (``(1, X, Y, Z)`` MetaTensor on the input grid).
        min_volume_ml: smallest level side (mL) given an FF.
        border_trim_ff: border voxels above this FF touching unlabelled fat are left out (None: keep all).
        rule: level bounds, ``"mid_disc"`` (default) or ``"mid_body"`` (:data:`BOUNDARY_RULES`).
    """

    def __init__(
        self,
        keys: KeysCollection,
        min_volume_ml: float = 1.0,
        border_trim_ff: float | None = 0.7,
        rule: str = "mid_disc",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if rule not in BOUNDARY_RULES:
            raise ValueError(f"rule must be one of {BOUNDARY_RULES}, got {rule!r}")
        self.min_volume_ml = min_volume_ml
        self.border_trim_ff = border_trim_ff
        self.rule = rule
        self._told = False

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if FF_KEY not in d or STATS_KEY not in d:
            return d
        ffr, result = d[FF_KEY], d[STATS_KEY]
        subject = json.loads(d[SCAN_INFO_KEY])["subject"]
        for key in self.key_iterator(d):
            label, label_affine = label_and_affine(d[key])
            assignment = assign_levels(label, label_affine, rule=self.rule)
            if assignment is None:
                if not self._told:
                    logger.info("%s; no per-level table is written", NO_CONTEXT_TEXT)
                    self._told = True
                result.meta["levels"] = {"status": "not available", "reasons": [NO_CONTEXT_TEXT]}
                continue
            table = level_statistics(
                label,
                label_affine,
                ffr.ff,
                ffr.affine,
                assignment,
                subject=subject,
                min_volume_ml=self.min_volume_ml,
                border_trim_ff=self.border_trim_ff,
            )
            result.meta["levels"] = {**assignment.to_meta(), "units": dict(LEVEL_UNITS)}
            if assignment.status != "ok":
                logger.warning("%s: vertebral levels uncertain: %s", subject, "; ".join(assignment.reasons))
            if RESULTS_DIR_KEY in d:
                text = table.to_csv(index=False, float_format="%.10g", lineterminator="\n")
                atomic_write_text(Path(d[RESULTS_DIR_KEY]) / f"{subject}{LEVELS_SUFFIX}", text, overwrite=True)
            d[LEVELS_KEY] = table
            d[LEVEL_ROWS_KEY] = table
        return d
