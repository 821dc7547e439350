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

#: the files that take a minute or more on the 2-core CI machine, longest first (the fresh-clone .ci/run of
#: 2026-12-08). pytest-xdist hands whole files to the two workers in collection order (pytest.ini:
#: --no-loadscope-reorder); a long file handed out near the end keeps one worker busy while the other idles, so these
#: start first and the many short files fill in behind them. Only the order changes, never what runs.
LONG_FILES_FIRST = (
    "tests/test_documented_commands.py",
    "tests/integrations/test_monailabel.py",
    "tests/test_deploy_app.py",
    "tests/pipeline/test_cohort_run.py",
    "tests/test_workflows.py",
    "tests/studies/test_cross_validation.py",
    "tests/test_zoo_release.py",
    "tests/phantom/test_phantom.py",
    "tests/studies/test_vertebral_candidate.py",
    "tests/studies/test_annotation_loop.py",
    "tests/quality/test_verdict.py",
    "tests/test_spine_workflow.py",
    "tests/studies/test_contrast_robustness.py",
    "tests/io/test_dicom_study.py",
    "tests/studies/test_ablation.py",
    "tests/pipeline/test_image_vertebrae_step.py",
    "tests/studies/test_image_spine_accuracy.py",
    "tests/studies/test_spine_real_samples.py",
    "tests/quantification/test_image_vertebrae.py",
)
_missing = [name for name in LONG_FILES_FIRST if not (BUNDLE_ROOT / name).is_file()]
assert not _missing, f"tests/conftest.py LONG_FILES_FIRST names files that no longer exist: {_missing}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files of :data:`LONG_FILES_FIRST` first, in that order; the tests inside a file keep their order."""
    rank = {name: i for i, name in enumerate(LONG_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``shared`` folder beside the checkout (present for developers and CI, not in a user's clone)."""
    if not SHARED.is_dir():
        if os.environ.get("REQUIRE_SHARED") == "1":
            pytest.fail(f"REQUIRE_SHARED=1 but {SHARED} is absent: CI must run the tests that read ../shared")
        pytest.skip(f"needs ../shared beside the checkout ({SHARED} is absent): real samples and the metadata schema")
    return SHARED
