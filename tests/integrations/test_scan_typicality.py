"""Scan descriptors and information density (scripts.integrations.scan_typicality), on tiny phantoms made here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scripts.integrations.scan_typicality import (
    FEATURES,
    N_FEATURES,
    ScanDescriptor,
    describe_scan,
    pool_density,
    standardise,
    typical_score,
)
from scripts.phantom import Acquisition, generate_subject

TINY_SHAPE, TINY_SPACING = (64, 52, 32), (6.8, 6.8, 11.8)


def _save(path: Path, image: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(image, affine), path)
    return path


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[dict[str, Path], dict]:
    """Four full-coverage tiny phantoms (two stored LPS) and one truncated to part of its slices."""
    folder = tmp_path_factory.mktemp("typicality")
    files, flags = {}, {}
    for seed, orientation, coverage in ((1, "RAS", "full"), (2, "LPS", "full"), (3, "RAS", "full"), (4, "LPS", "full")):
        acq = Acquisition.preset("tiny", orientation=orientation, coverage=coverage)
        s = generate_subject(seed, acq)
        files[s.subject_id] = _save(folder / f"{s.subject_id}.nii.gz", s.images["inphase"], s.affine)
    s = generate_subject(5, Acquisition.preset("tiny", coverage="truncated"))
    files["truncated"] = _save(folder / "truncated.nii.gz", s.images["inphase"], s.affine)
    flags["truncated"] = s.flags["truncated_slices"]
    return files, flags


def test_descriptor_measures_the_field_in_world_terms(pool, tmp_path):
    files, flags = pool
    full = describe_scan(files["sub-0001"])
    assert full.extent_mm == pytest.approx([n * s for n, s in zip(TINY_SHAPE, TINY_SPACING)], rel=1e-5)
    assert full.spacing_mm == pytest.approx(TINY_SPACING, rel=1e-5)
    assert 0.1 < full.body_fraction < 0.9 and all(a > 1000 for a in full.body_area_mm2)
    k0, k1 = flags["truncated"]
    cut = describe_scan(files["truncated"])
    assert cut.extent_mm[2] == pytest.approx((k1 - k0) * TINY_SPACING[2], rel=1e-5) and k1 - k0 < TINY_SHAPE[2]
    # the same scan stored with its slices reversed (superior first) and the affine fixed: the same description,
    # the inferior third still first
    img = nib.load(files["sub-0001"])
    flip = np.diag([1.0, 1.0, -1.0, 1.0])
    flip[2, 3] = TINY_SHAPE[2] - 1
    stored = _save(tmp_path / "flipped.nii.gz", np.asarray(img.dataobj)[:, :, ::-1], img.affine @ flip)
    assert nib.aff2axcodes(nib.load(stored).affine)[2] == "I"
    again = describe_scan(stored)
    np.testing.assert_allclose(again.vector(), full.vector(), atol=1e-9)
    assert again.body_area_mm2 == pytest.approx(full.body_area_mm2)
    # a JSON round trip (the strategy's cache) keeps every value
    assert ScanDescriptor.from_dict(json.loads(json.dumps(full.as_dict()))) == full


def test_the_truncated_phantom_is_the_least_typical_of_the_pool(pool):
    files, _ = pool
    density = pool_density({k: describe_scan(p) for k, p in files.items()})
    assert set(density) == set(files) and all(0 < d <= 1 for d in density.values())
    assert min(density, key=density.get) == "truncated", density


def _descriptor(extent_si: float = 300.0, body_fraction: float = 0.4) -> ScanDescriptor:
    return ScanDescriptor(
        extent_mm=(400.0, 320.0, extent_si),
        spacing_mm=(1.5, 1.5, 4.0),
        body_fraction=body_fraction,
        body_area_mm2=(60000.0, 50000.0, 40000.0),
        body_signal=(600.0, 500.0, 400.0),
    )


def test_identical_scans_have_density_one_and_a_single_scan_too():
    assert pool_density({k: _descriptor() for k in "abc"}) == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert pool_density({"only": _descriptor(extent_si=10.0)}) == {"only": 1.0}
    assert pool_density({}) == {}


def test_density_known_answer_for_one_differing_feature():
    # c covers a field 20 % shorter than a and b: log extents a, a, a + ln 0.8. The MAD is 0 (two of three agree),
    # so the scale is the floor, ln 1.05, and c's z-score is ln 0.8 / ln 1.05; every other feature agrees.
    density = pool_density({"a": _descriptor(), "b": _descriptor(), "c": _descriptor(extent_si=240.0)})
    sim_ac = math.exp(-((math.log(0.8) / math.log(1.05)) ** 2) / (2 * N_FEATURES))
    assert 0.3 < sim_ac < 0.4  # exp(-4.57^2 / 20)
    assert density["c"] == pytest.approx(sim_ac, rel=1e-6)
    assert density["a"] == density["b"] == pytest.approx((1 + sim_ac) / 2, rel=1e-6)


def test_standardise_is_robust_and_guards_zero_spread():
    table = np.array(
        [
            [3.0, 5.0, 0.0, 1.0],
            [1.0, 5.0, 0.0, 1.001],
            [2.0, 5.0, 0.0, 0.999],
            [4.0, 5.0, 0.0, 1.0],
            [5.0, 5.0, 1.0, 1.0],
        ]
    )
    z = standardise(table, floors=np.array([1e-6, 1e-6, 0.1, 0.05]))
    np.testing.assert_allclose(z[:, 0], (table[:, 0] - 3.0) / 1.4826)  # median 3, MAD 1
    assert (z[:, 1] == 0).all()  # no spread: every scan at 0, no division by zero
    np.testing.assert_allclose(z[:, 2], table[:, 2] / 0.1)  # MAD 0 (4 of 5 agree): the lone exception over the floor
    np.testing.assert_allclose(z[:, 3], (table[:, 3] - 1.0) / 0.05)  # spread below the floor: the floor
    assert standardise(np.zeros((3, N_FEATURES))).tolist() == np.zeros((3, N_FEATURES)).tolist()
    with pytest.raises(ValueError, match="finite"):
        standardise(np.array([[1.0, np.nan]]), floors=np.ones(2))
    with pytest.raises(ValueError, match="floors"):
        standardise(np.ones((2, 3)), floors=np.ones(2))


def test_typical_score_discounts_the_doubt_by_density():
    assert typical_score(0.2, 0.25) == pytest.approx(0.05)
    assert typical_score(0.2, 0.25, beta=2.0) == pytest.approx(0.0125)
    assert typical_score(0.2, 0.25, beta=0.0) == 0.2
    with pytest.raises(ValueError, match="beta"):
        typical_score(0.2, 0.5, beta=-1.0)
    with pytest.raises(ValueError, match="density"):
        typical_score(0.2, 1.5)
    assert len(FEATURES) == N_FEATURES == len(_descriptor().vector())


def test_describe_refuses_what_it_cannot_describe(tmp_path):
    flat = _save(tmp_path / "flat.nii.gz", np.ones((16, 16, 2), np.float32), np.eye(4))
    with pytest.raises(ValueError, match=r"flat\.nii\.gz: 2 slice"):
        describe_scan(flat)
    empty = _save(tmp_path / "empty.nii.gz", np.zeros((16, 16, 8), np.float32), np.eye(4))
    with pytest.raises(ValueError, match=r"empty\.nii\.gz: no signal"):
        describe_scan(empty)
    series = _save(tmp_path / "series.nii.gz", np.ones((16, 16, 8, 2), np.float32), np.eye(4))
    with pytest.raises(ValueError, match=r"series\.nii\.gz: expected one 3D volume"):
        describe_scan(series)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"broken\.nii\.gz: not readable"):
        describe_scan(broken)
