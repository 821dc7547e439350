"""The post-processing benchmark's measurement (scripts/tools/benchmark_postprocess.py): labels, time and memory."""

from __future__ import annotations

import sys

import pytest
import torch
from scripts.tools.benchmark_postprocess import _measured, _status_kb


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_measured_step_gives_its_labels_and_its_own_memory_rise() -> None:
    def step(d: dict) -> dict:
        big = torch.ones(64 * 2**20 // 4)  # 64 MiB of float32, touched, then freed
        return {"pred": (d["pred"] + big[:1]).argmax(0, keepdim=True)}

    probs = torch.zeros(3, 4, 5, 6)
    probs[2] = 1.0
    labels, seconds, rise_gb = _measured(step, {"pred": probs})
    assert labels.dtype == torch.uint8 and labels.shape == (4, 5, 6) and bool((labels == 2).all())
    assert seconds >= 0 and 0.05 <= rise_gb < 1.0
    assert _status_kb("VmRSS") > 0
