"""The quality verdict of every muscle side, added to the FF table (``qc_status``, ``qc_score``, ``qc_reasons``, and
the network's confidence ``net_*`` when the pipeline measured it)."""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.pipeline.dixon_entry import scan_from_entry
from scripts.pipeline.keys import (
    CONFIDENCE_KEY,
    FF_KEY,
    IMAGE_SPINE_KEY,
    LABEL_ON_FF_GRID_KEY,
    SCAN_INFO_KEY,
    STATS_KEY,
)
from scripts.quality.dixon_consistency import DixonConsistency, dixon_consistency
from scripts.quality.verdict import add_qc_columns, assess_segmentation, subject_verdict

__all__ = ["QualityVerdictd"]

logger = logging.getLogger(__name__)


class QualityVerdictd(MapTransform):
    """Judge each muscle side from what the scan shows (position, shape, FF signal) and, when the entry holds
    ``network_confidence`` (:class:`scripts.pipeline.network_confidence.NetworkConfidenced`), from how sure the
    network was: ``pass``, ``review``, ``fail``.

    The subject's Dixon images are checked for consistency first
    (:func:`scripts.quality.dixon_consistency.dixon_consistency`: is the in-phase image, the network's input, the
    in-phase image of this water and fat?): an inconsistent or very noisy network input puts every side to
    ``review`` with the reason; the figures, findings (notes included) or the reason the check was skipped go into
    the FF table's JSON ``meta`` as ``input_consistency`` and into the log.

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
        subject = json.loads(d[SCAN_INFO_KEY])["subject"]
        consistency = self._consistency(d, subject)
        result.meta["input_consistency"] = consistency.to_dict()
        verdicts = assess_segmentation(
            d[LABEL_ON_FF_GRID_KEY],
            ffr.affine,
            ff=ffr.ff * 100.0,
            confidence=confidence,
            image_spine=d.get(IMAGE_SPINE_KEY),
        )
        reasons = subject_verdict(verdicts)[2]  # the sides' own reasons; the input's are logged once, first
        for severity, reason in consistency.side_findings:
            for verdict in verdicts.values():
                verdict.add(severity, reason)
        reasons = [f"every side: {severity}: {reason}" for severity, reason in consistency.side_findings] + reasons
        status, score = subject_verdict(verdicts)[:2]
        result.table = add_qc_columns(result.table, verdicts, confidence)
        if status != "pass":
            logger.warning("%s: quality %s (score %.2f): %s", subject, status, score, "; ".join(reasons))
        return d

    @staticmethod
    def _consistency(d: Mapping[Hashable, Any], subject: str) -> DixonConsistency:
        """The input-consistency check of the entry's Dixon images, logged when skipped or when it notes something."""
        scan = scan_from_entry(d)
        ffr = d[FF_KEY]
        # the body is what the FF map counts as signal: its threshold applies to W + F under the water-fat formula
        threshold = ffr.provenance.get("min_denominator") if ffr.provenance.get("ff_method") == "water_fat" else None
        consistency = dixon_consistency(scan.images, min_denominator=threshold)
        if not consistency.checked:
            logger.info("%s: Dixon input consistency not checked: %s", subject, consistency.skipped_reason)
        for severity, reason in consistency.findings:
            if severity == "note":
                logger.info("%s: Dixon input consistency: %s", subject, reason)
        return consistency
