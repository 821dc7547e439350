"""The real MuscleMap lumbar sample for the phantom-vs-real tests, skipped (or failed under REQUIRE_SHARED=1) when
it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from scripts.studies.phantom_real_measures import Volume
from scripts.studies.phantom_real_volumes import REAL_IMAGE, load_real_sample

SHARED = Path(__file__).resolve().parents[3] / "shared"
REAL_DIR = SHARED / "real-samples" / "musclemap_lumbar_sub0001"


def real_sample() -> Volume:
    """The sample as :func:`load_real_sample` reads it; call it from a fixture that depends on ``shared_dir``."""
    if not (REAL_DIR / REAL_IMAGE).is_file():
        msg = (
            f"needs the real MuscleMap lumbar sample in {REAL_DIR}: public real scans beside the checkout, "
            "not part of the bundle"
        )
        if os.environ.get("REQUIRE_SHARED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return load_real_sample(REAL_DIR)
