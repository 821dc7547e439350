"""Per-level FF and cross-section area of every muscle side (vertebral levels L1-L5), when the model outputs them."""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable, Mapping
from typing import Any

import pandas as pd
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.pipeline.keys import FF_KEY, LEVEL_ROWS_KEY, LEVELS_KEY, SCAN_INFO_KEY, STATS_KEY, VERTEBRA_NAMING_KEY
from scripts.pipeline.label_map import label_and_affine
from scripts.quantification.level_statistics import LEVEL_UNITS, level_statistics
from scripts.quantification.levels import BOUNDARY_RULES, assign_levels
from scripts.quantification.vertebra_naming import levels_anchor

__all__ = ["LevelStatisticsd", "NO_CONTEXT_TEXT", "with_side_verdicts"]

logger = logging.getLogger(__name__)

#: what a subject's JSON and the log say when the label map holds no vertebral labels (a 9-output model)
NO_CONTEXT_TEXT = (
    "no vertebral context in this model's output: per-level tables need a spine network "
    "(models/spine_model.pt, configs/spine_train.json) or a model with 15 outputs"
)


def with_side_verdicts(levels: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The per-level table with ``qc_status`` of each row's muscle side from the subject's FF table.

    The quality verdict (:class:`scripts.pipeline.quality_verdict.QualityVerdictd`) judges the whole muscle side;
    each of its levels carries that verdict, so a cohort reference leaves a failed side's levels out as it leaves
    the side out. A table without ``qc_status`` (no verdict) leaves ``levels`` as it is.

    Args:
        levels: one row per level and muscle side (columns ``muscle``, ``side``).
        table: the subject's FF table (columns ``muscle``, ``side``, ``qc_status``).

    Returns:
        A copy of ``levels`` with ``qc_status`` (``pass``/``review``/``fail``) after ``status``.
    """
    if "qc_status" not in table.columns:
        return levels
    verdict = {(str(m), str(s)): v for m, s, v in zip(table["muscle"], table["side"], table["qc_status"])}
    out = levels.drop(columns=["qc_status"], errors="ignore")
    at = list(out.columns).index("status") + 1 if "status" in out.columns else len(out.columns)
    out.insert(at, "qc_status", [verdict.get((str(m), str(s))) for m, s in zip(out["muscle"], out["side"])])
    return out


class LevelStatisticsd(MapTransform):
    """Vertebral levels of the label map and the FF, volume and CSA of every muscle side in each level.

    Runs after :class:`scripts.pipeline.muscle_statistics.MuscleStatisticsd`, with the same ``min_volume_ml`` and
    ``border_trim_ff``. The levels come from the label map's vertebral labels 9-14
    (:func:`scripts.quantification.levels.assign_levels`, bounds in world z); the statistics from
    :func:`scripts.quantification.level_statistics.level_statistics` on the FF grid. It adds ``levels`` to the FF
    table's JSON meta (status, reasons, rule, bodies, bounds, units, and ``naming``: how
    :class:`scripts.pipeline.vertebra_naming.NameVertebraeFromSacrumd` named the bodies) and adds
    ``level_statistics`` and ``cohort_level_rows``; :class:`scripts.pipeline.write_results.WriteResultsd` writes
    ``<subject>_ff_levels.csv`` with the sides' quality verdict (and the per-level normative comparison when the
    reference has level strata), and :class:`scripts.pipeline.mark_done.MarkDoned` adds the rows to
    ``cohort_ff_levels.csv``. A label map without vertebral labels (the shipped 9-output model) gets ``levels:
    {"status": "not available", ...}`` in the JSON and no per-level file; the log says why once per run. Entries
    without statistics pass through.

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
            naming = d.get(VERTEBRA_NAMING_KEY)
            anchor = levels_anchor(naming.get("status"), naming.get("anchor")) if naming else "sacrum"
            assignment = assign_levels(label, label_affine, rule=self.rule, anchor=anchor)
            if assignment is None:
                if naming is not None:
                    # the spine network ran: say what it found instead of asking for one
                    reasons = list(naming.get("reasons") or []) or [f"vertebral bodies: {naming.get('status')}"]
                    result.meta["levels"] = {"status": "not available", "reasons": reasons, "naming": naming}
                    # a user who stated the lowest body asked for levels: not getting them is a warning
                    log = logger.warning if str(naming.get("anchor") or "sacrum") != "sacrum" else logger.info
                    log("%s: no per-level table: %s", subject, "; ".join(reasons))
                    continue
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
            if VERTEBRA_NAMING_KEY in d:
                result.meta["levels"]["naming"] = d[VERTEBRA_NAMING_KEY]
            if assignment.status != "ok":
                logger.warning("%s: vertebral levels uncertain: %s", subject, "; ".join(assignment.reasons))
            d[LEVELS_KEY] = table
            d[LEVEL_ROWS_KEY] = table
        return d
