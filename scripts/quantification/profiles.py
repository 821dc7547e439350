"""Per-slice profiles of one muscle side: voxel count, cross-sectional area and mean FF on every axial slice it spans.

The rows of :attr:`scripts.quantification.statistics.QuantResult.slices` (columns
:data:`scripts.quantification.columns.SLICE_COLUMNS`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _slice_profile_rows(
    row: dict[str, Any], slice_idx: np.ndarray, vox_ff: np.ndarray, z_of_slice: np.ndarray, pixel_cm2: float
) -> list[dict[str, Any]]:
    """One row per axial slice holding voxels of the label of ``row``.

    Args:
        row: the label's table row (``subject``, ``label``, ``muscle``, ``side`` are copied).
        slice_idx: ``(N,)`` axial slice index of each label voxel on the FF grid.
        vox_ff: ``(N,)`` FF (fraction) of each label voxel, NaN where excluded.
        z_of_slice: ``(S,)`` world z (RAS, mm) of every axial slice of the FF grid.
        pixel_cm2: in-plane voxel area of the FF grid (cm^2).

    Returns:
        Rows in slice order: ``n_voxels``, ``n_excluded_voxels``, ``csa_cm2`` (voxel count x pixel area, excluded
        voxels included) and ``ff_mean_pct`` (mean of the valid voxels in percent; NaN when none).
    """
    n_slices = z_of_slice.shape[0]
    valid = np.isfinite(vox_ff)
    n_per = np.bincount(slice_idx, minlength=n_slices)
    n_valid_per = np.bincount(slice_idx[valid], minlength=n_slices)
    sum_per = np.bincount(slice_idx[valid], weights=vox_ff[valid], minlength=n_slices)
    out: list[dict[str, Any]] = []
    for s in np.nonzero(n_per)[0]:
        nv = int(n_valid_per[s])
        out.append(
            {
                "subject": row["subject"],
                "label": row["label"],
                "muscle": row["muscle"],
                "side": row["side"],
                "slice": int(s),
                "z_mm": float(z_of_slice[s]),
                "n_voxels": int(n_per[s]),
                "n_excluded_voxels": int(n_per[s]) - nv,
                "csa_cm2": float(n_per[s]) * pixel_cm2,
                "ff_mean_pct": 100.0 * float(sum_per[s]) / nv if nv else math.nan,
            }
        )
    return out
