"""The subject's FF map from its Dixon images, and the label map moved onto the FF grid."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.grid import map_labels_to_grid
from scripts.pipeline.dixon_entry import has_scan, scan_from_entry
from scripts.pipeline.keys import FF_KEY, LABEL_ON_FF_GRID_KEY
from scripts.pipeline.label_map import label_and_affine
from scripts.quantification.ff_map import compute_ff

__all__ = ["FatFractionMapd"]


class FatFractionMapd(MapTransform):
    """Compute the FF map (native Dixon grid) by the run's FF method and map the label map onto that grid.

    Adds ``ff_map`` (the FF map, fraction 0-1, NaN = excluded voxel, with its provenance: method, scale, exclusions,
    and ``input_corrections`` naming what the reader corrected) and ``label_on_ff_grid`` (``(I, J, K)`` uint8, the
    label map moved to the FF grid by nearest neighbour through both affines). Entries without a Dixon scan pass
    through untouched.

    Args:
        keys: the label-map key (``(1, X, Y, Z)`` MetaTensor on the input grid, values 0-8).
        ff_method: "auto", "water_fat", "inphase_opposed", "vendor_map" or "magnitude_discrimination"
            (see :func:`scripts.quantification.ff_map.compute_ff`).
        ff_scale: override of a vendor map's scale ("fraction", "percent", "permille"); None = detect.
    """

    def __init__(
        self,
        keys: KeysCollection,
        ff_method: str = "auto",
        ff_scale: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ff_method = ff_method
        self.ff_scale = ff_scale

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if not has_scan(d):
            return d
        scan = scan_from_entry(d)
        ffr = compute_ff(scan, method=self.ff_method, ff_scale=self.ff_scale)
        if scan.corrections:
            # silent corrections made visible: the provenance (a table column, the JSON meta, the report) names them
            ffr.provenance.update(input_corrections=";".join(scan.corrections))
        for key in self.key_iterator(d):
            label, label_affine = label_and_affine(d[key])
            d[LABEL_ON_FF_GRID_KEY] = map_labels_to_grid(label, label_affine, ffr.ff.shape, ffr.affine)
        d[FF_KEY] = ffr
        return d
