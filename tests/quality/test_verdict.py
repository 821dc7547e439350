"""scripts.quality.verdict: known answers on phantoms made here (true labels pass; moved, swapped, fatty and broken
labels are flagged with the reason)."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.labels import LEFT_RIGHT_SWAP, label_value
from scripts.phantom import Acquisition, generate_subject
from scripts.quality.verdict import assess_segmentation, subject_verdict


@pytest.fixture(scope="module", params=[("RAS", 3), ("LPS", 8)], ids=["RAS", "LPS"])
def phantom(request):
    orientation, seed = request.param
    subj = generate_subject(seed, Acquisition.preset("low", orientation=orientation))
    ff = np.asarray(subj.images["ff_true"], dtype=np.float64) * 100.0
    body = subj.images["inphase"] > 0.05 * np.percentile(subj.images["inphase"], 99)
    return subj.images["label"].astype(np.int16), ff, body, subj.affine


def _world_shift_index(affine, mm_anterior):
    """Voxel offset (per array axis) that moves a structure ``mm_anterior`` towards the front (world +y)."""
    step = np.linalg.solve(affine[:3, :3], np.array([0.0, mm_anterior, 0.0]))
    return np.round(step).astype(int)


def test_true_labels_pass(phantom):
    labels, ff, body, affine = phantom
    verdicts = assess_segmentation(labels, affine, ff=ff, body=body)
    assert {v.status for v in verdicts.values()} == {"pass"}, {k: v.reasons for k, v in verdicts.items()}
    assert subject_verdict(verdicts)[:2] == ("pass", 1.0)


def test_a_psoas_moved_onto_the_abdominal_wall_fails_for_its_position(phantom):
    labels, ff, body, affine = phantom
    psoas = label_value("psoas", "right")
    moved = labels.copy()
    moved[moved == psoas] = 0
    # 110 mm forward: from beside the spine to behind the anterior abdominal wall (the real failure seen)
    moved[np.roll(labels == psoas, tuple(_world_shift_index(affine, 110.0)), axis=(0, 1, 2))] = psoas
    verdict = assess_segmentation(moved, affine, ff=ff, body=body)[psoas]
    assert verdict.status == "fail"
    assert any("antero-posterior" in r for r in verdict.reasons), verdict.reasons
    assert subject_verdict(assess_segmentation(moved, affine, ff=ff, body=body))[0] == "fail"


def test_left_and_right_exchanged_fail_for_their_side(phantom):
    labels, ff, body, affine = phantom
    swapped = np.vectorize(LEFT_RIGHT_SWAP.get)(labels)
    verdicts = assess_segmentation(swapped, affine, ff=ff, body=body)
    for value, verdict in verdicts.items():
        assert verdict.status == "fail" and any("lies on the patient's" in r for r in verdict.reasons), value


def test_a_label_on_fat_fails_for_its_signal(phantom):
    labels, ff, body, affine = phantom
    es = label_value("erector_spinae_multifidus", "left")
    fatty = ff.copy()
    fatty[labels == es] = 90.0
    verdict = assess_segmentation(labels, affine, ff=fatty, body=body)[es]
    assert verdict.status == "fail" and any("mostly fat" in r for r in verdict.reasons)
    # its partner is then 70 pp apart: asked to be reviewed, not failed
    partner = assess_segmentation(labels, affine, ff=fatty, body=body)[LEFT_RIGHT_SWAP[es]]
    assert partner.status == "review" and any("other side" in r for r in partner.reasons)


def test_a_label_reaching_into_air_is_flagged_for_its_missing_signal(phantom):
    # the real failure on the CHAOS scan: ES+MF drawn over the posterior lung bases, whose FF is undefined (NaN)
    labels, ff, body, affine = phantom
    es = label_value("erector_spinae_multifidus", "right")
    idx = np.argwhere(labels == es)
    for share, expected in ((0.05, "pass"), (0.25, "review"), (0.6, "fail")):
        airy = ff.copy()
        chosen = idx[: int(share * len(idx))]
        airy[tuple(chosen.T)] = np.nan
        verdict = assess_segmentation(labels, affine, ff=airy, body=body)[es]
        assert verdict.status == expected, (share, verdict.reasons)
        if expected != "pass":
            assert any("too little signal for an FF" in r for r in verdict.reasons)


def test_a_broken_or_missing_label_is_flagged(phantom):
    labels, ff, body, affine = phantom
    ql = label_value("quadratus_lumborum", "left")
    broken = labels.copy()
    zs = np.unique(np.argwhere(labels == ql)[:, 2])
    cut = zs[len(zs) // 4 : 3 * len(zs) // 4]  # the middle half of its slices removed: two pieces, a long gap
    plane = broken[:, :, cut]
    plane[plane == ql] = 0
    broken[:, :, cut] = plane
    verdict = assess_segmentation(broken, affine, ff=ff, body=body)[ql]
    assert verdict.status in ("review", "fail") and any("pieces" in r or "empty" in r for r in verdict.reasons)
    gone = labels.copy()
    gone[gone == ql] = 0
    missing = assess_segmentation(gone, affine, ff=ff, body=body)[ql]
    assert missing.status == "review" and missing.reasons == ["review: not found in the scan"]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="3D label map"):
        assess_segmentation(np.zeros((4, 4)), np.eye(4))


def test_a_quadratus_lumborum_mostly_missed_is_flagged(phantom):
    labels, ff, body, affine = phantom
    ql = label_value("quadratus_lumborum", "right")
    thin = labels.copy()
    idx = np.argwhere(labels == ql)
    slices = np.unique(idx[:, 2])
    keep = slices[: max(1, len(slices) // 5)]  # a sliver: the top fifth of its slices, eroded
    thin[(thin == ql) & ~np.isin(np.arange(labels.shape[2]), keep)[None, None, :]] = 0
    from scipy import ndimage

    core = ndimage.binary_erosion(thin == ql, iterations=1)
    thin[(thin == ql) & ~core] = 0
    verdict = assess_segmentation(thin, affine, ff=ff, body=body)[ql]
    assert any(r.startswith("review") and "slices that show the psoas" in r for r in verdict.reasons), verdict.reasons
    # a fifth of the other QL's extent: no anatomy makes one side that short (scripts.quality.extent)
    assert verdict.status == "fail" and any("cranio-caudal extent" in r for r in verdict.reasons), verdict.reasons


def test_the_subject_tables_carry_the_verdicts(tmp_path):
    # measure_subject (inference, MONAI Deploy) adds the verdict of every side and of the L/R mean to the FF table
    import nibabel as nib
    from scripts.io.load import load_dixon
    from scripts.pipeline.measure import measure_subject

    subj = generate_subject(3, Acquisition.preset("low"))
    entry = {"subject": "s"}
    for role in ("water", "fat"):
        entry[role] = str(tmp_path / f"{role}.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(subj.images[role]), subj.affine), entry[role])
    labels = subj.images["label"].astype(np.uint8)
    psoas = label_value("psoas", "left")
    moved = labels.copy()
    moved[moved == psoas] = 0
    moved[np.roll(labels == psoas, tuple(_world_shift_index(subj.affine, 110.0)), axis=(0, 1, 2))] = psoas
    table = measure_subject(load_dixon(entry), moved, subj.affine)[0].table.set_index(["muscle", "side"])
    assert table.loc[("psoas", "left"), "qc_status"] == "fail"
    assert "antero-posterior" in table.loc[("psoas", "left"), "qc_reasons"]
    assert table.loc[("psoas", "mean"), "qc_status"] == "fail"
    assert table.loc[("erector_spinae_multifidus", "left"), "qc_status"] == "pass"


def test_the_benchmark_judges_truths_and_corruptions():
    # scripts.studies.qc_benchmark on one phantom: the truth passes, a side moved onto the abdominal wall is flagged
    from scripts.studies.qc_benchmark import run, summarise

    table = run(n=1, seed=7, muscles_per_subject=1)
    assert (table[table.case == "truth"].qc_status == "pass").all()
    moved = table[table.case == "onto_abdominal_wall"]
    assert (moved[moved.role == "corrupted"].qc_status == "fail").all()
    assert len(moved[moved.role == "partner"]) == 1  # the untouched other side is judged too
    truncated = table[(table.case == "upper_third_only") & (table.role == "corrupted")]
    assert (truncated.qc_status == "fail").all() and (truncated.extent_ratio < 0.4).all()
    text = summarise(table)
    assert "ROC AUC" in text and "partner of a corrupted side" in text


def test_a_speck_is_reviewed_for_its_volume(phantom):
    # the real failure on scans that end above the pelvis: an "iliacus" of a few voxels beside the psoas
    labels, ff, body, affine = phantom
    iliacus = label_value("iliacus", "left")
    idx = np.argwhere(labels == iliacus)
    speck = labels.copy()
    speck[speck == iliacus] = 0
    keep = idx[np.all(np.abs(idx - idx[len(idx) // 2]) <= [2, 2, 0], axis=1)]  # at most 5 x 5 voxels on one slice
    speck[tuple(keep.T)] = iliacus
    verdicts = assess_segmentation(speck, affine, ff=ff, body=body)
    assert verdicts[iliacus].status != "pass", verdicts[iliacus].reasons
    assert any("mL, under 3 mL: a speck" in r for r in verdicts[iliacus].reasons), verdicts[iliacus].reasons
    # its intact partner is reviewed too: a muscle found on one side only
    partner = verdicts[LEFT_RIGHT_SWAP[iliacus]]
    assert any("the other side is 0." in r and "(under 10%)" in r for r in partner.reasons), partner.reasons
