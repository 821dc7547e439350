"""The post-processing benchmark's measurement (scripts/tools/benchmark_postprocess.py): labels, time and memory."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import BUNDLE_ROOT

# Why a fresh process: the benchmark measures the resident-memory rise of a step, as its own `python -m` process
# does. In the test session an earlier in-process `monai.bundle run` has told glibc to keep freed memory
# (scripts/configuration/allocator.py), so a step's allocation may reuse pages already resident and show no rise.
_CHECK = """
import torch
from scripts.tools.benchmark_postprocess import _measured, _status_kb

def step(d):
    big = torch.ones(64 * 2**20 // 4)  # 64 MiB of float32, touched, then freed
    return {"pred": (d["pred"] + big[:1]).argmax(0, keepdim=True)}

probs = torch.zeros(3, 4, 5, 6)
probs[2] = 1.0
labels, seconds, rise_gb = _measured(step, {"pred": probs})
assert labels.dtype == torch.uint8 and labels.shape == (4, 5, 6) and bool((labels == 2).all())
assert seconds >= 0 and 0.05 <= rise_gb < 1.0, rise_gb
assert _status_kb("VmRSS") > 0
print("ok", rise_gb)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_measured_step_gives_its_labels_and_its_own_memory_rise() -> None:
    res = subprocess.run(
        [sys.executable, "-c", _CHECK],
        cwd=BUNDLE_ROOT,
        env={**os.environ, "PYTHONPATH": str(BUNDLE_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("ok")
