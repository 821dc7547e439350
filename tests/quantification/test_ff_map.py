"""compute_ff (scripts/quantification/ff_map.py): FF with known answers from each Dixon set, vendor map scales."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scripts.io.discover import discover_subjects
from scripts.io.errors import DixonInputError
from scripts.io.load import load_dixon
from scripts.phantom import Acquisition, generate_subject, write_subject
from scripts.quantification.ff_map import compute_ff

from tests.io.dixon_files import SHAPE, affine, phantom_cohort, water_fat, write


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Two tiny phantom subjects (one in "testing") written by the phantom's own cohort writer."""
    return phantom_cohort(tmp_path_factory.mktemp("cohort"))


def test_constant_water_fat_gives_known_ff(tmp_path):
    result = compute_ff(load_dixon(water_fat(tmp_path, water=80.0, fat=20.0)))
    np.testing.assert_allclose(result.ff, 0.2, rtol=0, atol=1e-7)
    p = result.provenance
    assert p["ff_method"] == "water_fat" and p["ff_scale_detected"] is None and p["ff_scale_override"] is False
    assert p["ff_source"] == "water=S1_water.nii.gz; fat=S1_fat.nii.gz"
    assert p["min_denominator"] == pytest.approx(0.05 * 100.0)
    np.testing.assert_array_equal(result.affine, affine())


def test_inphase_opposed_matches_water_fat_where_water_dominant(tmp_path):
    rng = np.random.default_rng(1)
    water = rng.uniform(40.0, 100.0, SHAPE).astype(np.float32)
    fat = (water * rng.uniform(0.02, 0.9, SHAPE)).astype(np.float32)  # FF 2-47 %: water-dominant
    fat[0] = water[0] * 3.0  # fat-dominant slab: the IP/OP assumption reads 1 - FF there
    wf = compute_ff(load_dixon(water_fat(tmp_path, water=water, fat=fat)))
    io_entry = {
        "subject": "S1",
        "inphase": write(tmp_path / "S1_IP.nii.gz", water + fat),
        "opposed": write(tmp_path / "S1_OP.nii.gz", np.abs(water - fat)),
    }
    io = compute_ff(load_dixon(io_entry))
    assert io.provenance["ff_method"] == "inphase_opposed_water_dominant"
    assert "FF < 50 %" in io.provenance["assumption"]
    np.testing.assert_allclose(io.ff[1:], wf.ff[1:], atol=1e-6)
    np.testing.assert_allclose(io.ff[0], 1.0 - wf.ff[0], atol=1e-6)


def test_vendor_map_in_percent_detected_and_divided(tmp_path):
    subj = generate_subject(5, Acquisition.preset("tiny", ff_scale="percent"))
    rel = write_subject(subj, tmp_path, write_ff_true=False)
    entry = {"subject": subj.subject_id, "inphase": str(tmp_path / rel["inphase"]), "ff": str(tmp_path / rel["ff"])}
    scan = load_dixon(entry)
    assert scan.dixon_set == "ff_map+inphase"
    result = compute_ff(scan)
    p = result.provenance
    assert p["ff_method"] == "vendor_map" and p["ff_scale"] == "percent" and p["ff_scale_detected"] == "percent"
    valid = np.isfinite(result.ff)
    assert valid.sum() > 1000
    np.testing.assert_allclose(result.ff[valid], subj.images["ff"][valid] / 100.0, atol=1e-6)
    forced = compute_ff(scan, method="vendor_map", ff_scale="percent").provenance
    assert forced["ff_scale_override"] is True


def test_undecidable_ff_scale_names_the_file(tmp_path):
    entry = {
        "subject": "S1",
        "inphase": write(tmp_path / "S1_IP.nii.gz", np.full(SHAPE, 100.0, np.float32)),
        "ff": write(tmp_path / "S1_FF.nii.gz", np.full(SHAPE, 0.01, np.float32)),
    }  # 1 %? 0.01 %? unknown
    scan = load_dixon(entry)
    with pytest.raises(
        DixonInputError,
        match=r"FF map image '.*S1_FF\.nii\.gz': the scale of the FF map cannot " r"be decided: .*ambiguous.*ff_scale=",
    ):
        compute_ff(scan)
    assert compute_ff(scan, ff_scale="fraction").provenance["ff_scale_override"] is True


def test_magnitude_discrimination_needs_inphase(tmp_path):
    scan = load_dixon(water_fat(tmp_path))
    with pytest.raises(
        DixonInputError,
        match=r"subject 'S1': method 'magnitude_discrimination' needs water, fat, "
        r"in-phase images; available: water \(S1_water\.nii\.gz\), fat",
    ):
        compute_ff(scan, method="magnitude_discrimination")


def test_phantom_ff_matches_truth_per_label(cohort):
    entry = discover_subjects(cohort, datalist=cohort / "datalist.json")[0]
    result = compute_ff(load_dixon(entry))
    assert result.provenance["ff_method"] == "water_fat"
    labels = np.asarray(nib.load(entry["label"]).dataobj)
    truth = pd.read_csv(cohort / "ground_truth.csv")
    truth = truth[(truth.subject == entry["subject"]) & (truth.side != "mean")].set_index("label")
    for value in range(1, 9):
        inside = result.ff[labels == value]
        assert np.isfinite(inside).all(), value
        # the CSV stores percent with 4 decimals: 5e-7 as a fraction, well inside the 1e-4 tolerance
        assert float(np.mean(inside)) == pytest.approx(truth.loc[value, "ff_mean_pct"] / 100.0, abs=1e-4)


def test_real_ge_sample_is_accepted(shared_dir):
    folder = shared_dir / "real-samples" / "ge_thigh_dixon_ff"
    (entry,) = discover_subjects(folder)
    assert entry["dixon_set"] == "water_fat" and Path(entry["ff"]).name == "fatfraction.nii.gz"
    assert Path(entry["label"]).name == "mask.nii.gz"
    with pytest.warns(RuntimeWarning, match="clipped to 0"):
        scan = load_dixon(entry)  # signed GE reconstruction: 1.4 % of water voxels below -10 % of P99
    vendor = compute_ff(scan, method="vendor_map")
    assert vendor.provenance["ff_scale_detected"] == "percent"
