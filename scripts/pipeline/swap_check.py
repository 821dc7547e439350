"""Fat-water swap check of the subject's water and fat images, per slice and per muscle."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.transforms import MapTransform
from scripts.pipeline.dixon_entry import scan_from_entry
from scripts.pipeline.keys import FF_KEY, LABEL_ON_FF_GRID_KEY, SWAP_KEY
from scripts.quantification.swap import detect_fat_water_swap

__all__ = ["SwapCheckd"]


class SwapCheckd(MapTransform):
    """Look for water and fat images exchanged by the scanner's reconstruction (globally, per slice, per muscle).

    Adds ``swap_report`` (:class:`SwapReport`), or None when the scan has no water and fat images (then the FF table
    leaves its swap columns empty: unchecked is not "no swap"). Runs after :class:`FatFractionMapd`, whose
    ``label_on_ff_grid`` gives the muscles; entries without an FF map pass through.

    Args:
        keys: the label-map key (unused here; kept for the MONAI signature and the order of the steps).
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if FF_KEY not in d:
            return d
        scan = scan_from_entry(d)
        d[SWAP_KEY] = None
        if scan.has("water", "fat"):
            # depths of the skin/shell rule are in mm: the voxel size must be given, or anisotropic and coarse scans
            # put the "subcutaneous" shell inside the muscles of lean subjects (a false global swap)
            d[SWAP_KEY] = detect_fat_water_swap(
                scan.images["water"],
                scan.images["fat"],
                labels=d[LABEL_ON_FF_GRID_KEY],
                slice_axis=scan.slice_axis,
                voxel_size_mm=scan.spacing_mm,
            )
        return d
