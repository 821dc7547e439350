"""Per-muscle FF statistics of one subject: the FF table and the per-slice profiles."""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.pipeline.keys import FF_KEY, SCAN_INFO_KEY, STATS_KEY, SWAP_KEY
from scripts.pipeline.label_map import label_and_affine
from scripts.quantification.statistics import quantify_muscles

__all__ = ["MuscleStatisticsd"]


class MuscleStatisticsd(MapTransform):
    """FF statistics, volume, extent and status of every muscle side (:func:`quantify_muscles`).

    Adds ``ff_statistics`` (:class:`QuantResult`: the FF table, one row per muscle and side plus the L/R means,
    and the per-slice profiles). The reader's corrections are appended to every row's flags. Runs after
    :class:`FatFractionMapd` and :class:`SwapCheckd`; entries without an FF map pass through.

    Args:
        keys: the label-map key (``(1, X, Y, Z)`` MetaTensor on the input grid, values 0-8).
        erosion_mm: in-plane erosion for the core mean (None = 1 voxel in-plane).
        min_volume_ml: smallest label side (mL) given an FF; smaller ones get status ``too_small``.
        border_trim_ff: border voxels above this FF touching unlabelled fat are left out (None: keep all).
    """

    def __init__(
        self,
        keys: KeysCollection,
        erosion_mm: float | None = None,
        min_volume_ml: float = 1.0,
        border_trim_ff: float | None = 0.7,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.erosion_mm = erosion_mm
        self.min_volume_ml = min_volume_ml
        self.border_trim_ff = border_trim_ff

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if FF_KEY not in d:
            return d
        ffr = d[FF_KEY]
        info = json.loads(d[SCAN_INFO_KEY])
        for key in self.key_iterator(d):
            label, label_affine = label_and_affine(d[key])
            result = quantify_muscles(
                label,
                label_affine,
                ffr.ff,
                ffr.affine,
                dict(ffr.provenance),
                erosion_mm=self.erosion_mm,
                subject=info["subject"],
                swap_report=d.get(SWAP_KEY),
                min_volume_ml=self.min_volume_ml,
                border_trim_ff=self.border_trim_ff,
            )
            codes = list(info["corrections"])
            if codes:
                result.table["flags"] = [
                    ";".join([f for f in str(flags or "").split(";") if f] + codes)
                    for flags in result.table["flags"].fillna("")
                ]
            d[STATS_KEY] = result
        return d
