"""The columns of the per-muscle fat-fraction (FF) tables: names and order, units, and the dtypes they are stored with.

One place for the schema shared by :func:`scripts.quantification.statistics.quantify_muscles` (which fills the
rows), :mod:`scripts.quantification.status` (status and flags) and :mod:`scripts.quantification.tables` (writers).
"""

from __future__ import annotations

import pandas as pd

__all__ = [
    "PROVENANCE_KEYS",
    "TABLE_COLUMNS",
    "SLICE_COLUMNS",
    "UNITS",
]

#: Provenance keys every call must give; each becomes a column of the table.
PROVENANCE_KEYS: tuple[str, ...] = ("ff_method", "ff_source", "ff_scale_detected", "assumption")

_STAT_COLUMNS: tuple[str, ...] = (
    "ff_mean_pct",
    "ff_median_pct",
    "ff_sd_pct",
    "ff_p25_pct",
    "ff_p75_pct",
    "ff_core_mean_pct",
)
_SWAP_COLUMNS: tuple[str, ...] = ("swap_suspected", "swap_global", "swap_asymmetric", "swap_region", "swap_slices")

#: Columns of :attr:`scripts.quantification.statistics.QuantResult.table`, in order (provenance keys beyond
#: :data:`PROVENANCE_KEYS` follow them).
TABLE_COLUMNS: tuple[str, ...] = (
    "subject",
    "label",
    "muscle",
    "side",
    "aggregation",
    "status",
    "flags",
    *_STAT_COLUMNS,
    "volume_ml",
    "n_voxels",
    "n_excluded_voxels",
    "n_core_voxels",
    "slice_first",
    "slice_last",
    "z_first_mm",
    "z_last_mm",
    "truncated_inferior",
    "truncated_superior",
    *_SWAP_COLUMNS,
    *PROVENANCE_KEYS,
    "erosion",
    "core_erosion",
    "border_trim",
    "n_trimmed_voxels",
)

#: Columns of :attr:`scripts.quantification.statistics.QuantResult.slices`, in order.
SLICE_COLUMNS: tuple[str, ...] = (
    "subject",
    "label",
    "muscle",
    "side",
    "slice",
    "z_mm",
    "n_voxels",
    "n_excluded_voxels",
    "csa_cm2",
    "ff_mean_pct",
)

#: Column (or column family) -> unit and meaning; written into the JSON ``meta`` block.
UNITS: dict[str, str] = {
    "ff_*_pct": "percent: 100 x F/(F+W) (fraction x 100)",
    "volume_ml": "millilitre (voxel count x voxel volume of the FF grid)",
    "csa_cm2": "square centimetre (voxel count on the slice x in-plane voxel area of the FF grid)",
    "z_*_mm": "millimetre, RAS world z of the slice at the in-plane centre of the FF grid",
    "slice*": "0-based slice index along the axial axis of the FF grid",
    "n_*voxels": "voxel count on the FF grid",
    "net_*": (
        "network confidence on its 2x2x4 mm working grid (configs/inference.json only): net_voxels a voxel count "
        "there; net_top1_mean and net_margin_mean (top-1 minus top-2) softmax probabilities, 0-1; "
        "net_boundary_share the share of voxels with margin < 0.2; net_entropy_mean entropy / log(classes), 0-1"
    ),
}

_AGG_LABEL = "label"
_AGG_LR_MEAN = "lr_mean"
_MEAN_SIDE = "mean"


def _typed_table(table: pd.DataFrame) -> pd.DataFrame:
    """Stable dtypes: nullable integers for label and slice range, nullable booleans for the swap columns."""
    table = table.astype(
        {
            "label": "Int64",
            "slice_first": "Int64",
            "slice_last": "Int64",
            "n_voxels": "int64",
            "n_excluded_voxels": "int64",
            "n_core_voxels": "int64",
            "n_trimmed_voxels": "int64",
            "truncated_inferior": "bool",
            "truncated_superior": "bool",
            **dict.fromkeys((*_STAT_COLUMNS, "volume_ml", "z_first_mm", "z_last_mm"), "float64"),
            **dict.fromkeys(_SWAP_COLUMNS, "boolean"),
        }
    )
    return table
