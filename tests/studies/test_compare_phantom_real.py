"""Phantom vs the real MuscleMap lumbar sample: level detection, label mapping and muscle sizes within a factor 2."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scripts.labels import label_value
from scripts.studies.compare_phantom_real import (
    REAL_IMAGE,
    compare_bands,
    load_real_sample,
    phantom_volume,
    spine_reference,
    volume_metrics,
)

SHARED = Path(__file__).resolve().parents[3] / "shared"
REAL_DIR = SHARED / "real-samples" / "musclemap_lumbar_sub0001"
#: the most cranial band of the real scan (it ends in the L4 body): the nearest it comes to mid-lumbar.
MID_BAND = "L4 body"


@pytest.fixture(scope="module")
def real(shared_dir):
    # shared_dir (conftest) skips when ../shared is absent, or fails under REQUIRE_SHARED=1 as in CI
    if not (REAL_DIR / REAL_IMAGE).is_file():
        msg = (
            f"needs the real MuscleMap lumbar sample in {REAL_DIR}: public real scans beside the checkout, "
            "not part of the bundle"
        )
        if os.environ.get("REQUIRE_SHARED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return load_real_sample(REAL_DIR)


@pytest.fixture(scope="module")
def real_metrics(real) -> pd.DataFrame:
    return volume_metrics(real, None)


@pytest.fixture(scope="module")
def phantom_metrics() -> list[pd.DataFrame]:
    # three "low" geometry subjects (2 x 2 x 5 mm, ~2 s each): one subject alone varies too much for the check
    return [volume_metrics(phantom_volume(seed, "low", extra_keys=())) for seed in (0, 1, 2)]


def test_real_sample_is_ras_with_bundle_labels_on_the_right_sides(real):
    assert real.label.max() <= 8
    assert not np.isin(real.label, [label_value("iliacus", s) for s in ("left", "right")]).any()
    for muscle in ("psoas", "quadratus_lumborum", "erector_spinae_multifidus"):
        xl = np.argwhere(real.label == label_value(muscle, "left"))[:, 0].mean()
        xr = np.argwhere(real.label == label_value(muscle, "right"))[:, 0].mean()
        assert xr > xl + 20, muscle  # RAS array: index 0 grows towards the patient's right


def test_real_levels_found_from_the_discs(real):
    discs = real.info["discs"]
    assert list(discs) == ["L5/S1", "L4/L5"]
    assert 3.5 < discs["L5/S1"] < 5.5 and 11.5 < discs["L4/L5"] < 13.5
    assert 30.0 < real.info["level_mm"] < 40.0
    assert real.z_rel[0] < -10.0 and 55.0 < real.z_rel[-1] < 75.0  # upper S1 to the upper L4 body


def test_spine_reference_needs_both_sides():
    lab = np.zeros((20, 20), np.uint8)
    lab[2:6, 2:8] = label_value("erector_spinae_multifidus", "left")
    assert spine_reference(lab, (1.0, 1.0)) is None
    lab[12:16, 2:8] = label_value("erector_spinae_multifidus", "right")
    x_ref, y_ref = spine_reference(lab, (1.0, 1.0))
    assert x_ref == pytest.approx(8.5) and 6.0 <= y_ref <= 7.0


def test_phantom_mid_lumbar_areas_within_factor_two_of_real(real_metrics, phantom_metrics):
    table = compare_bands(real_metrics, phantom_metrics)
    mid = table[table.band == MID_BAND].set_index("muscle")
    assert set(mid.index) == {"psoas", "quadratus_lumborum", "erector_spinae_multifidus"}
    for muscle, row in mid.iterrows():
        assert row.real_area_cm2 > 2.0, muscle
        ratio = row.phantom_area_cm2 / row.real_area_cm2
        assert 0.5 <= ratio <= 2.0, (muscle, row.phantom_area_cm2, row.real_area_cm2)
