"""Analytic label/FF cases shared by the per-muscle table tests (imported as ``tests.quantification.quant_cases``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

PROV = {"ff_method": "water_fat", "ff_source": "test", "ff_scale_detected": "fraction", "assumption": "none"}
SHAPE = (14, 14, 7)
#: the analytic box: x 2-11, y 2-11, z 1-5 (10 x 10 x 5 voxels) on the FF grid
BOX = (slice(2, 12), slice(2, 12), slice(1, 6))


def box_case() -> tuple[np.ndarray, np.ndarray]:
    """Label 1 in a 10x10x5 box; FF 0.2 with a 2-voxel stripe (x = 2, 3; all y, z) of FF 0.8."""
    label = np.zeros(SHAPE, np.uint8)
    label[BOX] = 1
    ff = np.full(SHAPE, 0.05, np.float32)  # background FF must never enter a muscle's statistics
    ff[BOX] = 0.2
    ff[2:4, 2:12, 1:6] = 0.8
    return label, ff


def row_of(result, muscle: str, side: str) -> pd.Series:
    """The single table row of ``muscle`` and ``side``."""
    t = result.table
    sel = t[(t.muscle == muscle) & (t.side == side)]
    assert len(sel) == 1
    return sel.iloc[0]
