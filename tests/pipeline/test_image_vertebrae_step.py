"""scripts.pipeline.image_vertebrae (VertebraeFromFFMapd): where no network names a body, the bodies of the FF map,
named up from the stated lowest body, give the per-level table; through the Deploy route's measure and through
``python -m monai.bundle run`` with no spine network, on an L2-L5 cut of an anatomy-complete phantom made here."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scripts.io.load import load_dixon
from scripts.pipeline.measure import measure_subject_levels_and_label

from tests.conftest import BUNDLE_ROOT
from tests.lumbar_cut import l2_l5_cut


@pytest.fixture(scope="module")
def cut(tmp_path_factory):
    """The L2-L5 cut written as a Dixon folder; its muscle labels (no vertebrae) and true levels."""
    subj, truth = l2_l5_cut(11)
    sdir = tmp_path_factory.mktemp("image_vertebrae") / "scans" / "sub-0011"
    sdir.mkdir(parents=True)
    files = {}
    for role in ("water", "fat", "inphase"):
        files[role] = str(sdir / f"sub-0011_{role}.nii.gz")
        nib.save(nib.Nifti1Image(subj.images[role], subj.affine), files[role])
    muscles = np.where(subj.images["label"] <= 8, subj.images["label"], 0).astype(np.uint8)
    return {"files": files, "muscles": muscles, "affine": subj.affine, "truth": truth, "images": subj.images}


def _check_levels(levels: pd.DataFrame, meta: dict, truth: dict) -> None:
    assert meta["status"] == "ok" and meta["anchor"] == "stated lowest body L5", meta
    assert meta["naming"]["source"] == "FF map" and meta["naming"]["status"] == "counted"
    for level in meta["levels"]:
        mid = 0.5 * (level["z_low_mm"] + level["z_high_mm"])
        assert truth[level["level"]][0] <= mid < truth[level["level"]][1], (level, truth)
    assert {"L3", "L4", "L5"} <= set(levels.level) and set(levels.level_anchor) == {"stated lowest body L5"}


def test_the_deploy_route_names_the_bodies_of_the_ff_map_from_the_stated_l5(cut):
    scan = load_dixon({**cut["files"], "subject": "sub-0011"})
    result, _, levels, label = measure_subject_levels_and_label(
        scan, cut["muscles"], cut["affine"], lowest_vertebra="L5"
    )
    _check_levels(levels, result.meta["levels"], cut["truth"])
    # the bodies go where the muscle map is background; no muscle voxel changes
    assert set(np.unique(label)) >= {11, 12, 13} and 14 not in np.unique(label)
    np.testing.assert_array_equal(np.where(label <= 8, label, 0), cut["muscles"])
    # nothing stated: no names, no levels, the muscle map as given
    result, _, levels, label = measure_subject_levels_and_label(scan, cut["muscles"], cut["affine"])
    assert levels is None and result.meta["levels"]["status"] == "not available"
    np.testing.assert_array_equal(label, cut["muscles"])


def test_named_bodies_of_a_network_are_left_as_they_are(cut):
    """A label map that names its bodies (a spine network or a 15-output model) is not searched again."""
    scan = load_dixon({**cut["files"], "subject": "sub-0011"})
    given = cut["muscles"].copy()
    given[(cut["images"]["vertebrae"] == 12) & (given == 0)] = 12  # only L4 named: the FF map would name more
    naming = {"status": "counted", "anchor": "stated lowest body L4", "source": "spine network", "reasons": []}
    result, _, _, label = measure_subject_levels_and_label(
        scan, given, cut["affine"], naming=naming, lowest_vertebra="L4"
    )
    np.testing.assert_array_equal(label, given)
    assert result.meta["levels"]["naming"]["source"] == "spine network"


def test_the_bundle_without_a_spine_network_gets_levels_from_the_ff_map(cut, tmp_path):
    """The user's command on an L2-L5 scan whose bodies no network names (here: no spine network at all)."""
    scans = str(BUNDLE_ROOT / cut["files"]["water"]).rsplit("/sub-0011/", 1)[0]
    infer = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
    infer += ["--dataset_dir", scans, "--write_report", "false", "--lowest_vertebra", "L5"]
    infer += ["--spine_ckpt_path", str(tmp_path / "no_spine_network.pt")]
    res = subprocess.run(
        infer + ["--output_dir", str(tmp_path / "out")], cwd=BUNDLE_ROOT, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "vertebral bodies L2, L3, L4, L5 found in the FF map" in res.stdout + res.stderr
    out = tmp_path / "out" / "sub-0011"
    meta = json.loads((out / "sub-0011_ff_table.json").read_text())["meta"]["levels"]
    _check_levels(pd.read_csv(out / "sub-0011_ff_levels.csv"), meta, cut["truth"])
    seg = np.asarray(nib.load(out / "sub-0011_seg.nii.gz").dataobj)
    assert {10, 11, 12, 13} <= set(np.unique(seg))
    # vertebral_outputs false asks for no vertebral outputs at all: none from the FF map either
    res = subprocess.run(
        infer + ["--output_dir", str(tmp_path / "off"), "--vertebral_outputs", "false"],
        cwd=BUNDLE_ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((tmp_path / "off" / "sub-0011" / "sub-0011_ff_table.json").read_text())["meta"]["levels"]
    assert meta["status"] == "not available" and not list((tmp_path / "off" / "sub-0011").glob("*levels*"))
