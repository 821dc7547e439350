"""Benchmark of the step from the network's probabilities to the label map on the input grid: time, peak memory
and agreement of ``Invertd`` + ``AsDiscreted(argmax)`` (the path up to 0.15.0) against ``InvertedArgmaxd``.

Usage, from the bundle root::

    python -m scripts.tools.benchmark_postprocess --dataset_dir /tmp/speed_phantoms --datalist_key training --n 2

Each subject is preprocessed and segmented once (inference.json's own objects); then each variant runs ``repeats``
times on the same softmax probabilities. Peak memory is the rise of the process's resident set during the step
(Linux: the peak is reset through ``/proc/self/clear_refs`` before each run and read from ``VmHWM``), so it is the
step's own working memory, not the process's. Prints a Markdown table; labels are compared voxel for voxel.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import fire
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _status_kb(field: str) -> int:
    """A ``/proc/self/status`` figure (``VmRSS``, ``VmHWM``) in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _measured(step, d: dict) -> tuple[torch.Tensor, float, float]:
    """Run ``step(d)``: its labels ``(X, Y, Z)`` uint8, seconds and peak memory rise (GB)."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    before = _status_kb("VmRSS")
    t = time.perf_counter()
    out = step(dict(d))["pred"]
    seconds = time.perf_counter() - t
    rise = (_status_kb("VmHWM") - before) / 1024**2
    return torch.as_tensor(np.asarray(out[0])).to(torch.uint8), seconds, rise


def _variants(pre):
    from monai.transforms import AsDiscreted, Compose, Invertd
    from scripts.pipeline.inverted_argmax import InvertedArgmaxd

    return {
        "Invertd + AsDiscreted (before)": Compose(
            [
                Invertd("pred", transform=pre, orig_keys="image", nearest_interp=False, to_tensor=True),
                AsDiscreted("pred", argmax=True),
            ]
        ),
        "InvertedArgmaxd, every voxel interpolated": InvertedArgmaxd(
            "pred", transform=pre, orig_keys="image", interior_margin=None
        ),
        "InvertedArgmaxd, decided blocks skipped (shipped)": InvertedArgmaxd("pred", transform=pre, orig_keys="image"),
    }


def run(dataset_dir: str = "sample_data", n: int = 2, datalist_key: str = "testing", repeats: int = 3) -> str:
    """Time the variants on ``n`` subjects; returns the Markdown report."""
    from monai.bundle import ConfigParser
    from monai.transforms import Activationsd

    root = Path(__file__).resolve().parents[2]
    torch.set_num_threads(os.cpu_count() or 1)
    p = ConfigParser()
    p.read_config(str(root / "configs" / "inference.json"))
    p.update({"bundle_root": str(root), "dataset_dir": dataset_dir, "datalist_key": datalist_key})
    data = p.get_parsed_content("subjects")[:n]
    net = p.get_parsed_content("network")
    net.load_state_dict(torch.load(p.get_parsed_content("ckpt_path"), map_location="cpu", weights_only=True))
    net.eval()
    pre, inferer = p.get_parsed_content("preprocessing"), p.get_parsed_content("inferer")
    seconds, rises, differ = defaultdict(list), defaultdict(list), Counter()
    shape = None
    for entry in data:
        d = pre(dict(entry))
        with torch.no_grad():
            d["pred"] = inferer(d["image"][None], net)[0]
        d = Activationsd("pred", softmax=True)(d)
        d = {"image": d["image"], "pred": d["pred"]}
        reference = None
        for name, step in _variants(pre).items():
            for _ in range(repeats):
                labels, s, rise = _measured(step, d)
                seconds[name].append(s)
                rises[name].append(rise)
            reference = labels if reference is None else reference
            differ[name] += int((labels != reference).sum())
            shape = tuple(labels.shape)
    lines = [
        f"Subjects: {len(data)} from `{dataset_dir}` (input grid {shape}); {os.cpu_count()} CPU cores "
        f"({platform.machine()}), torch {torch.__version__}; {repeats} runs per subject.",
        "",
        "| probabilities -> labels on the input grid | median s | peak memory rise (GB, max) "
        "| voxels differing from before |",
        "|---|---|---|---|",
    ]
    for name in seconds:
        lines.append(f"| {name} | {np.median(seconds[name]):.2f} | {max(rises[name]):.2f} | {differ[name]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(run))
