"""One subject measured outside a config (MONAI Deploy, tests): the measuring steps of inference.json in order."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
from scripts.io.dixon_scan import DixonScan
from scripts.pipeline.dixon_entry import scan_to_entry
from scripts.pipeline.fat_fraction_map import FatFractionMapd
from scripts.pipeline.keys import FF_KEY, STATS_KEY
from scripts.pipeline.muscle_statistics import MuscleStatisticsd
from scripts.pipeline.quality_verdict import QualityVerdictd
from scripts.pipeline.swap_check import SwapCheckd
from scripts.quantification.ff_map import FFResult
from scripts.quantification.statistics import QuantResult

__all__ = ["measure_subject"]


def measure_subject(
    scan: DixonScan,
    label: np.ndarray,
    label_affine: np.ndarray,
    ff_method: str = "auto",
    ff_scale: str | None = None,
    erosion_mm: float | None = None,
    min_volume_ml: float = 1.0,
    border_trim_ff: float | None = 0.7,
) -> tuple[QuantResult, FFResult]:
    """FF map, fat-water swap check, per-muscle statistics and quality verdict of one subject.

    The same steps, with the same defaults, as the measuring part of configs/inference.json
    (:class:`FatFractionMapd`, :class:`SwapCheckd`, :class:`MuscleStatisticsd`, :class:`QualityVerdictd`), so every
    front end reports the same numbers.

    Args:
        scan: the subject's validated Dixon images (:func:`scripts.io.load.load_dixon`).
        label: ``(X, Y, Z)`` label map (values 0-8), any grid; mapped to the FF grid through the affines.
        label_affine: 4x4 voxel-to-world (RAS, mm) affine of ``label``.
        ff_method: see :func:`scripts.quantification.ff_map.compute_ff`.
        ff_scale: vendor FF map scale override (None = detect).
        erosion_mm: in-plane erosion for the core mean (None = 1 voxel in-plane).
        min_volume_ml: label sides below this volume get status ``too_small`` and no FF.
        border_trim_ff: border voxels above this FF touching unlabelled fat are left out
            (:func:`scripts.quantification.statistics.trim_fat_border`); ``None`` counts every label voxel.

    Returns:
        ``(result, ffr)``: the :class:`QuantResult` (FF table with the quality verdict, per-slice profiles) and the
        FF map with its provenance.
    """
    key = "pred"
    steps = (
        FatFractionMapd(key, ff_method=ff_method, ff_scale=ff_scale),
        SwapCheckd(key),
        MuscleStatisticsd(key, erosion_mm=erosion_mm, min_volume_ml=min_volume_ml, border_trim_ff=border_trim_ff),
        QualityVerdictd(key),
    )
    pred = MetaTensor(
        torch.as_tensor(np.asarray(label)[None]), affine=torch.as_tensor(np.asarray(label_affine, dtype=np.float64))
    )
    d = {**scan_to_entry(scan), key: pred}
    # called one by one, not through monai's Compose, so that an input error reaches the caller as itself
    # (Compose would wrap it in a RuntimeError)
    for step in steps:
        d = step(d)
    return d[STATS_KEY], d[FF_KEY]
