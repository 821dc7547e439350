"""scripts.configuration.allocator: freed memory kept for reuse (glibc), nothing changed elsewhere."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from scripts.configuration.allocator import reuse_freed_memory

ROOT = Path(__file__).resolve().parents[2]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Allocates and frees a 400 MB array, printing the resident memory (MB) while it lives and after it is freed.
_PROBE = """
import sys
import numpy as np
from scripts.configuration.allocator import reuse_freed_memory
accepted = reuse_freed_memory(sys.argv[1] == "true")
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
a = np.ones(100_000_000, dtype=np.float32)
live = rss_mb()
del a
freed = rss_mb()
b = np.ones(95_000_000, dtype=np.float32)  # a little smaller (small objects may sit at the top): the kept block
again = rss_mb()
print(accepted, round(live), round(freed), round(again))
"""


def _probe(enabled: bool) -> tuple[str, float, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(enabled).lower()],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0], float(out[1]), float(out[2]), float(out[3])


def test_disabled_changes_nothing():
    assert reuse_freed_memory(False) is False


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's; elsewhere the allocator is left as it is")
def test_freed_volume_is_kept_and_reused():
    accepted, live, freed, again = _probe(True)
    assert accepted == "True"
    # the 400 MB block stays resident after it is freed, and the next array of that size reuses it
    assert freed > live - 50
    assert again < live + 50


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's; elsewhere the allocator is left as it is")
def test_without_reuse_glibc_returns_the_block():
    accepted, live, freed, _ = _probe(False)
    assert accepted == "False"
    assert freed < live - 300  # munmap handed the 400 MB back: the behaviour the option changes
