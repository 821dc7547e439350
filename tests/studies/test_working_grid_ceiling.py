"""scripts.studies.working_grid_ceiling: what a perfect network on the 2 mm working grid would cost, known answers."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from monai.data import MetaTensor
from scripts.studies.working_grid_ceiling import LABELS, soft_working_and_back, subject_rows, to_working_and_back

from tests.conftest import BUNDLE_ROOT

AFFINE = np.diag([1.0, 1.0, 4.0, 1.0])  # RAS, 1 x 1 x 4 mm: half the working voxel in-plane


def _case() -> tuple[np.ndarray, ...]:
    """A left psoas (label 1) of FF 10 %, 12 x 10 voxels on 4 slices, in fat of FF 90 %; the 'network' label is the
    psoas drawn two voxels too wide."""
    truth = np.zeros((32, 30, 4), np.uint8)
    truth[10:22, 10:20] = 1
    network = np.zeros_like(truth)
    network[8:24, 8:22] = 1
    ff_true = np.full(truth.shape, 0.90)
    ff_true[truth == 1] = 0.10
    return truth, network, 100.0 * ff_true, ff_true


def test_a_box_on_the_working_grid_comes_back_whole_and_a_thin_one_does_not():
    truth, *_ = _case()
    labels = MetaTensor(truth[None], affine=AFFINE)
    for back in (to_working_and_back(labels), soft_working_and_back(labels)):
        assert back.shape == truth.shape and back.dtype == np.uint8
        # 12 x 10 voxels = 12 x 10 mm: at most a native voxel lost or gained on each side of each row and column
        assert abs(int((back == 1).sum()) - int((truth == 1).sum())) <= 2 * (12 + 10) * 4
        assert ((back == 1) & (truth == 1)).sum() >= 10 * 8 * 4
    thin = np.zeros_like(truth)
    thin[10:22, 15] = 1  # one native voxel (1 mm) wide: below the 2 mm grid, the nearest-neighbour target loses it
    target = to_working_and_back(MetaTensor(thin[None], affine=AFFINE))
    assert (target == 1).sum() in (0, 2 * 12 * 4)  # either missed or drawn a working voxel (2 native) wide


def test_known_errors_of_the_true_label_and_of_a_two_voxel_rim():
    truth, network, ff_pct, ff_true = _case()
    rows = pd.DataFrame(subject_rows(truth, network, ff_pct, ff_true, AFFINE))
    assert set(rows.label_kind) == set(LABELS) and set(rows.label) == {1}
    row = rows.set_index("label_kind")
    # the true label on the exact FF map: no error; the trim takes nothing (no border voxel is over FF 0.7)
    assert row.loc["truth_plain", "ff_error_pp"] == pytest.approx(0.0, abs=1e-9)
    assert row.loc["truth", "ff_error_pp"] == pytest.approx(0.0, abs=1e-9)
    assert row.loc["truth", "dice"] == 1.0
    # the network's rim: the trim takes the outer ring (it touches unlabelled fat), the inner ring stays:
    # 120 muscle voxels at 10 % + 14 x 12 - 120 = 48 rim voxels at 90 % per slice
    assert row.loc["network", "ff_error_pp"] == pytest.approx(100 * (120 * 0.10 + 48 * 0.90) / 168 - 10.0)
    assert row.loc["network", "dice"] == pytest.approx(2 * 120 / (120 + 16 * 14))
    # a box of whole working voxels comes back with a small error, far below the rim's
    assert abs(row.loc["target", "ff_error_pp"]) < 5.0 and row.loc["target", "dice"] > 0.85


def test_the_documented_command_runs_on_a_cohort_written_in_the_test(tmp_path):
    truth, network, ff_pct, ff_true = _case()
    data, run = tmp_path / "data", tmp_path / "run"
    (data / "sub-01").mkdir(parents=True)
    (run / "sub-01").mkdir(parents=True)
    for array, path in (
        (truth, data / "sub-01" / "sub-01_label.nii.gz"),
        (ff_true.astype(np.float32), data / "sub-01" / "sub-01_ff_true.nii.gz"),
        (network, run / "sub-01" / "sub-01_seg.nii.gz"),
        (ff_pct.astype(np.float32), run / "sub-01" / "sub-01_ff.nii.gz"),
    ):
        nib.save(nib.Nifti1Image(array, AFFINE), str(path))
    entry = {"subject": "sub-01", "label": "sub-01/sub-01_label.nii.gz", "ff_true": "sub-01/sub-01_ff_true.nii.gz"}
    (data / "datalist.json").write_text(json.dumps({"validation": [entry]}))
    out = tmp_path / "ceiling.csv"
    cmd = [sys.executable, "-m", "scripts.studies.working_grid_ceiling", "--dataset_dir", str(data)]
    cmd += ["--run_dir", str(run), "--key", "validation", "--out_csv", str(out)]
    done = subprocess.run(cmd, cwd=BUNDLE_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "truth_plain" in done.stdout and "network" in done.stdout
    written = pd.read_csv(out)
    assert len(written) == len(LABELS) and set(written.subject) == {"sub-01"}
    net = written.set_index("label_kind").loc["network", "ff_error_pp"]
    assert net == pytest.approx(100 * (120 * 0.10 + 48 * 0.90) / 168 - 10.0, abs=1e-3)


def test_the_image_reference_leaves_out_the_ff_map_s_own_error_and_the_exact_one_keeps_it():
    truth, network, ff_pct, ff_true = _case()
    biased = ff_pct + np.where(truth == 1, 2.0, 0.0)  # an FF map reading the muscle 2 pp too fatty
    image = pd.DataFrame(subject_rows(truth, network, biased, ff_true, AFFINE)).set_index("label_kind")
    exact = pd.DataFrame(subject_rows(truth, network, biased, ff_true, AFFINE, "exact")).set_index("label_kind")
    assert image.loc["truth_plain", "ff_error_pp"] == pytest.approx(0.0, abs=1e-9)
    assert exact.loc["truth_plain", "ff_error_pp"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="reference"):
        subject_rows(truth, network, biased, ff_true, AFFINE, "nominal")
