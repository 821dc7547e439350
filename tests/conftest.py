"""Shared test fixtures: the bundle root on sys.path and the optional ../shared folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

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
