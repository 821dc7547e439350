"""One subject measured outside a config (MONAI Deploy, tests): the measuring steps of inference.json in order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.data import MetaTensor
from scripts.io.dixon_scan import DixonScan
from scripts.pipeline.dixon_entry import scan_to_entry
from scripts.pipeline.fat_fraction_map import FatFractionMapd
from scripts.pipeline.image_vertebrae import VertebraeFromFFMapd
from scripts.pipeline.keys import FF_KEY, LEVELS_KEY, STATS_KEY, VERTEBRA_NAMING_KEY
from scripts.pipeline.level_statistics import LevelStatisticsd, with_side_verdicts
from scripts.pipeline.muscle_statistics import MuscleStatisticsd
from scripts.pipeline.quality_verdict import QualityVerdictd
from scripts.pipeline.swap_check import SwapCheckd
from scripts.quantification.ff_map import FFResult
from scripts.quantification.statistics import QuantResult

__all__ = ["measure_subject", "measure_subject_levels_and_label"]


def measure_subject_levels_and_label(
    scan: DixonScan,
    label: np.ndarray,
    label_affine: np.ndarray,
    ff_method: str = "auto",
    ff_scale: str | None = None,
    erosion_mm: float | None = None,
    min_volume_ml: float = 1.0,
    border_trim_ff: float | None = 0.7,
    level_rule: str = "mid_disc",
    naming: Mapping[str, Any] | None = None,
    lowest_vertebra: str | None = None,
) -> tuple[QuantResult, FFResult, pd.DataFrame | None, np.ndarray]:
    """FF map, vertebral bodies from the FF map where none are named, fat-water swap check, per-muscle statistics,
    vertebral levels and quality verdict of one subject.

    The same steps, with the same defaults, as the measuring part of configs/inference.json
    (:class:`FatFractionMapd`, :class:`VertebraeFromFFMapd`, :class:`SwapCheckd`, :class:`MuscleStatisticsd`,
    :class:`LevelStatisticsd`, :class:`QualityVerdictd`), so every front end reports the same numbers.

    Args:
        scan: the subject's validated Dixon images (:func:`scripts.io.load.load_dixon`).
        label: ``(X, Y, Z)`` label map (muscles 1-8; vertebral bodies 9-13 and sacrum 14 from a 15-output model),
            any grid; mapped to the FF grid through the affines.
        label_affine: 4x4 voxel-to-world (RAS, mm) affine of ``label``.
        ff_method: see :func:`scripts.quantification.ff_map.compute_ff`.
        ff_scale: vendor FF map scale override (None = detect).
        erosion_mm: in-plane erosion for the core mean (None = 1 voxel in-plane).
        min_volume_ml: label sides (and level sides) below this volume get status ``too_small`` and no FF.
        border_trim_ff: border voxels above this FF touching unlabelled fat are left out
            (:func:`scripts.quantification.statistics.trim_fat_border`); ``None`` counts every label voxel.
        level_rule: level bounds, ``"mid_disc"`` or ``"mid_body"`` (inference.json's ``level_rule``).
        naming: how the vertebral bodies of ``label`` were named (the post-processing's ``vertebra_naming`` record:
            :class:`scripts.pipeline.spine_labels.MergeSpineLabelsd`, :class:`NameVertebraeFromSacrumd`); it goes
            into ``meta["levels"]["naming"]`` as in the plain bundle's FF JSON.
        lowest_vertebra: the stated lowest lumbar body in view (``"L1"`` ... ``"L5"``; inference.json's
            ``lowest_vertebra``): where ``label`` names no body, the bodies found in the FF map are named up from it
            (:class:`scripts.pipeline.image_vertebrae.VertebraeFromFFMapd`); None: not tried.

    Returns:
        ``(result, ffr, levels, label)``: the :class:`QuantResult` (FF table with the quality verdict, per-slice
        profiles, ``meta["levels"]``), the FF map with its provenance, the per-level table with each side's verdict
        (``qc_status``), or None when the label map holds no vertebral labels (``meta["levels"]`` then says so), and
        the ``(X, Y, Z)`` label map measured (``label`` with the bodies from the FF map, where they were named).
    """
    key = "pred"
    steps = (
        FatFractionMapd(key, ff_method=ff_method, ff_scale=ff_scale),
        VertebraeFromFFMapd(key, lowest_vertebra=lowest_vertebra),
        SwapCheckd(key),
        MuscleStatisticsd(key, erosion_mm=erosion_mm, min_volume_ml=min_volume_ml, border_trim_ff=border_trim_ff),
        LevelStatisticsd(key, min_volume_ml=min_volume_ml, border_trim_ff=border_trim_ff, rule=level_rule),
        QualityVerdictd(key),
    )
    pred = MetaTensor(
        torch.as_tensor(np.asarray(label)[None]), affine=torch.as_tensor(np.asarray(label_affine, dtype=np.float64))
    )
    d = {**scan_to_entry(scan), key: pred}
    if naming is not None:
        d[VERTEBRA_NAMING_KEY] = dict(naming)
    # called one by one, not through monai's Compose, so that an input error reaches the caller as itself
    # (Compose would wrap it in a RuntimeError)
    for step in steps:
        d = step(d)
    levels = d.get(LEVELS_KEY)
    if levels is not None:
        levels = with_side_verdicts(levels, d[STATS_KEY].table)
    return d[STATS_KEY], d[FF_KEY], levels, np.asarray(d[key].detach().cpu().numpy()[0]).astype(np.uint8)


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
    """:func:`measure_subject_levels_and_label` without the per-level table and the label map: ``(result, ffr)``.

    ``result.meta["levels"]`` still describes the levels (or says they are not available).
    """
    result, ffr, _, _ = measure_subject_levels_and_label(
        scan, label, label_affine, ff_method, ff_scale, erosion_mm, min_volume_ml, border_trim_ff
    )
    return result, ffr
