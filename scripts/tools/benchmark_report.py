"""Benchmark of the report step alone (SubjectReportd): wall and CPU seconds per subject, drawn now or kept for later.

Usage, from the bundle root::

    python -m scripts.tools.benchmark_report --dataset_dir /tmp/speed_sample --subject sub-0001 --reps 4

The subject's Dixon images are read and measured by the quantification steps of configs/inference.json with its
reference label map (``<subject>_label.nii.gz`` beside the images: no network, so only the report step is timed),
then :class:`scripts.pipeline.subject_report.SubjectReportd` runs ``reps`` times in each mode (``true``: pictures and
page; ``later``: the panels file only). The first repetition of each mode pays the imports and font caches and is
left out of the medians. CPU seconds (this process, all threads) are less sensitive to a loaded machine than wall
seconds. Prints a Markdown table.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import fire
import nibabel as nib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from monai.data import MetaTensor  # noqa: E402
from scripts.pipeline.fat_fraction_map import FatFractionMapd  # noqa: E402
from scripts.pipeline.level_statistics import LevelStatisticsd  # noqa: E402
from scripts.pipeline.load_dixon import LoadDixond  # noqa: E402
from scripts.pipeline.muscle_statistics import MuscleStatisticsd  # noqa: E402
from scripts.pipeline.normative_comparison import NormativeComparisond  # noqa: E402
from scripts.pipeline.prepare_results import PrepareResultsd  # noqa: E402
from scripts.pipeline.quality_verdict import QualityVerdictd  # noqa: E402
from scripts.pipeline.run_record import RunRecord  # noqa: E402
from scripts.pipeline.subject_report import SubjectReportd  # noqa: E402
from scripts.pipeline.swap_check import SwapCheckd  # noqa: E402
from scripts.pipeline.write_results import WriteResultsd  # noqa: E402

_ROLES = ("water", "fat", "inphase", "opposed")


def _measured_entry(dataset_dir: Path, subject: str, out: str) -> dict:
    """The data dictionary as it reaches SubjectReportd, with the reference labels as the label map."""
    stem = dataset_dir / subject / subject
    files = {r: f"{stem}_{r}.nii.gz" for r in _ROLES if Path(f"{stem}_{r}.nii.gz").is_file()}
    label_file = Path(f"{stem}_label.nii.gz")
    if not label_file.is_file():
        raise FileNotFoundError(f"{label_file}: missing; the benchmark uses the subject's reference labels")
    lab = nib.load(str(label_file))
    d = LoadDixond(keys="image")({**files, "subject": subject})
    labels = torch.as_tensor(np.asarray(lab.dataobj).astype(np.uint8)[None])
    d["pred"] = MetaTensor(labels, affine=torch.as_tensor(lab.affine))
    steps = (
        PrepareResultsd("pred", run_record=RunRecord(output_dir=out)),
        FatFractionMapd("pred"),
        SwapCheckd("pred"),
        MuscleStatisticsd("pred"),
        LevelStatisticsd("pred"),
        QualityVerdictd("pred"),
        NormativeComparisond("pred"),
        WriteResultsd("pred"),
    )
    for step in steps:
        d = step(d)
    return d


def run(dataset_dir: str, subject: str, reps: int = 4) -> str:
    """Time the report step of one subject in both modes; returns the Markdown table."""
    if reps < 2:
        raise ValueError(f"reps must be >= 2 (the first one is a warm-up), got {reps}")
    lines = ["| write_report | median wall s | median CPU s | CPU s per repetition |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as out:
        d = _measured_entry(Path(dataset_dir), subject, out)
        for mode in ("true", "later"):
            step, wall, cpu = SubjectReportd("pred", enabled=mode), [], []
            for _ in range(reps):
                t, c = time.perf_counter(), time.process_time()
                step(d)
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            each = ", ".join(f"{x:.2f}" for x in cpu)
            lines.append(f"| {mode} | {statistics.median(wall[1:]):.2f} | {statistics.median(cpu[1:]):.2f} | {each} |")
    return "\n".join(lines)


if __name__ == "__main__":
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(run))
