"""scripts.studies.qc_network_cases: the degraded copy of a tiny phantom cohort (noise at the stated SNR, contrasts
swapped, water and fat untouched) and the scoring of a run's labels and verdicts against the truth (a run folder
written here by measure_subject, the pipeline's measuring steps, for a true and an eroded label map)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from scripts.io.load import load_dixon
from scripts.labels import label_value
from scripts.phantom.cohort import generate_cohort
from scripts.pipeline.measure import measure_subject
from scripts.studies.qc_network_cases import degrade, score_run, summarise


@pytest.fixture(scope="module")
def degraded(tmp_path_factory):
    root = tmp_path_factory.mktemp("qcnet")
    generate_cohort(root / "src", n=1, seed=5, geometry="tiny", n_validation=0, progress=False)
    degrade(str(root / "src"), str(root / "deg"), kinds=["clean", "noise", "water_as_inphase"])
    return root


def _data(path):
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float64)


def test_degrade_writes_the_kinds_with_water_and_fat_untouched(degraded):
    src, deg = degraded / "src", degraded / "deg"
    source = json.loads((src / "datalist.json").read_text())["training"][0]
    entries = {e["subject"]: e for e in json.loads((deg / "datalist.json").read_text())["testing"]}
    name = source["subject"]
    assert set(entries) == {f"{name}-clean", f"{name}-noise", f"{name}-waterasinphase"}
    inphase = _data(src / source["inphase"])
    for entry in entries.values():
        assert entry["image"] == entry["inphase"]
        np.testing.assert_array_equal(_data(deg / entry["water"]), _data(src / source["water"]))
        np.testing.assert_array_equal(_data(deg / entry["label"]), _data(src / source["label"]))
    np.testing.assert_allclose(_data(deg / entries[f"{name}-clean"]["image"]), inphase)
    np.testing.assert_allclose(_data(deg / entries[f"{name}-waterasinphase"]["image"]), _data(src / source["water"]))
    noisy = _data(deg / entries[f"{name}-noise"]["image"])
    # Rician noise of SD sigma = half the 95th percentile on each channel: E[noisy^2] = signal^2 + 2 sigma^2
    sigma = 0.5 * np.percentile(inphase, 95)
    assert np.mean(noisy**2 - inphase**2) == pytest.approx(2 * sigma**2, rel=0.02)
    parts = (deg / "participants.tsv").read_text()
    assert f"{name}-noise" in parts and "degradation" in parts
    with pytest.raises(FileExistsError, match="not empty"):
        degrade(str(src), str(deg))
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(str(src), str(degraded / "other"), kinds=["blur"])


def test_score_run_scores_labels_and_verdicts_against_the_truth(degraded, tmp_path):
    deg = degraded / "deg"
    entries = json.loads((deg / "datalist.json").read_text())["testing"]
    psoas = label_value("psoas", "left")
    with pytest.raises(FileNotFoundError, match="run inference first"):
        score_run(str(deg), str(tmp_path))
    for entry in entries[:2]:  # the clean one as it is, the noisy one with its left psoas eroded to a sliver
        subject, labels_img = entry["subject"], nib.load(str(deg / entry["label"]))
        labels = np.asarray(labels_img.dataobj).astype(np.uint8)
        if subject.endswith("noise"):
            labels[(labels == psoas) & ~ndimage.binary_erosion(labels == psoas, iterations=1)] = 0
        dixon = load_dixon({"subject": subject, "water": str(deg / entry["water"]), "fat": str(deg / entry["fat"])})
        table = measure_subject(dixon, labels, labels_img.affine)[0].table
        (tmp_path / subject).mkdir()
        table.to_csv(tmp_path / subject / f"{subject}_ff_table.csv", index=False)
        nib.save(nib.Nifti1Image(labels, labels_img.affine), str(tmp_path / subject / f"{subject}_seg.nii.gz"))
    scores = score_run(str(deg), str(tmp_path))
    assert len(scores) == 16 and set(scores.case) == {"clean", "noise"}
    clean = scores[scores.case == "clean"]
    assert (clean.dice == 1.0).all() and (clean.ff_error_pp == 0.0).all()
    # the reported FF (stored water and fat, tiny 6.8 x 6.8 x 11.8 mm voxels) against the exact FF of the true label
    assert clean.reported_ff_error_pp.notna().all() and clean.reported_ff_error_pp.median() < 3.0
    eroded = scores[(scores.case == "noise") & (scores.label == psoas)].iloc[0]
    assert eroded.dice < 0.7 and eroded.qc_status != "pass", eroded.qc_reasons
    text = summarise(scores)
    assert "| clean | 8 | 1.000 |" in text and "| noise | 8 |" in text


def test_a_cohort_as_generated_is_one_case_and_extra_voxels_are_named_by_structure():
    from scripts.studies.qc_network_cases import _extra_tissues, _subject_and_case

    assert _subject_and_case("sub-0001-noise") == ("sub-0001", "noise")
    assert _subject_and_case("sub-0001-waterasinphase") == ("sub-0001", "waterasinphase")
    assert _subject_and_case("sub-0001") == ("sub-0001", "as generated")
    assert _subject_and_case("sub-0001-clean") == ("sub-0001", "clean")
    tissue = np.zeros((4, 4, 1), np.uint8)
    tissue[0] = 33  # muscle_fascia
    tissue[1, :2] = 84  # mesenteric_fat
    extra = np.zeros(tissue.shape, bool)
    extra[:2] = True  # 4 fascia voxels, 2 mesenteric fat, 2 background
    assert _extra_tissues(extra, tissue) == "muscle_fascia 0.50; background 0.25; mesenteric_fat 0.25"
    assert _extra_tissues(extra, tissue, top=1) == "muscle_fascia 0.50"
    assert _extra_tissues(extra, None) == "" and _extra_tissues(np.zeros_like(extra), tissue) == ""
