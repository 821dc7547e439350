"""The quality verdict of every muscle side, added to the FF table (``qc_status``, ``qc_score``, ``qc_reasons``, and
the network's confidence ``net_*`` when the pipeline measured it)."""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.pipeline.keys import CONFIDENCE_KEY, FF_KEY, LABEL_ON_FF_GRID_KEY, SCAN_INFO_KEY, STATS_KEY
from scripts.quality.verdict import add_qc_columns, assess_segmentation, subject_verdict

__all__ = ["QualityVerdictd"]

logger = logging.getLogger(__name__)


class QualityVerdictd(MapTransform):
    """Judge each muscle side from what the scan shows (position, shape, FF signal) and, when the entry holds
    ``network_confidence`` (:class:`scripts.pipeline.network_confidence.NetworkConfidenced`), from how sure the
    network was: ``pass``, ``review``, ``fail``.

    Adds the verdict columns to the FF table of ``ff_statistics`` (:func:`scripts.quality.verdict.add_qc_columns`),
    with the confidence figures as ``net_*`` columns when present, and logs a warning naming the reasons when the
    subject does not pass. Runs after :class:`MuscleStatisticsd`; entries without statistics pass through, entries
    without confidence (``measure_subject``, MONAI Deploy) get the verdict without the confidence check.

    Args:
        keys: the label-map key (unused here; the verdict reads the label map on the FF grid).
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if STATS_KEY not in d:
            return d
        ffr = d[FF_KEY]
        result = d[STATS_KEY]
        confidence = d.get(CONFIDENCE_KEY)
        verdicts = assess_segmentation(d[LABEL_ON_FF_GRID_KEY], ffr.affine, ff=ffr.ff * 100.0, confidence=confidence)
        result.table = add_qc_columns(result.table, verdicts, confidence)
        status, score, reasons = subject_verdict(verdicts)
        if status != "pass":
            subject = json.loads(d[SCAN_INFO_KEY])["subject"]
            logger.warning("%s: quality %s (score %.2f): %s", subject, status, score, "; ".join(reasons))
        return d
