"""The iliac crest's height: fixed by default (earlier phantoms unchanged), drawn per subject with ``"varied"``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scripts.labels import label_value
from scripts.phantom import generate as gen
from scripts.phantom.acquisition import Acquisition
from scripts.phantom.anatomy import SubjectAnatomy
from scripts.phantom.cohort import generate_cohort

from tests.conftest import BUNDLE_ROOT


def _anatomy(shift: float) -> SubjectAnatomy:
    return SubjectAnatomy(
        sex="F",
        age=40,
        bmi=23.0,
        height_factor=1.0,
        width_factor=1.0,
        muscle_scale={},
        muscle_ff={},
        lordosis_mm=15.0,
        offset_mm=(0.0, 0.0, 0.0),
        marrow_ff=0.4,
        marbling=1.0,
        crest_shift_mm=shift,
    )


def test_crest_keyframes_move_in_proportion_between_fixed_point_and_crest():
    z = _anatomy(-30.0).crest_z_rel([100.0, 85.0, 51.5, 18.0, 0.0], fixed_at=85.0, crest_at=18.0)
    np.testing.assert_allclose(z, [100.0, 85.0, 36.5, -12.0, -30.0])
    np.testing.assert_allclose(_anatomy(0.0).crest_z_rel([50.0, -60.0], -60.0, 50.0), [50.0, -60.0])


def test_fixed_is_zero_and_varied_draws_a_repeatable_shift_within_the_range():
    assert gen.crest_shift(3, "fixed") == 0.0
    shifts = [gen.crest_shift(s, "varied") for s in range(200)]
    lo, hi = gen.CREST_SHIFT_RANGE_MM
    assert lo <= min(shifts) < lo + 5 and hi - 5 < max(shifts) <= hi
    assert gen.crest_shift(7, "varied") == gen.crest_shift(7, "varied")
    with pytest.raises(ValueError, match="crest_height must be one of"):
        gen.crest_shift(1, "low")
    with pytest.raises(ValueError, match="crest_height must be one of"):
        gen.generate_subject(1, Acquisition.preset("tiny"), crest_height="high")


def _z_extent_mm(subject, value: int) -> tuple[float, float]:
    """World z (mm) of the lowest and highest slice holding ``value`` (RAS storage: z grows with the index)."""
    zs = np.where((subject.images["label"] == value).any(axis=(0, 1)))[0]
    z_world = subject.affine[2, 2] * zs + subject.affine[2, 3]
    return float(z_world.min()), float(z_world.max())


@pytest.mark.parametrize("anatomy", ["default", "complete"])
def test_a_lower_crest_lowers_the_ql_end_and_the_iliacus_top_and_nothing_else(monkeypatch, anatomy):
    acq = Acquisition.preset("low")
    fixed = gen.generate_subject(12, acq, anatomy=anatomy)
    monkeypatch.setattr(gen, "crest_shift", lambda seed, crest_height: -30.0)
    low = gen.generate_subject(12, acq, anatomy=anatomy, crest_height="varied")
    assert low.flags["crest_shift_mm"] == -30.0 and "crest_shift_mm" not in fixed.flags
    assert low.participant == fixed.participant
    assert low.flags["muscle_ff_target"] == fixed.flags["muscle_ff_target"]
    slice_mm = acq.spacing[2]
    for side in ("left", "right"):
        ql_fixed, ql_low = (_z_extent_mm(s, label_value("quadratus_lumborum", side)) for s in (fixed, low))
        il_fixed, il_low = (_z_extent_mm(s, label_value("iliacus", side)) for s in (fixed, low))
        # the QL's lower end moves with the whole shift, its top (at the 12th rib) stays
        assert ql_low[0] < ql_fixed[0] - 20.0
        assert abs(ql_low[1] - ql_fixed[1]) <= slice_mm
        assert il_low[1] < il_fixed[1] - 20.0
        # psoas and ES+MF do not hang from the crest
        for muscle in ("psoas", "erector_spinae_multifidus"):
            value = label_value(muscle, side)
            np.testing.assert_allclose(_z_extent_mm(low, value), _z_extent_mm(fixed, value), atol=slice_mm)


def test_varied_cohort_from_the_command_line_records_each_subjects_shift(tmp_path):
    # the guide's command, made tiny
    cmd = "-m scripts.phantom cohort --out_dir {} --n 2 --seed 4 --crest_height varied --n_validation 0"
    cmd += " --geometry tiny --variety false --progress false"
    subprocess.run([sys.executable, *cmd.format(tmp_path / "c").split()], cwd=BUNDLE_ROOT, check=True)
    table = pd.read_csv(tmp_path / "c" / "participants.tsv", sep="\t")
    expected = [round(gen.crest_shift(4 * 100003 + i, "varied"), 2) for i in range(2)]
    np.testing.assert_allclose(table["crest_shift_mm"], expected)
    with pytest.raises(ValueError, match="crest_height must be one of"):
        generate_cohort(tmp_path / "d", n=1, geometry="tiny", progress=False, crest_height="sometimes")
