"""Shared test fixtures: the bundle root on sys.path and the optional ../shared folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# pytest.ini runs the tests in worker processes (pytest-xdist, one file per worker at a time). PyTorch's threads in
# two workers on two cores contend and every test runs several times slower, so each worker and the bundle runs it
# starts get their share of the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

BUNDLE_ROOT = Path(__file__).resolve().parents[1]
SHARED = BUNDLE_ROOT.parent / "shared"
if str(BUNDLE_ROOT) not in sys.path:
    sys.path.insert(0, str(BUNDLE_ROOT))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``shared`` folder beside the checkout (present for developers and CI, not in a user's clone)."""
    if not SHARED.is_dir():
        if os.environ.get("REQUIRE_SHARED") == "1":
            pytest.fail(f"REQUIRE_SHARED=1 but {SHARED} is absent: CI must run the tests that read ../shared")
        pytest.skip(f"needs ../shared beside the checkout ({SHARED} is absent): real samples and the metadata schema")
    return SHARED
