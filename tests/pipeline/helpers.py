"""Helpers of the pipeline tests: a small synthetic Dixon subject and the quantification steps of inference.json."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from scripts.pipeline.fat_fraction_map import FatFractionMapd
from scripts.pipeline.image_vertebrae import VertebraeFromFFMapd
from scripts.pipeline.level_statistics import LevelStatisticsd
from scripts.pipeline.load_dixon import LoadDixond
from scripts.pipeline.mark_done import MarkDoned
from scripts.pipeline.muscle_statistics import MuscleStatisticsd
from scripts.pipeline.normative_comparison import NormativeComparisond
from scripts.pipeline.prepare_results import PrepareResultsd
from scripts.pipeline.quality_verdict import QualityVerdictd
from scripts.pipeline.run_record import RunRecord
from scripts.pipeline.subject_report import SubjectReportd
from scripts.pipeline.swap_check import SwapCheckd
from scripts.pipeline.write_results import WriteResultsd

from tests.quantification.level_cases import affine as level_affine
from tests.quantification.level_cases import as_lps, level_ff, spine_label


def lean_body(tmp_path, spacing=(2.0, 2.0, 4.4)):
    """A cylinder body: 10 mm of subcutaneous fat (FF 0.9) over 20 mm of muscle (FF 0.1) around fatty viscera (0.7).

    Read in 2 mm voxels instead of mm, the shell 3-9 "mm" below the surface would lie at 6-18 mm, mostly in the
    muscle (FF 0.1, below the interior's 0.7): a false global swap.
    """
    shape = (120, 120, 12)
    x, y = np.meshgrid(
        (np.arange(shape[0]) - 59.5) * spacing[0], (np.arange(shape[1]) - 59.5) * spacing[1], indexing="ij"
    )
    r = np.hypot(x, y)[..., None].repeat(shape[2], axis=2)
    ff = np.select([r < 80, r < 100, r < 110], [0.7, 0.1, 0.9], default=np.nan)
    body = np.isfinite(ff)
    water = np.where(body, 1000 * (1 - np.nan_to_num(ff)), 0).astype(np.float32)
    fat = np.where(body, 1000 * np.nan_to_num(ff), 0).astype(np.float32)
    affine = np.diag([*spacing, 1.0])
    files = {}
    for role, data in (("water", water), ("fat", fat), ("inphase", water + fat)):
        files[role] = str(tmp_path / f"lean_{role}.nii.gz")
        nib.save(nib.Nifti1Image(data, affine), files[role])
    # two "muscles" in the muscle ring: label 7 left (x > 0 in RAS), 8 right
    label = np.zeros(shape, np.uint8)
    ring = (r > 82) & (r < 98) & (np.abs(y[..., None]) < 20)
    label[ring & (x[..., None] > 0)] = 7
    label[ring & (x[..., None] < 0)] = 8
    return files, label, affine


def quantification_steps(
    out: Path, report: bool | str = False, overwrite: bool | str = False, **settings: Any
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The quantification steps of configs/inference.json's postprocessing, in its order, up to (not with) MarkDoned.

    Args:
        out: the run's output folder.
        report: draw the pictures and the HTML page.
        overwrite: replace results of a different run.
        settings: ``ff_method``, ``border_trim_ff``, ``reference_file``, ``level_rule`` ... as the run record and the
            steps take them.
    """
    record = RunRecord(output_dir=str(out), overwrite=overwrite, **settings)
    stats = {k: settings[k] for k in ("erosion_mm", "min_volume_ml", "border_trim_ff") if k in settings}
    ff = {k: settings[k] for k in ("ff_method", "ff_scale") if k in settings}
    steps = (
        PrepareResultsd("pred", run_record=record),
        FatFractionMapd("pred", **ff),
        VertebraeFromFFMapd("pred", lowest_vertebra=settings.get("lowest_vertebra")),
        SwapCheckd("pred"),
        MuscleStatisticsd("pred", **stats),
        LevelStatisticsd(
            "pred",
            rule=settings.get("level_rule", "mid_disc"),
            **{k: v for k, v in stats.items() if k != "erosion_mm"},
        ),
        QualityVerdictd("pred"),
        NormativeComparisond("pred", reference_file=settings.get("reference_file")),
        WriteResultsd("pred"),
        SubjectReportd("pred", enabled=report),
    )

    def run(d: dict[str, Any]) -> dict[str, Any]:
        for step in steps:  # one by one: an error reaches the test as itself, not wrapped by monai's Compose
            d = step(d)
        return d

    return run


def loaded(files: dict[str, str], label: np.ndarray, affine: np.ndarray, subject: str = "lean") -> dict[str, Any]:
    """The data dictionary after the loader and the network: Dixon entries, ``image`` and the label map ``pred``."""
    d = LoadDixond(keys="image")({**files, "subject": subject})
    d["pred"] = MetaTensor(torch.as_tensor(label[None]), affine=torch.as_tensor(affine))
    return d


def quantify_and_finish(out: Path, d: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Run the quantification steps and MarkDoned on ``d``: the subject's results published in ``out/<subject>``."""
    return MarkDoned(output_dir=str(out))(quantification_steps(out, **kwargs)(d))


def spine_subject(tmp_path: Path, lps: bool = False) -> tuple[dict[str, str], np.ndarray, np.ndarray]:
    """The box spine of tests/quantification/level_cases.py as a water/fat/in-phase subject (optionally LPS):
    ``(files, label, affine)``; the label holds muscles and the vertebral context 9-14."""
    ff, lab, aff = level_ff(), spine_label(), level_affine()
    if lps:
        ff, _ = as_lps(ff, aff, flip_z=True)
        lab, aff = as_lps(lab, aff, flip_z=True)
    water, fat = 1000.0 * (1.0 - ff), 1000.0 * ff
    files = {}
    for role, data in (("water", water), ("fat", fat), ("inphase", water + fat)):
        files[role] = str(tmp_path / f"spine_{role}.nii.gz")
        nib.save(nib.Nifti1Image(data.astype(np.float32), aff), files[role])
    return files, lab, aff
