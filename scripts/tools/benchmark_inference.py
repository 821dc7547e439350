"""Benchmark of inference.json: wall time per stage and peak memory per subject, then a batch in one process.

Usage, from the bundle root::

    python -m scripts.tools.benchmark_inference --dataset_dir sample_data --n 3

Stages are timed by running the config's own transform objects one by one (the same objects ``monai.bundle run``
uses), on the config's ``device`` (the GPU when torch sees one; CUDA work is synchronised before each clock read,
so a stage is charged its own kernels); the batch figure is the whole ``evaluator.run()`` over ``n`` subjects in one
process, so start-up (imports, network, weights) is paid once. Prints a Markdown table.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import fire
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _parser(bundle_root: Path, dataset_dir: str, output_dir: str, overrides: dict):
    from monai.bundle import ConfigParser

    p = ConfigParser()
    p.read_config(str(bundle_root / "configs" / "inference.json"))
    p.update({"bundle_root": str(bundle_root), "dataset_dir": dataset_dir, "output_dir": output_dir, **overrides})
    return p


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_text(device: torch.device) -> str:
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return "no GPU"


def run(dataset_dir: str = "sample_data", n: int = 3, datalist_key: str = "testing", **overrides) -> str:
    """Time ``n`` subjects stage by stage, then as one batch; returns the Markdown report."""
    root = Path(__file__).resolve().parents[2]
    torch.set_num_threads(os.cpu_count() or 1)
    stages: dict[str, list[float]] = defaultdict(list)
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        p = _parser(root, dataset_dir, tmp + "/staged", {"datalist_key": datalist_key, **overrides})
        t0 = time.perf_counter()
        # as the config's run does first: the typed settings, then the allocator (its effect is process-wide)
        p.get_parsed_content("settings")
        p.get_parsed_content("allocator")
        data = p.get_parsed_content("data")[:n]
        device = p.get_parsed_content("device")
        net = p.get_parsed_content("network")
        net.load_state_dict(torch.load(p.get_parsed_content("ckpt_path"), map_location=device, weights_only=True))
        net.eval()
        pre = p.get_parsed_content("preprocessing")
        inferer = p.get_parsed_content("inferer")
        post = p.get_parsed_content("postprocessing")
        startup = time.perf_counter() - t0
        for entry in data:
            t_sub = time.perf_counter()
            d = dict(entry)
            for tr in pre.transforms:
                t = time.perf_counter()
                d = tr(d)
                stages[f"pre: {type(tr).__name__}"].append(time.perf_counter() - t)
            t = time.perf_counter()
            # as SupervisedEvaluator does: the image on the device, autocast when the config asks for it
            with (
                torch.no_grad(),
                torch.autocast(
                    device.type, enabled=bool(p.get_parsed_content("amp")), **p.get_parsed_content("amp_kwargs")
                ),
            ):
                d["pred"] = inferer(d["image"][None].to(device), net)[0]
            _sync(device)
            stages["sliding-window inference"].append(time.perf_counter() - t)
            for tr in post.transforms:
                t = time.perf_counter()
                d = tr(d)
                _sync(device)
                stages[f"post: {type(tr).__name__}"].append(time.perf_counter() - t)
            totals.append(time.perf_counter() - t_sub)
        rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        gpu_gb = torch.cuda.max_memory_allocated(device) / 1024**3 if device.type == "cuda" else None
        # the batch: one evaluator run over the same subjects, as `monai.bundle run` does
        pb = _parser(root, dataset_dir, tmp + "/batch", {"datalist_key": datalist_key, **overrides})
        pb["data"] = data
        t = time.perf_counter()
        pb.get_parsed_content("evaluator").run()
        batch = time.perf_counter() - t
    lines = [
        f"Subjects: {len(totals)} from `{dataset_dir}`; machine: {os.cpu_count()} CPU cores "
        f"({platform.machine()}), torch {torch.__version__}, {_device_text(device)}.",
        "",
        "| stage | median s per subject |",
        "|---|---|",
    ]
    for k, v in stages.items():
        lines.append(f"| {k} | {np.median(v):.2f} |")
    lines += [
        f"| **total per subject (read to report)** | **{np.median(totals):.2f}** |",
        "",
        f"Start-up (config, network, weights): {startup:.1f} s. Peak RSS of the staged run: {rss_gb:.2f} GB."
        + (f" Peak GPU memory allocated: {gpu_gb:.2f} GB." if gpu_gb is not None else ""),
        f"Batch of {len(totals)} subjects in one `evaluator.run()`: {batch:.1f} s "
        f"({batch / max(len(totals), 1):.1f} s per subject).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(run))
