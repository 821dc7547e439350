"""deploy/app.py (MONAI Deploy App SDK 4.0.0) as a real subprocess in .venv-deploy on a synthetic DICOM Dixon study.

The SEG and the FF table must equal what the plain bundle gives for the same DICOM study. Without .venv-deploy
(made by .ci/install_deploy.sh) the tests skip, unless REQUIRE_INTEGRATION=1, where they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from scripts.io.dicom_select import select_dixon_series
from scripts.io.dicom_series import scan_dicom_folder
from scripts.io.dicom_stack import stack_series
from scripts.labels import ALL_LABELS
from scripts.phantom import Acquisition, generate_subject
from scripts.phantom.dicom_export import write_dicom_study

from tests.conftest import BUNDLE_ROOT

DEPLOY_PY = BUNDLE_ROOT / ".venv-deploy" / "bin" / "python"
APP = BUNDLE_ROOT / "deploy" / "app.py"
EXPECTED_TYPES = {
    "psoas": "68455001",
    "iliacus": "68455001",
    "quadratus_lumborum": "6001004",
    "erector_spinae_multifidus": "44947003",
}


@pytest.fixture(scope="module")
def deploy_python() -> Path:
    if not DEPLOY_PY.exists():
        reason = f"needs the App SDK environment {DEPLOY_PY.parent.parent} (run .ci/install_deploy.sh)"
        if os.environ.get("REQUIRE_INTEGRATION") == "1":
            pytest.fail(f"REQUIRE_INTEGRATION=1 but {reason}")
        pytest.skip(reason)
    return DEPLOY_PY


def _app(python: Path, *args: str) -> subprocess.CompletedProcess:
    """The app as a deployed app is started: from a working folder that is not the bundle (so that nothing it needs,
    e.g. the spine network's weights, is found only by the bundle's relative paths)."""
    return subprocess.run(
        [str(python), str(APP), *args], cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def runs(deploy_python, tmp_path_factory) -> dict:
    """One Philips-style study; the plain bundle and the app both run on its DICOM folder."""
    root = tmp_path_factory.mktemp("deploy")
    subj = generate_subject(8, Acquisition.preset("low"), anatomy="complete")
    write_dicom_study(subj, root, vendor="philips")
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        "configs/inference.json",
        "--dataset_dir",
        str(root / "dicom"),
        "--output_dir",
        str(root / "bundle"),
        "--write_report",
        "false",
    ]
    plain = subprocess.run(cmd, cwd=BUNDLE_ROOT, capture_output=True, text=True, timeout=600)
    assert plain.returncode == 0, plain.stderr[-3000:]
    app = _app(deploy_python, "-i", str(root / "dicom"), "-o", str(root / "app"))
    assert app.returncode == 0, (app.stdout + app.stderr)[-4000:]
    return {
        "root": root,
        "subject": subj.subject_id,
        "bundle": root / "bundle" / subj.subject_id,
        "app": root / "app",
        "log": app.stdout + app.stderr,
    }


def _decode_seg(seg: pydicom.Dataset, reference_uids: list[str], shape: tuple[int, int, int]) -> np.ndarray:
    """Label map (I, J, K) from a binary SEG: each frame names its segment and its source slice."""
    label = np.zeros(shape, np.uint8)
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        source = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        k = reference_uids.index(source)
        label[:, :, k][frame.T > 0] = number
    return label


def test_seg_has_a_coded_segment_per_label_and_equals_the_bundle_label_map(runs):
    seg_files = list((runs["app"] / "seg").glob("*.dcm"))
    assert len(seg_files) == 1
    seg = pydicom.dcmread(seg_files[0])
    assert seg.Modality == "SEG" and seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.SegmentationType == "BINARY"
    bundle = nib.load(runs["bundle"] / f"{runs['subject']}_seg.nii.gz")
    values = sorted(set(np.unique(np.asarray(bundle.dataobj)).tolist()) - {0})
    # the eight muscles, and with the shipped spine network the vertebral bodies and sacrum it names (9-14)
    assert values[:8] == list(range(1, 9)) and set(values) <= set(range(1, 15))
    assert (len(values) > 8) == (BUNDLE_ROOT / "models" / "spine_model.pt").is_file()
    # segment number = label value; highdicom numbers segments without gaps, so a SEG with the vertebral context
    # describes all of 9-14 (a body the count could not name is an empty segment)
    numbers = list(range(1, 9 if values[-1] <= 8 else 15))
    segments = seg.SegmentSequence
    assert [int(s.SegmentNumber) for s in segments] == numbers
    assert [s.SegmentLabel for s in segments] == [ALL_LABELS[v] for v in numbers]
    for s in segments[:8]:
        muscle, side = s.SegmentLabel.rsplit("_", 1)
        assert s.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"
        assert s.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
        assert s.SegmentedPropertyTypeCodeSequence[0].CodeValue == EXPECTED_TYPES[muscle]
        laterality = s.SegmentedPropertyTypeModifierCodeSequence[0]
        assert (laterality.CodeValue, laterality.CodeMeaning) == {
            "left": ("7771000", "Left"),
            "right": ("24028007", "Right"),
        }[side]
        assert s.SegmentAlgorithmType == "AUTOMATIC"
    # the SEG references the network-input series (in-phase) of the study
    selected = select_dixon_series(scan_dicom_folder(runs["root"] / "dicom"))
    volume, affine, datasets = stack_series(selected["inphase"])
    assert seg.StudyInstanceUID == datasets[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == datasets[0].FrameOfReferenceUID
    label = _decode_seg(seg, [ds.SOPInstanceUID for ds in datasets], volume.shape)
    np.testing.assert_allclose(bundle.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(label, np.asarray(bundle.dataobj))


def _without_network_confidence(tree):
    """``tree`` without the ``net_*`` entries: the SDK's bundle operator hands the app the label map only, not the
    softmax that the plain bundle's NetworkConfidenced step measures, so the app's table has no such columns."""
    if isinstance(tree, dict):
        return {k: _without_network_confidence(v) for k, v in tree.items() if not str(k).startswith("net_")}
    if isinstance(tree, list):
        return [_without_network_confidence(v) for v in tree]
    return tree


def test_ff_table_equals_the_plain_bundle(runs):
    sid = runs["subject"]
    app = pd.read_csv(runs["app"] / f"{sid}_ff_table.csv")
    plain = pd.read_csv(runs["bundle"] / f"{sid}_ff_table.csv")
    assert len(app) == 12 and app.ff_mean_pct.notna().all()
    assert {c for c in plain.columns if c.startswith("net_")} and not {c for c in app.columns if c.startswith("net_")}
    # every other column, the quality verdict included, is the plain bundle's
    pd.testing.assert_frame_equal(app, plain.drop(columns=[c for c in plain.columns if c.startswith("net_")]))
    app_json = json.loads((runs["app"] / f"{sid}_ff_table.json").read_text())
    plain_json = json.loads((runs["bundle"] / f"{sid}_ff_table.json").read_text())
    # the levels too: bounds, the naming record of the spine network (which the SDK does not send on by itself)
    assert _without_network_confidence(app_json) == _without_network_confidence(plain_json)
    levels = app_json["meta"]["levels"]
    if (BUNDLE_ROOT / "models" / "spine_model.pt").is_file():
        assert levels["naming"]["source"] == "spine network" and levels["status"] in ("ok", "uncertain")
        app_levels = pd.read_csv(runs["app"] / f"{sid}_ff_levels.csv")
        plain_levels = pd.read_csv(runs["bundle"] / f"{sid}_ff_levels.csv")
        pd.testing.assert_frame_equal(
            app_levels, plain_levels.drop(columns=[c for c in plain_levels.columns if c.startswith("net_")])
        )
    else:  # a 9-output model alone: no vertebral labels, so neither front end writes a per-level table
        assert levels["status"] == "not available"
        assert not list(runs["app"].glob("*levels*")) and not list(runs["bundle"].glob("*levels*"))


def test_output_folder_is_never_overwritten_silently(runs, deploy_python):
    before = {p: p.stat().st_mtime_ns for p in runs["app"].rglob("*") if p.is_file()}
    # SEG, SR, FF table CSV and JSON, slice profile, label NIfTI (and the per-level table with the vertebral context)
    assert len(before) == 6 + len(list(runs["app"].glob("*_ff_levels.csv")))
    res = _app(deploy_python, "-i", str(runs["root"] / "dicom"), "-o", str(runs["app"]))
    assert res.returncode == 2
    assert f"output folder {runs['app']} is not empty" in res.stderr and "--overwrite" in res.stderr
    assert {p: p.stat().st_mtime_ns for p in runs["app"].rglob("*") if p.is_file()} == before


def test_a_study_without_a_dixon_set_fails_naming_the_folder_and_series(runs, deploy_python, tmp_path):
    study = tmp_path / "study"
    only_water = next((runs["root"] / "dicom").glob("01_*"))
    (study / only_water.name).mkdir(parents=True)
    for f in sorted(only_water.iterdir()):
        (study / only_water.name / f.name).write_bytes(f.read_bytes())
    res = _app(deploy_python, "-i", str(study), "-o", str(tmp_path / "out"))
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert f"{study}: no usable Dixon set" in text and "series 1 'mDIXON W'" in text
    assert not list((tmp_path / "out").glob("**/*.dcm"))


def _sr_groups(sr: pydicom.Dataset) -> list[pydicom.Dataset]:
    """The TID 1500 measurement groups (CONTAINER 'Measurement Group' under 'Imaging Measurements')."""
    measurements = [it for it in sr.ContentSequence if it.ValueType == "CONTAINER"]
    assert len(measurements) == 1 and measurements[0].ConceptNameCodeSequence[0].CodeValue == "126010"
    return list(measurements[0].ContentSequence)


def _group_items(group: pydicom.Dataset) -> dict:
    """A measurement group's numbers ``{(concept code, derivation): (value, unit)}``, its tracking id, finding sites
    (code values), quality assessment (code value) and comment (text)."""
    out: dict = {"numbers": {}, "sites": [], "assessment": None, "comment": None}
    for it in group.ContentSequence:
        name = it.ConceptNameCodeSequence[0]
        if it.ValueType == "NUM":
            mods = {m.ConceptNameCodeSequence[0].CodeMeaning: m for m in it.get("ContentSequence", [])}
            derivation = mods["Derivation"].ConceptCodeSequence[0].CodeMeaning if "Derivation" in mods else None
            out["numbers"][(name.CodeValue, derivation)] = (
                float(it.MeasuredValueSequence[0].NumericValue),
                it.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue,
            )
        elif name.CodeMeaning == "Tracking Identifier":
            out["tracking"] = it.TextValue
        elif name.CodeMeaning == "Finding Site":
            out["sites"].append(it.ConceptCodeSequence[0].CodeValue)
        elif name.CodeValue == "111050":  # Quality Assessment
            out["assessment"] = it.ConceptCodeSequence[0].CodeValue
        elif name.CodeValue == "121106":  # Comment
            out["comment"] = it.TextValue
    return out


#: verdict -> DICOM quality assessment value (DCM 111237 / 111236 / 111235)
ASSESSMENT = {"pass": "111237", "review": "111236", "fail": "111235"}


def test_sr_reports_the_table_numbers_and_verdict_per_segment(runs):
    sid = runs["subject"]
    table = pd.read_csv(runs["app"] / f"{sid}_ff_table.csv")
    seg = pydicom.dcmread(runs["app"] / "seg" / f"{sid}_seg.dcm")
    sr = pydicom.dcmread(runs["app"] / "sr" / f"{sid}_ff_sr.dcm")
    assert sr.Modality == "SR" and sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.StudyInstanceUID == seg.StudyInstanceUID
    groups = [g for g in _sr_groups(sr) if any(it.ValueType == "IMAGE" for it in g.ContentSequence)]
    assert len(groups) == 8
    for group in groups:
        image = next(it for it in group.ContentSequence if it.ValueType == "IMAGE")
        ref = image.ReferencedSOPSequence[0]
        assert ref.ReferencedSOPInstanceUID == seg.SOPInstanceUID
        value = int(ref.ReferencedSegmentNumber)
        row = table[table.label == value].iloc[0]
        items = _group_items(group)
        numbers = items["numbers"]
        assert items["tracking"] == f"{row.muscle}_{row.side}"
        assert numbers[("129100", "Mean")][1] == "%" and numbers[("118565006", None)][1] == "cm3"
        # a DICOM decimal string keeps about 10 significant digits
        np.testing.assert_allclose(numbers[("129100", "Mean")][0], row.ff_mean_pct, rtol=1e-8)
        np.testing.assert_allclose(numbers[("129100", "Median")][0], row.ff_median_pct, rtol=1e-8)
        np.testing.assert_allclose(numbers[("118565006", None)][0], row.volume_ml, rtol=1e-8)
        # the verdict: the table's status as DICOM's quality assessment, its score, its reasons in words
        assert items["assessment"] == ASSESSMENT[row.qc_status]
        assert numbers[("246262008", None)] == (pytest.approx(row.qc_score), "1")
        assert items["comment"] == (row.qc_reasons if isinstance(row.qc_reasons, str) else None)
        finding = next(it for it in group.ContentSequence if it.ConceptNameCodeSequence[0].CodeMeaning == "Finding")
        assert finding.ConceptCodeSequence[0].CodeValue == EXPECTED_TYPES[row.muscle]


@pytest.mark.skipif(
    not (BUNDLE_ROOT / "models" / "spine_model.pt").is_file(), reason="no spine network (models/spine_model.pt)"
)
def test_sr_reports_each_level_side_of_the_levels_table(runs):
    """A viewer of the SR alone sees the per-level values: one group per level and side, sited on the muscle (with its
    laterality) and the vertebra, with the numbers of ``<subject>_ff_levels.csv``."""
    sid = runs["subject"]
    levels = pd.read_csv(runs["app"] / f"{sid}_ff_levels.csv")
    sr = pydicom.dcmread(runs["app"] / "sr" / f"{sid}_ff_sr.dcm")
    groups = [_group_items(g) for g in _sr_groups(sr) if not any(it.ValueType == "IMAGE" for it in g.ContentSequence)]
    assert len(groups) == len(levels) and len(levels) >= 8 * 3
    vertebra = {"L1": "66794005", "L2": "14293000", "L3": "36470004", "L4": "11994002", "L5": "49668003"}
    side_code = {"left": "7771000", "right": "24028007"}
    by_id = {g["tracking"]: g for g in groups}
    for row in levels.itertuples():
        group = by_id[f"{row.muscle}_{row.side}_{row.level}"]
        assert group["sites"] == [EXPECTED_TYPES[row.muscle], vertebra[row.level]]
        if np.isfinite(row.ff_mean_pct):
            np.testing.assert_allclose(group["numbers"][("129100", "Mean")][0], row.ff_mean_pct, rtol=1e-8)
        else:  # a level side too small for an FF (or absent) has no FF in the SR either
            assert ("129100", "Mean") not in group["numbers"] and row.status != "ok"
        np.testing.assert_allclose(group["numbers"][("118565006", None)][0], row.volume_ml, rtol=1e-8)
        assert group["numbers"][("42798000", "Mean")] == (pytest.approx(row.csa_mean_cm2, rel=1e-8), "cm2")
        expected = "review" if (row.qc_status == "pass" and row.level_status != "ok") else row.qc_status
        assert group["assessment"] == ASSESSMENT[expected]
    # the laterality sits on the muscle's finding site
    group = next(g for g in _sr_groups(sr) if not any(it.ValueType == "IMAGE" for it in g.ContentSequence))
    site = next(it for it in group.ContentSequence if it.ConceptNameCodeSequence[0].CodeMeaning == "Finding Site")
    assert site.ContentSequence[0].ConceptCodeSequence[0].CodeValue in side_code.values()


def test_sr_names_a_failed_side_and_an_uncertain_level(runs, deploy_python, tmp_path):
    """Known answers for the verdict's coding: a side set to fail is DICOM's "Unusable" with its reasons, in its own
    group and in its level groups; a passing side on a level with uncertain bounds is "Does not meet" with why."""
    sid = runs["subject"]
    table = pd.read_csv(runs["app"] / f"{sid}_ff_table.csv")
    table.loc[table.label == 2, ["qc_status", "qc_reasons"]] = ["fail", "fail: lies 110 mm from the vertebral bodies"]
    table.to_csv(tmp_path / "table.csv", index=False)
    levels = pd.DataFrame(
        [
            {"level": "L4", "muscle": "psoas", "side": "right", "label": 2, "ff_mean_pct": 7.5, "volume_ml": 20.0,
             "csa_mean_cm2": 5.0, "qc_status": "fail", "level_status": "ok", "level_reasons": ""},
            {"level": "L4", "muscle": "psoas", "side": "left", "label": 1, "ff_mean_pct": 8.0, "volume_ml": 21.0,
             "csa_mean_cm2": 5.2, "qc_status": "pass", "level_status": "uncertain",
             "level_reasons": "gap between L4 and L5 not a disc"},
            {"level": "L5", "muscle": "psoas", "side": "left", "label": 1, "ff_mean_pct": 9.0, "volume_ml": 22.0,
             "csa_mean_cm2": 5.4, "qc_status": "pass", "level_status": "ok", "level_reasons": "",
             "level_anchor": "stated lowest body L5"},
        ]
    )  # fmt: skip
    levels.to_csv(tmp_path / "levels.csv", index=False)
    code = (
        "import sys, pandas as pd, pydicom; from deploy.dicom_sr import write_sr; d = sys.argv[1]; "
        "seg = sys.argv[2]; src = [pydicom.dcmread(seg)]; "
        "write_sr(pd.read_csv(d + '/table.csv'), seg, src, d + '/sr.dcm', '0', levels=pd.read_csv(d + '/levels.csv'))"
    )
    seg = runs["app"] / "seg" / f"{sid}_seg.dcm"
    out = subprocess.run(
        [str(deploy_python), "-c", code, str(tmp_path), str(seg)], cwd=BUNDLE_ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    groups = {g["tracking"]: g for g in map(_group_items, _sr_groups(pydicom.dcmread(tmp_path / "sr.dcm")))}
    assert groups["psoas_right"]["assessment"] == "111235"
    assert groups["psoas_right"]["comment"] == "fail: lies 110 mm from the vertebral bodies"
    # a level side carries its side's verdict and reasons
    assert groups["psoas_right_L4"]["assessment"] == "111235"
    assert groups["psoas_right_L4"]["comment"] == "fail: lies 110 mm from the vertebral bodies"
    assert groups["psoas_left_L4"]["assessment"] == "111236"
    assert groups["psoas_left_L4"]["comment"].endswith("level bounds uncertain: gap between L4 and L5 not a disc")
    assert groups["psoas_left_L4"]["numbers"][("129100", "Mean")][0] == pytest.approx(8.0)
    assert ("129100", "Median") not in groups["psoas_left_L4"]["numbers"]  # absent from the row: not reported
    # a level named from the user's statement says so; its verdict stays the side's
    assert groups["psoas_left_L5"]["assessment"] == "111237"
    assert groups["psoas_left_L5"]["comment"] == "level names from the stated lowest body L5, not from the sacrum"


def test_seg_describes_the_vertebral_context_of_a_15_class_model(deploy_python):
    code = (
        "import json; from deploy.dicom_seg import segment_descriptions; "
        "print(json.dumps([[int(d.SegmentNumber), d.SegmentLabel, d.SegmentedPropertyTypeCodeSequence[0].CodeValue, "
        "d.SegmentDescription] for d in segment_descriptions('0', 15)]))"
    )
    out = subprocess.run([str(deploy_python), "-c", code], cwd=BUNDLE_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    segments = json.loads(out.stdout)
    assert [s[0] for s in segments] == list(range(1, 15))
    assert segments[8] == [9, "vertebral_body_L1", "66794005", "vertebral body of L1 vertebra"]
    assert segments[13][1:3] == ["sacrum", "54735007"]


@pytest.mark.skipif(
    not (BUNDLE_ROOT / "models" / "spine_model.pt").is_file(), reason="no spine network (models/spine_model.pt)"
)
def test_an_l2_l5_study_gets_its_levels_from_the_stated_lowest_vertebra(deploy_python, tmp_path):
    """The common lumbar protocol shows no sacrum: ``--lowest_vertebra L5`` names its bodies and levels, as the
    plain bundle's option does; a name that is no lumbar body is refused before anything runs."""
    from tests.lumbar_cut import l2_l5_cut

    subj, truth = l2_l5_cut(11)
    write_dicom_study(subj, tmp_path, vendor="siemens")
    res = _app(deploy_python, "-i", str(tmp_path / "dicom"), "-o", str(tmp_path / "bad"), "--lowest_vertebra", "S1")
    assert res.returncode == 2 and "lowest_vertebra must be one of L1, L2, L3, L4, L5" in res.stderr, res.stderr
    assert not (tmp_path / "bad").exists()
    res = _app(deploy_python, "-i", str(tmp_path / "dicom"), "-o", str(tmp_path / "app"), "--lowest_vertebra", "L5")
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    table = json.loads((tmp_path / "app" / f"{subj.subject_id}_ff_table.json").read_text())
    levels = table["meta"]["levels"]
    assert levels["status"] == "ok" and levels["anchor"] == "stated lowest body L5", levels
    for level in levels["levels"]:
        mid = 0.5 * (level["z_low_mm"] + level["z_high_mm"])
        assert truth[level["level"]][0] <= mid < truth[level["level"]][1], (level, truth)
    assert {"L3", "L4", "L5"} <= set(pd.read_csv(tmp_path / "app" / f"{subj.subject_id}_ff_levels.csv").level)
    # the SEG carries the named bodies (segments 11-13 not empty), and no sacrum
    seg = pydicom.dcmread(next((tmp_path / "app" / "seg").glob("*.dcm")))
    frames = {
        int(g.SegmentIdentificationSequence[0].ReferencedSegmentNumber) for g in seg.PerFrameFunctionalGroupsSequence
    }
    assert {11, 12, 13} <= frames and 14 not in frames, frames
