"""scripts.quality.image_spine: the vertebral bodies found in the FF map, on phantoms made here, and their place in the
verdict when the label map holds no vertebral labels (the shipped 9-output network).

Known answers: on anatomy-complete phantoms (RAS and LPS storage) the detected body centres lie within 10 mm of the
true vertebral bodies' on most slices and never far from the true column; on a default (9-label) phantom the true
labels pass, and a psoas moved onto the anterior abdominal wall fails with a reason naming the vertebral bodies and
"(spine from the image)" (its QL still passes: a failed psoas is no reference for it); without an FF map
(single-contrast input), on an FF map without marrow contrast, or on a grid too coarse to resolve a body nothing is
found and no verdict changes."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.labels import label_value
from scripts.phantom import Acquisition, generate_subject
from scripts.quality.image_spine import ImageSpineLimits, find_spine
from scripts.quality.spine_anchor import FROM_IMAGE
from scripts.quality.verdict import assess_segmentation

#: phantom tissue ids (scripts/phantom/tissue_ids.py): bodies L1-L5, T12, T11; the column also holds discs, sacrum
_BODY_IDS, _COLUMN_IDS = (9, 10, 11, 12, 13, 15, 16), (9, 10, 11, 12, 13, 14, 15, 16, 17)


def _world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    return ijk @ affine[:3, :3].T + affine[:3, 3]


@pytest.fixture(scope="module")
def complete_pair():
    """The same anatomy-complete subject stored RAS and LPS: orientation -> (FF percent, tissue ids, affine)."""
    out = {}
    for orientation in ("RAS", "LPS"):
        subj = generate_subject(11, Acquisition.preset("low", orientation=orientation), anatomy="complete")
        ff = np.asarray(subj.images["ff_true"], dtype=np.float64) * 100.0
        out[orientation] = ff, subj.images["tissue"], subj.affine
    return out


@pytest.fixture(scope="module")
def default():
    subj = generate_subject(7, Acquisition.preset("low", orientation="LPS"))
    ff = np.asarray(subj.images["ff_true"], dtype=np.float64) * 100.0
    body = subj.images["inphase"] > 0.05 * np.percentile(subj.images["inphase"], 99)
    return subj.images["label"].astype(np.int16), ff, body, subj.affine


@pytest.mark.parametrize("orientation", ["RAS", "LPS"])
def test_the_bodies_found_lie_on_the_true_vertebral_bodies(complete_pair, orientation):
    ff, tissue, affine = complete_pair[orientation]
    spine = find_spine(ff, affine)
    assert spine.found, spine.reason
    ijk = np.argwhere(np.isin(tissue, _BODY_IDS))
    xyz, k = _world(affine, ijk.astype(float)), ijk[:, spine.axis]
    area = np.prod(np.linalg.norm(affine[:3, :3], axis=0)) / np.linalg.norm(affine[:3, spine.axis])
    slices = [s for s in np.unique(k) if (k == s).sum() * area >= 300.0]  # a body's cross-section, not its edge
    errors = []
    for s in slices:
        if s in spine.centres:
            true = np.median(xyz[k == s, :2], axis=0)
            errors.append(np.hypot(*(np.asarray(spine.centres[s]) - true)))
    errors = np.asarray(errors)
    assert len(errors) >= 0.8 * len(slices), (len(errors), len(slices))
    assert np.mean(errors <= 10.0) >= 0.9 and np.median(errors) < 3.0, errors
    # no body found off the column: every centre lies within 15 mm of the column's true voxels on its slice
    column = np.argwhere(np.isin(tissue, _COLUMN_IDS))
    cxyz, ck = _world(affine, column.astype(float)), column[:, spine.axis]
    for s, centre in spine.centres.items():
        assert (ck == s).any(), f"body found on slice {s} with no vertebral column"
        assert np.hypot(*(cxyz[ck == s, :2] - np.asarray(centre)).T).min() <= 15.0, (s, centre)
    assert spine.body_mask().sum() > 0 and spine.frame().source == "image"


def test_the_same_column_whatever_the_storage_orientation(complete_pair):
    centres = {}
    for orientation, (ff, _, affine) in complete_pair.items():
        spine = find_spine(ff, affine)
        z = {s: float(_world(affine, np.eye(3)[spine.axis] * s)[2]) for s in spine.centres}
        centres[orientation] = {round(z[s]): c for s, c in spine.centres.items()}
    shared = set(centres["RAS"]) & set(centres["LPS"])
    assert len(shared) >= 10
    # storage flips y in-plane (a one-voxel shift of the working grid at most): centres agree to a few mm
    gaps = [np.hypot(*(np.subtract(centres["RAS"][z], centres["LPS"][z]))) for z in shared]
    assert np.median(gaps) < 2.5 and max(gaps) < 6.0, gaps


def test_true_labels_pass_and_a_psoas_on_the_abdominal_wall_fails_against_the_bodies_found(default):
    labels, ff, body, affine = default
    assert labels.max() <= 8  # the shipped network's 9 outputs: no vertebral labels
    spine = find_spine(ff, affine, body)
    assert spine.found, spine.reason
    verdicts = assess_segmentation(labels, affine, ff=ff, body=body)
    assert {v.status for v in verdicts.values()} == {"pass"}, {k: v.reasons for k, v in verdicts.items()}
    psoas = label_value("psoas", "left")
    step = np.round(np.linalg.solve(affine[:3, :3], np.array([0.0, 110.0, 0.0]))).astype(int)
    moved = labels.copy()
    moved[moved == psoas] = 0
    moved[np.roll(labels == psoas, tuple(step), axis=(0, 1, 2)) & (moved == 0)] = psoas
    fatty = ff.copy()
    fatty[moved == psoas] = 93.0  # the rectus abdominis with its fat, as on the real scan
    verdict = assess_segmentation(moved, affine, ff=fatty, body=body)[psoas]
    spine_reasons = [r for r in verdict.reasons if "from the vertebral bodies" in r]
    assert verdict.status == "fail" and spine_reasons, verdict.reasons
    assert spine_reasons[0].startswith("fail: ") and spine_reasons[0].endswith(FROM_IMAGE)
    gap = float(spine_reasons[0].split("lies ")[1].split(" mm")[0])
    assert gap > 60.0  # moved 110 mm forward from beside the bodies
    assert not any("body outline only" in r for r in verdict.reasons)
    # the QL beside it is not judged against a psoas that failed against the bodies (as on the real CHAOS scan)
    ql = assess_segmentation(moved, affine, ff=fatty, body=body)[label_value("quadratus_lumborum", "left")]
    assert ql.status == "pass" and not any("psoas's" in r for r in ql.reasons), ql.reasons
    # the body outline alone (the search switched off) says so in its position reasons, and names no bodies
    alone = assess_segmentation(moved, affine, ff=fatty, body=body, spine_from_image=False)[psoas]
    assert not any("vertebral bodies" in r for r in alone.reasons)
    assert any(r.endswith("(body outline only: no vertebral labels in the map)") for r in alone.reasons)


def test_single_contrast_flat_or_coarse_input_finds_nothing_and_changes_no_verdict(default):
    labels, ff, body, affine = default
    single = find_spine(None, affine)
    assert not single.found and "single-contrast" in single.reason and single.frame() is None
    # an FF map with no marrow contrast: the body is one lean tissue (what a single contrast tells of fat)
    flat = np.where(body, 8.0, np.nan)
    nothing = find_spine(flat, affine, body)
    assert not nothing.found and nothing.centres == {} and nothing.reason.startswith("only 0 slices")
    coarse = affine.copy()
    coarse[:3, :2] *= 2.5  # 5 mm in-plane
    assert "coarser than" in find_spine(ff, coarse).reason
    psoas = label_value("psoas", "left")
    moved = np.where(labels == psoas, 0, labels)
    moved[np.roll(labels == psoas, 30, axis=1) & (moved == 0)] = psoas
    for ff_map in (None, flat):
        with_search = assess_segmentation(moved, affine, ff=ff_map, body=body)
        without = assess_segmentation(moved, affine, ff=ff_map, body=body, spine_from_image=False)
        assert {k: v.reasons for k, v in with_search.items()} == {k: v.reasons for k, v in without.items()}
        assert not any(FROM_IMAGE in r for v in with_search.values() for r in v.reasons)


def test_limits_are_applied(complete_pair):
    ff, _, affine = complete_pair["RAS"]
    spine = find_spine(ff, affine, limits=ImageSpineLimits(min_slices=10_000))
    assert not spine.found and "needs 10000 slices" in spine.reason and spine.frame() is None
