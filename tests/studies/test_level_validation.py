"""The level validation study: the generator's true planes agree with its vertebrae map, crops keep the world
positions, and a cohort of one tiny phantom is evaluated with no misnamed level."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scripts.phantom import Acquisition
from scripts.phantom.generate import generate_subject, write_subject
from scripts.quantification.levels import assign_levels, measure_bodies
from scripts.studies.level_validation import crop_to_z, evaluate_subject, generator_bounds, summarise, true_levels

from tests.quantification.level_cases import affine, spine_label


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    out = tmp_path_factory.mktemp("levels")
    subj = generate_subject(11, Acquisition.preset("low", orientation="LPS"), anatomy="complete")
    write_subject(subj, out)
    row = pd.Series({"participant_id": subj.subject_id, "seed": 11, "texture": "smooth"})
    return out, subj, row


def test_generator_planes_lie_between_the_painted_bodies(phantom):
    _, subj, row = phantom
    planes = generator_bounds(11, subj.subject_id)
    bodies = {b.name: b for b in measure_bodies(subj.images["vertebrae"], subj.affine)}
    for upper, lower in (("L4", "L5"), ("L3", "L4"), ("L2", "L3")):
        z = planes[f"{upper}/{lower}"]
        assert bodies[lower].z_high - 1.0 < z < bodies[upper].z_low + 1.0
        assert abs(z - 0.5 * (bodies[lower].z_high + bodies[upper].z_low)) < 3.0
    assert planes["L5/S1"] < bodies["L5"].z_low + 1.0
    levels = true_levels(planes)
    assert levels["L3"] == (planes["L3/L4"], planes["L2/L3"])


def test_crop_keeps_world_positions():
    lab, aff = spine_label(), affine()
    (cut,), new = crop_to_z([lab], aff, 23.0, 159.0)
    assert cut.shape[2] == 68 and new[2, 3] == pytest.approx(24.0)
    res = assign_levels(cut, new)
    assert [lv.name for lv in res.levels] == ["L2", "L3", "L4", "L5"] and res.status == "uncertain"


def test_one_phantom_has_no_misnamed_level(phantom):
    out, _, row = phantom
    names, errors = evaluate_subject(out, row)
    names, errors = pd.DataFrame(names), pd.DataFrame(errors)
    assert set(names.scenario) == {
        "as_stored",
        "L2-L5",
        "L3-S1",
        "T12-L3",
        "names one level high",
        "names one level high, L3-S1",
        "L2-L5, stated L5",
        "T12-L3, stated L3",
        "L3-S1, stated L4 (wrong)",
    }
    assert not names.misnamed.any()
    # the sacrum is out of view in L2-L5 and T12-L3: uncertain from the names alone, ok from the statement
    for plain, stated in (("L2-L5", "L2-L5, stated L5"), ("T12-L3", "T12-L3, stated L3")):
        assert set(names[names.scenario == plain].status) == {"uncertain"}
        assert set(names[names.scenario == stated].status) == {"ok"}
    wrong = names[names.scenario == "L3-S1, stated L4 (wrong)"]
    assert set(wrong.naming) == {"kept"} and wrong.reasons.str.len().eq(0).all()  # the sacrum's names stand
    # names one level high are counted back from the sacrum: the same levels, ok, as the truth's
    shifted = names[names.scenario == "names one level high"]
    assert set(shifted.naming) == {"renamed"} and set(shifted.status) == {"ok"}
    stored = names[names.scenario == "as_stored"]
    assert list(shifted.level) == list(stored.level) and set(stored.naming) == {"confirmed"}
    np.testing.assert_allclose(shifted.err_low_mm, stored.err_low_mm)
    assert set(names[names.scenario == "L2-L5"].level) == {"L2", "L3", "L4", "L5"}
    assert set(names[names.scenario == "L2-L5"].status) == {"uncertain"}
    assert set(names[names.scenario == "L3-S1"].status) == {"ok"}
    summary = summarise(names, errors).set_index("scenario")
    assert summary.loc["as_stored", "bounds_within_3mm_pct"] >= 80.0
    assert summary.loc["as_stored", "ff_level_abs_err_median_pp"] < 0.7
    assert np.isfinite(summary.loc["L3-S1", "csa_abs_err_median_pct"])


def test_a_runs_vertebral_map_is_scored_as_a_spine_network_names_it(phantom, tmp_path):
    out, subj, row = phantom
    sid = subj.subject_id
    truth = np.where(subj.images["label"] > 0, subj.images["label"], subj.images["vertebrae"]).astype(np.uint8)
    (tmp_path / sid).mkdir()
    nib.save(nib.Nifti1Image(truth, subj.affine), str(tmp_path / sid / f"{sid}_seg.nii.gz"))
    names, _ = evaluate_subject(out, row, pred_dir=tmp_path)
    names = pd.DataFrame(names)
    # a perfect run: the same levels and bounds as the truth, named by counting; no simulated naming errors
    assert not any(s.startswith("names one level high") for s in names.scenario)
    stored = names[names.scenario == "as_stored"]
    ref = pd.DataFrame(evaluate_subject(out, row)[0])
    ref = ref[ref.scenario == "as_stored"]
    assert set(stored.naming) == {"counted"} and list(stored.level) == list(ref.level)
    np.testing.assert_allclose(stored.err_high_mm, ref.err_high_mm)
    # without the sacrum a spine network's bodies get no names, so no level, and never a misnamed one
    assert "L2-L5" not in set(names.scenario) and not names.misnamed.any()
    with pytest.raises(FileNotFoundError, match="run inference on the cohort first"):
        evaluate_subject(out, row, pred_dir=tmp_path / "empty")
