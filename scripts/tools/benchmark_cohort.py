"""Benchmark a cohort run: wall time per subject and peak memory of ``monai.bundle run inference`` on a folder.

Runs the real command (one process, or ``--nproc`` processes with torchrun/gloo) into a fresh output folder, then
prints subjects, wall time, seconds per subject, the projection to a cohort of ``--project_to`` subjects, and the
peak resident memory of the largest process::

    python -m scripts.tools.benchmark_cohort --dataset_dir /data/phantom_test --project_to 173
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def run(dataset_dir: str, nproc: int = 1, project_to: int = 173, output_dir: str | None = None, extra: str = "") -> str:
    """Time one cohort run and return a Markdown summary.

    Args:
        dataset_dir: the cohort (datalist folder or folder of subjects).
        nproc: processes (1: plain ``monai.bundle run``; more: torchrun with the multi-process overlay).
        project_to: cohort size to project the measured rate to.
        output_dir: where results go (default: a temporary folder, deleted afterwards).
        extra: more command-line overrides, e.g. ``"--write_report false"``.
    """
    tmp = tempfile.TemporaryDirectory() if output_dir is None else None
    out = Path(output_dir) if output_dir else Path(tmp.name) / "eval"
    if nproc > 1:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes=1",
            f"--nproc_per_node={nproc}",
            "-m",
            "monai.bundle",
            "run",
            "--config_file",
            "['configs/inference.json','configs/multi_gpu_inference.json']",
        ]
    else:
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
    cmd += ["--dataset_dir", str(dataset_dir), "--output_dir", str(out), *extra.split()]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"cohort run failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    n = pd.read_csv(out / "cohort_ff_table.csv", dtype={"subject": str}).subject.nunique()
    if tmp is not None:
        tmp.cleanup()
    per = wall / max(n, 1)
    return "\n".join(
        [
            f"Cohort run of {n} subjects from `{dataset_dir}` with {nproc} process(es); machine: {os.cpu_count()} CPU "
            f"cores ({platform.machine()}), no GPU.",
            "",
            f"| subjects | wall (s) | s per subject | projected to {project_to} (min) | peak RSS per process (GB) |",
            "|---|---|---|---|---|",
            f"| {n} | {wall:.0f} | {per:.1f} | {per * project_to / 60:.1f} | {peak_gb:.2f} |",
        ]
    )


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(run))
