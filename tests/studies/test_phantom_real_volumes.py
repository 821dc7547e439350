"""Phantom vs the real MuscleMap lumbar sample: the real sample's label mapping and RAS sides, its levels from the
discs, disc detection on a synthetic profile, and phantom subjects' spine-relative positions."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.labels import label_value
from scripts.studies.phantom_real_measures import DISC_CENTRE_REL
from scripts.studies.phantom_real_volumes import detect_discs, phantom_volume

from tests.studies.phantom_real_cases import real_sample


@pytest.fixture(scope="module")
def real(shared_dir):
    # shared_dir (conftest) skips when ../shared is absent, or fails under REQUIRE_SHARED=1 as in CI
    return real_sample()


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


def test_detect_discs_keeps_complete_dips_only():
    profile = np.full(20, 100.0)
    profile[0:2] = 10.0  # touches the first slice: incomplete, left out
    profile[[6, 7, 8]] = [40.0, 20.0, 40.0]  # symmetric dip: centre on its darkest slice
    profile[14] = np.nan  # no spine reference there: not dark
    assert detect_discs(profile) == [pytest.approx(7.0)]


def test_phantom_volume_positions_are_spine_relative():
    vol = phantom_volume(0, "low", extra_keys=("fat",))
    assert vol.image.shape == vol.label.shape and set(vol.extra) == {"fat"}
    assert np.all(np.diff(vol.z_rel) > 0)
    # z_mm and z_rel both measure from the L5/S1 disc centre, z_rel in units of the subject's height factor
    k = vol.slice_at(DISC_CENTRE_REL["L5/S1"])
    assert abs(vol.z_mm[k]) <= vol.spacing[2] * vol.info["height_factor"]
