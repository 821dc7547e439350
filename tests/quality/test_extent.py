"""scripts.quality.extent and its place in the verdict: known ratios on slice profiles made here; on phantoms the true
labels (full and truncated coverage) pass, an eroded side is asked to be reviewed for its volume, a side cut to its
upper third fails for its extent, with the reason in words."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scripts.labels import LEFT_RIGHT_SWAP, label_value
from scripts.phantom import Acquisition, generate_subject
from scripts.quality.extent import ExtentLimits, extent_findings, pair_figures
from scripts.quality.verdict import assess_segmentation


def test_pair_figures_known_ratios():
    # 10 slices 10 mm apart, 0.5 mL voxels; this side stops after 4 slices where the partner goes on for 8
    partner = np.array([0, 100, 100, 100, 100, 100, 100, 100, 100, 0])
    side = np.array([0, 100, 100, 100, 20, 0, 0, 0, 0, 0])
    z = np.arange(10) * 10.0
    f = pair_figures(side, partner, 0.5, 10.0, z)
    assert f.volume_ml == pytest.approx(160.0) and f.partner_volume_ml == pytest.approx(400.0)
    assert f.volume_ratio == pytest.approx(0.4)
    assert f.extent_mm == pytest.approx(40.0) and f.partner_extent_mm == pytest.approx(80.0)
    assert f.thin_share == pytest.approx(5 / 8)  # slice 4 (20 < 35 % of 100) and slices 5-8
    assert f.thin_z_mm == (40.0, 80.0)
    findings = dict(extent_findings({1: side, 2: partner}, 0.5, 10.0, z))
    reasons = [r for _, r in findings[1]]
    assert [s for s, _ in findings[1]] == ["review", "review", "review"], findings
    assert "volume 160.0 mL is 40% of the other side's 400.0 mL" in reasons[0]
    assert "cranio-caudal extent 40 mm against 80 mm" in reasons[1]
    assert "62% of the slices" in reasons[2] and "z 40 to 80 mm" in reasons[2]
    assert 2 not in findings  # the larger side has no finding
    # a side a third as long fails; with its partner missing a side is asked to be reviewed for being alone
    short = np.array([0, 100, 100, 0, 0, 0, 0, 0, 0, 0])
    assert ("fail", "cranio-caudal extent 20 mm against 80 mm on the other side (cut short?)") in extent_findings(
        {1: short, 2: partner}, 0.5, 10.0, z
    )[1]
    assert [s for s, _ in extent_findings({1: short}, 0.5, 10.0, z)[1]] == ["review"]
    # a muscle the scan shows on one slice beside a partner on three (dilated by a voxel): 10 mm shorter, within
    # two slices, so its extent is not judged (its volume still is)
    edge, wide = np.array([0, 0, 0, 0, 5, 0, 0, 0, 0, 0]), np.array([0, 0, 0, 5, 20, 5, 0, 0, 0, 0])
    found = extent_findings({3: edge, 4: wide}, 0.5, 5.0, z)[3]
    assert not any("cranio-caudal" in r for _, r in found) and any("volume" in r for _, r in found)


def test_equal_sides_and_custom_limits():
    areas = np.array([0, 50, 80, 80, 50, 0])
    assert extent_findings({3: areas, 4: areas * 0.8}, 1.0, 4.0, np.arange(6.0)) == {}
    strict = ExtentLimits(volume_ratio_review=0.9)
    assert extent_findings({3: areas, 4: areas * 0.8}, 1.0, 4.0, np.arange(6.0), strict)[4][0][0] == "review"


@pytest.fixture(scope="module", params=[("RAS", "full", 11), ("LPS", "truncated", 12)], ids=["full", "truncated"])
def phantom(request):
    orientation, coverage, seed = request.param
    subj = generate_subject(seed, Acquisition.preset("low", orientation=orientation, coverage=coverage))
    ff = np.asarray(subj.images["ff_true"], dtype=np.float64) * 100.0
    body = subj.images["inphase"] > 0.05 * np.percentile(subj.images["inphase"], 99)
    return subj.images["label"].astype(np.int16), ff, body, subj.affine


def test_true_labels_have_no_size_or_extent_finding(phantom):
    labels, ff, body, affine = phantom
    verdicts = assess_segmentation(labels, affine, ff=ff, body=body)
    words = ("other side's", "cranio-caudal", "cross-section")
    assert not [r for v in verdicts.values() for r in v.reasons if any(w in r for w in words)]


def test_an_eroded_side_is_reviewed_for_its_volume(phantom):
    labels, ff, body, affine = phantom
    psoas = label_value("psoas", "left")
    eroded = labels.copy()
    eroded[(labels == psoas) & ~ndimage.binary_erosion(labels == psoas, iterations=2)] = 0
    verdicts = assess_segmentation(eroded, affine, ff=ff, body=body)
    assert verdicts[psoas].status == "review", verdicts[psoas].reasons
    assert any("of the other side's" in r and "partly missed" in r for r in verdicts[psoas].reasons)
    assert verdicts[LEFT_RIGHT_SWAP[psoas]].status == "pass", verdicts[LEFT_RIGHT_SWAP[psoas]].reasons


def test_a_side_cut_to_its_upper_third_fails_for_its_extent(phantom):
    labels, ff, body, affine = phantom
    es = label_value("erector_spinae_multifidus", "right")
    cut = labels.copy()
    zs = np.unique(np.argwhere(labels == es)[:, 2])
    # the upper third in the patient (world +z), whatever the storage order of the slices
    upper = zs[-(len(zs) // 3) :] if affine[2, 2] > 0 else zs[: len(zs) // 3]
    plane = cut[:, :, np.setdiff1d(zs, upper)]
    plane[plane == es] = 0
    cut[:, :, np.setdiff1d(zs, upper)] = plane
    verdict = assess_segmentation(cut, affine, ff=ff, body=body)[es]
    assert verdict.status == "fail"
    assert any("cranio-caudal extent" in r and r.startswith("fail") for r in verdict.reasons), verdict.reasons


def test_a_side_whose_partner_is_absent_or_a_sliver_is_reviewed():
    areas = np.array([0, 50, 80, 80, 50, 0])
    z = np.arange(6.0)
    alone = extent_findings({3: areas}, 1.0, 4.0, z)
    assert (
        alone[3] == [("review", alone[3][0][1])]
        and "the other side is absent beside this side's 260.0 mL" in (alone[3][0][1])
    )
    sliver = extent_findings({3: areas, 4: areas * 0.05}, 1.0, 4.0, z)
    assert any("the other side is 13.0 mL beside this side's 260.0 mL (under 10%)" in r for _, r in sliver[3])
    assert not any("beside this side's" in r for _, r in sliver[4])  # the sliver is judged by its own volume
    assert any("of the other side's" in r for _, r in sliver[4])
    small = extent_findings({3: areas, 4: areas * 0.2}, 1.0, 4.0, z)
    assert not any("beside this side's" in r for _, r in small.get(3, []))
    assert extent_findings({3: areas}, 1.0, 4.0, z, ExtentLimits(lone_ratio_review=0.0)) == {}
