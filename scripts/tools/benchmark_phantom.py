"""Benchmark of the phantom: seconds to generate (and write) one subject per geometry; prints a markdown table.

Usage: ``python -m scripts.tools.benchmark_phantom [--repeats 3]`` from the bundle root.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import fire
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.phantom import Acquisition, generate_subject, write_subject  # noqa: E402


def run(repeats: int = 3) -> str:
    """Time generation and writing for the tiny, low and reference geometries; returns the markdown table."""
    lines = [
        f"| geometry | voxels | generate (s, median of {repeats}) | write 7 NIfTI files (s) |",
        "|---|---|---|---|",
    ]
    for name in ("tiny", "low", "reference"):
        acq = Acquisition.preset(name)
        gen, wr = [], []
        for r in range(repeats):
            t0 = time.perf_counter()
            subj = generate_subject(100 + r, acq)
            gen.append(time.perf_counter() - t0)
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                write_subject(subj, tmp)
                wr.append(time.perf_counter() - t0)
        shape = "x".join(map(str, acq.shape))
        lines.append(f"| {name} | {shape} | {np.median(gen):.2f} | {np.median(wr):.2f} |")
    lines.append(f"\nMachine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU.")
    table = "\n".join(lines)
    return table


if __name__ == "__main__":
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(run))
