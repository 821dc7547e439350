"""scripts.studies.border_trim_variants: each side's FF error under other border-trim thresholds, known answers."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scripts.quantification.statistics import trim_fat_border
from scripts.studies.border_trim_variants import peel_fat_border, peel_passes, side_errors, summary

from tests.conftest import BUNDLE_ROOT


def _case() -> tuple[np.ndarray, ...]:
    """A psoas of FF 10 % (6 x 6 voxels, 3 slices) drawn one voxel too wide into tissue of FF 75 %."""
    truth = np.zeros((12, 12, 3), np.uint8)
    truth[3:9, 3:9] = 1
    pred = np.zeros_like(truth)
    pred[2:10, 2:10] = 1  # a ring of 28 extra voxels per slice
    ff_true = np.full(truth.shape, 0.75)
    ff_true[truth == 1] = 0.10
    return pred, truth, 100.0 * ff_true, ff_true


def test_the_default_keeps_a_border_whose_neighbour_is_not_fat_enough_and_a_lower_fat_level_trims_it():
    pred, truth, ff_pct, ff_true = _case()
    rows = side_errors(pred, truth, ff_pct, ff_true, np.eye(4), variants=[None, (0.7, 0.8), (0.7, 0.7)])
    errors = {r["variant"]: r for r in rows}
    assert set(errors) == {"none", "0.7/0.8", "0.7/0.7"}  # one side: the truth holds only the left psoas
    # 36 muscle voxels at 10 % and 28 ring voxels at 75 % per slice: mean 38.4375 %, 28.4375 pp too high
    assert errors["none"]["ff_error_pp"] == pytest.approx(100 * (36 * 0.10 + 28 * 0.75) / 64 - 10.0)
    assert errors["0.7/0.8"]["ff_error_pp"] == pytest.approx(errors["none"]["ff_error_pp"])  # neighbour 75 % < 80 %
    assert errors["0.7/0.7"]["ff_error_pp"] == pytest.approx(0.0, abs=1e-9)  # the ring goes, the muscle stays
    assert errors["0.7/0.7"]["n_voxels"] == 36 * 3 and errors["0.7/0.7"]["muscle"] == "psoas"
    table = summary(pd.DataFrame(rows))
    assert list(table.variant.astype(str)) == ["none", "0.7/0.8", "0.7/0.7"]
    assert table.bias_pp.iloc[2] == pytest.approx(0.0, abs=1e-9) and (table.sides == 1).all()


def _two_voxel_rim() -> tuple[np.ndarray, ...]:
    """A psoas of FF 10 % (6 x 6 voxels, 3 slices) drawn two voxels too wide into fat of FF 90 %, one fat voxel
    (marbling) in its middle."""
    truth = np.zeros((14, 14, 3), np.uint8)
    truth[4:10, 4:10] = 1
    pred = np.zeros_like(truth)
    pred[2:12, 2:12] = 1  # two rings: 36 + 28 extra voxels per slice, 64 in all
    ff = np.full(truth.shape, 0.90)
    ff[truth == 1] = 0.10
    ff[6, 6, :] = 0.90
    return pred, truth, ff


def test_a_peel_takes_a_fat_rim_as_deep_as_its_passes_and_never_the_marbling():
    pred, truth, ff = _two_voxel_rim()
    once = peel_fat_border(pred, ff, 2, 0.7, 0.8, 1)
    np.testing.assert_array_equal(once, trim_fat_border(pred, ff, 2))  # one pass is the bundle's trim
    assert int(once[:, :, 0].sum()) == 100 - 36  # the outer ring only
    twice = peel_fat_border(pred, ff, 2, 0.7, 0.8, 2)
    np.testing.assert_array_equal(twice, truth)  # both rings; the marbling voxel inside stays labelled
    np.testing.assert_array_equal(peel_fat_border(pred, ff, 2, 0.7, 0.8, 5), truth)  # nothing more to take
    rows = side_errors(pred, truth, 100 * ff, ff, np.eye(4), variants=[(0.7, 0.8), (0.7, 0.8, 2)])
    errors = {r["variant"]: r["ff_error_pp"] for r in rows}
    # truth: 35 voxels at 10 % and one at 90 % per slice; exact mean 12.2222 %
    exact = 100 * (35 * 0.10 + 0.90) / 36
    assert errors["0.7/0.8 x2"] == pytest.approx(0.0, abs=1e-9)
    assert errors["0.7/0.8"] == pytest.approx(100 * (35 * 0.10 + 29 * 0.90) / 64 - exact)


def test_a_depth_in_mm_peels_as_many_native_voxels_as_make_the_working_voxel():
    pred, truth, ff = _two_voxel_rim()
    fine, coarse = np.diag([1.0, 1.0, 4.0, 1.0]), np.diag([2.0, 2.0, 4.0, 1.0])
    assert peel_passes("2mm", 1.0) == 2 and peel_passes("2mm", 2.0) == 1 and peel_passes("2mm", 0.8) == 3
    assert peel_passes("2mm", 5.0) == 1 and peel_passes(3, 1.0) == 3
    by_grid = {}
    for name, affine in (("fine", fine), ("coarse", coarse)):
        rows = side_errors(pred, truth, 100 * ff, ff, affine, variants=[(0.7, 0.8, "2mm")])
        by_grid[name] = rows[0]["n_voxels"]
    assert by_grid == {"fine": 36 * 3, "coarse": 64 * 3}
    for bad in (0, 1.5, "2", "two mm"):
        with pytest.raises(ValueError, match="passes must be"):
            peel_passes(bad, 1.0)
    with pytest.raises(ValueError, match="trim_ff <= fat_ff"):
        peel_fat_border(pred, ff, 2, 0.9, 0.8, 2)


def test_the_documented_command_on_a_validation_list(tmp_path):
    """``python -m scripts.studies.border_trim_variants ... --key validation``, as heldout_phantoms.md runs it, on one
    subject written here (1 x 1 x 4 mm, so ``2mm`` peels two voxels)."""
    pred, truth, ff = _two_voxel_rim()
    affine = np.diag([1.0, 1.0, 4.0, 1.0])
    cohort, run = tmp_path / "cohort", tmp_path / "run" / "sub-0001"
    (cohort / "sub-0001").mkdir(parents=True)
    run.mkdir(parents=True)
    nib.save(nib.Nifti1Image(truth, affine), str(cohort / "sub-0001" / "label.nii.gz"))
    nib.save(nib.Nifti1Image(ff.astype(np.float32), affine), str(cohort / "sub-0001" / "ff_true.nii.gz"))
    nib.save(nib.Nifti1Image(pred, affine), str(run / "sub-0001_seg.nii.gz"))
    nib.save(nib.Nifti1Image((100 * ff).astype(np.float32), affine), str(run / "sub-0001_ff.nii.gz"))
    entry = {"subject": "sub-0001", "label": "sub-0001/label.nii.gz", "ff_true": "sub-0001/ff_true.nii.gz"}
    (cohort / "datalist.json").write_text(json.dumps({"training": [], "validation": [entry]}))
    out_csv = tmp_path / "trim.csv"
    cmd = [sys.executable, "-m", "scripts.studies.border_trim_variants", "--dataset_dir", str(cohort)]
    cmd += ["--run_dir", str(run.parent), "--key", "validation", "--out_csv", str(out_csv)]
    done = subprocess.run(cmd, cwd=BUNDLE_ROOT, check=True, capture_output=True, text=True)
    assert "0.7/0.8 x2mm" in done.stdout, done.stdout
    errors = pd.read_csv(out_csv).set_index("variant").ff_error_pp
    assert errors["0.7/0.8 x2mm"] == pytest.approx(0.0, abs=1e-3)  # both rings peeled at 1 mm
    assert errors["0.7/0.8"] == pytest.approx(
        100 * (35 * 0.10 + 29 * 0.90) / 64 - 100 * (35 * 0.10 + 0.90) / 36, abs=1e-3
    )
