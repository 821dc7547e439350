"""scripts.quality.spine_anchor and its place in the verdict, on anatomy-complete phantoms made here (muscle labels and
vertebral labels 9-14 merged, as a 15-output network gives them): the truth passes; a psoas moved onto the anterior
abdominal wall (the real failure: psoas on the rectus abdominis, FF 93 %), sides exchanged and an iliacus moved up
to the lumbar levels fail with reasons naming the vertebral bodies; without vertebral labels (and without the bodies
found in the FF map) the position reasons say so."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.labels import LEFT_RIGHT_SWAP, label_value
from scripts.phantom import Acquisition, generate_subject
from scripts.quality.spine_anchor import has_spine, spine_findings
from scripts.quality.verdict import _slice_axis, assess_segmentation


@pytest.fixture(scope="module", params=[("tiny", "RAS"), ("low", "LPS")], ids=["tiny-RAS", "low-LPS"])
def anatomy(request):
    geometry, orientation = request.param
    subj = generate_subject(7, Acquisition.preset(geometry, orientation=orientation), anatomy="complete")
    labels = subj.images["label"].astype(np.int16)
    vertebrae = subj.images["vertebrae"].astype(np.int16)
    merged = np.where((labels == 0) & (vertebrae > 0), vertebrae, labels)
    ff = np.asarray(subj.images["ff_true"], dtype=np.float64) * 100.0
    body = subj.images["inphase"] > 0.05 * np.percentile(subj.images["inphase"], 99)
    return merged, ff, body, subj.affine


def _moved(labels: np.ndarray, affine: np.ndarray, value: int, mm: tuple[float, float, float]) -> np.ndarray:
    step = np.round(np.linalg.solve(affine[:3, :3], np.asarray(mm))).astype(int)
    out = labels.copy()
    out[out == value] = 0
    moved = np.roll(labels == value, tuple(step), axis=(0, 1, 2)) & np.isin(out, range(0, 9))
    out[moved] = value
    return out


def test_the_anatomy_complete_truth_passes(anatomy):
    labels, ff, body, affine = anatomy
    assert has_spine(labels)
    assert spine_findings(labels, affine, _slice_axis(affine)) == {}
    verdicts = assess_segmentation(labels, affine, ff=ff, body=body)
    assert {v.status for v in verdicts.values()} == {"pass"}, {k: v.reasons for k, v in verdicts.items()}


def test_a_psoas_on_the_anterior_abdominal_wall_fails_against_the_vertebral_bodies(anatomy):
    labels, ff, body, affine = anatomy
    psoas = label_value("psoas", "left")
    moved = _moved(labels, affine, psoas, (0.0, 110.0, 0.0))
    # the spine anchor alone fails it, whatever the FF and the body outline say
    found = spine_findings(moved, affine, _slice_axis(affine))[psoas]
    assert found[0][0] == "fail" and "mm from the vertebral bodies" in found[0][1], found
    gap = float(found[0][1].split("lies ")[1].split(" mm")[0])
    assert gap > 60.0  # moved 110 mm forward from beside the bodies
    assert "in front of their centre" in found[0][1]
    fatty = ff.copy()
    fatty[moved == psoas] = 93.0  # the rectus abdominis with its fat, as on the real scan
    verdict = assess_segmentation(moved, affine, ff=fatty, body=body)[psoas]
    assert verdict.status == "fail" and any("vertebral bodies" in r for r in verdict.reasons), verdict.reasons
    assert not any("no vertebral labels" in r for r in verdict.reasons)


def test_sides_exchanged_and_an_iliacus_moved_up_fail(anatomy):
    labels, ff, body, affine = anatomy
    axis = _slice_axis(affine)
    swapped = np.vectorize(lambda v: LEFT_RIGHT_SWAP.get(int(v), int(v)))(labels)
    found = spine_findings(swapped, affine, axis)
    for value in range(1, 9):
        side = "right" if value % 2 else "left"  # a left label (odd) now lies on the patient's right
        severity, reason = found[value][0]
        assert severity == "fail" and f"to the patient's {side} of the vertebral bodies" in reason, found[value]
    iliacus = label_value("iliacus", "right")
    up = _moved(labels, affine, iliacus, (0.0, 0.0, 120.0))
    reasons = [r for s, r in spine_findings(up, affine, axis).get(iliacus, []) if s == "fail"]
    assert any("above the top of L5" in r for r in reasons), reasons


def test_without_vertebral_labels_position_reasons_say_so(anatomy):
    labels, ff, body, affine = anatomy
    muscles_only = np.where(labels > 8, 0, labels)
    assert not has_spine(muscles_only) and spine_findings(muscles_only, affine, 2) == {}
    clean = assess_segmentation(muscles_only, affine, ff=ff, body=body)
    assert not any("vertebral" in r for v in clean.values() for r in v.reasons)  # no note where nothing is wrong
    psoas = label_value("psoas", "left")
    moved = _moved(muscles_only, affine, psoas, (0.0, 110.0, 0.0))
    # without the search for the bodies in the FF map (tests/quality/test_image_spine.py has it) the body outline
    # alone judges the position, and says so
    verdict = assess_segmentation(moved, affine, ff=ff, body=body, spine_from_image=False)[psoas]
    position = [r for r in verdict.reasons if "antero-posterior" in r]
    assert position and all(r.endswith("(body outline only: no vertebral labels in the map)") for r in position)
