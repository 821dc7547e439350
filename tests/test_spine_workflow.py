"""The spine network end to end, as a user runs it: trained with configs/spine_train.json on anatomy-complete phantoms
(its target made from the tissue map), then used by configs/inference.json through --spine_ckpt_path."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from monai.bundle import ConfigParser

from tests.conftest import BUNDLE_ROOT

TINY_TRAIN = [
    "--epochs",
    "1",
    "--val_interval",
    "1",
    "--patch_size",
    "[32,32,16]",
    "--working_spacing",
    "[8.0,8.0,12.0]",
]
TINY_TRAIN += ["--num_workers", "0", "--loader_workers", "0"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("spine_cohort")
    cmd = [sys.executable, "-m", "scripts.phantom", "cohort", "--out_dir", str(out), "--n", "2", "--seed", "3"]
    cmd += ["--n_validation", "1", "--anatomy", "complete", "--geometry", "tiny", "--variety", "false"]
    subprocess.run(cmd + ["--progress", "false"], cwd=BUNDLE_ROOT, check=True, capture_output=True)
    return out


def test_spine_training_targets_bodies_and_sacrum_and_leaves_the_shipped_model_alone():
    parser = ConfigParser()
    parser.read_config([str(BUNDLE_ROOT / "configs" / "train.json"), str(BUNDLE_ROOT / "configs" / "spine_train.json")])
    assert parser["num_classes"] == 3 and parser["spine_target"]["source_key"] == "@tissue_key"
    assert "spine_training" in parser["ckpt_dir"] and "spine_training" in parser["output_dir"]
    inference = json.loads((BUNDLE_ROOT / "configs" / "inference.json").read_text())
    net = {k: v for k, v in parser["network_def"].items() if k not in ("in_channels", "out_channels")}
    assert net == {k: v for k, v in inference["spine_network_def"].items() if k not in ("in_channels", "out_channels")}
    # inference runs the spine network on the muscle network's input grid: trained on another spacing, it sees every
    # body at another size (trained at 3 x 3 x 4 mm and run at 2 x 2 x 4 mm, the bodies' Dice was 0.33; 2026-12-05)
    assert parser.get_parsed_content("working_spacing") == inference["working_spacing"]


def test_a_trained_spine_network_gives_the_inference_its_vertebral_record(cohort, tmp_path):
    shipped = BUNDLE_ROOT / "models" / "model.pt"
    before = _sha(shipped)
    train = [sys.executable, "-m", "monai.bundle", "run", "--config_file"]
    train += ["['configs/train.json','configs/spine_train.json']", "--dataset_dir", str(cohort)]
    train += ["--ckpt_dir", str(tmp_path / "spine" / "models"), "--output_dir", str(tmp_path / "spine" / "eval")]
    res = subprocess.run(train + TINY_TRAIN, cwd=BUNDLE_ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    weights = tmp_path / "spine" / "models" / "model.pt"
    state = torch.load(weights, map_location="cpu", weights_only=True)
    assert [v for v in state.values() if v.ndim == 1][-1].shape == (3,)  # background, body, sacrum
    assert _sha(shipped) == before
    infer = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
    infer += ["--dataset_dir", str(cohort), "--datalist_key", "validation", "--output_dir", str(tmp_path / "eval")]
    infer += ["--working_spacing", "[8.0,8.0,8.0]", "--roi_size", "[64,64,32]"]
    infer += ["--spine_ckpt_path", str(weights), "--vertebral_outputs", "true"]
    res = subprocess.run(infer, cwd=BUNDLE_ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "spine network: " in res.stdout + res.stderr
    (table,) = (tmp_path / "eval").glob("sub-*/sub-*_ff_table.json")
    naming = json.loads(table.read_text())["meta"]["levels"]["naming"]
    assert naming["source"] == "spine network" and naming["status"] in ("counted", "not named", "no vertebral bodies")
    (record,) = (tmp_path / "eval").glob("sub-*/sub-*_run.json")
    assert json.loads(record.read_text())["settings"]["segmentation"]["spine_model"]["sha256"] == _sha(weights)
    # required but absent: refused before anything is read, naming the file and the way forward
    missing = [a if a != str(weights) else str(tmp_path / "none.pt") for a in infer]
    missing[missing.index(str(tmp_path / "eval"))] = str(tmp_path / "eval_missing")
    res = subprocess.run(
        missing,
        cwd=BUNDLE_ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0 and "none.pt: spine network weights not found" in res.stdout + res.stderr


def test_an_l2_l5_scan_gets_its_levels_from_the_stated_lowest_vertebra(tmp_path):
    """The common lumbar protocol, L2-L5 without the sacrum (27 slices of 5 mm here), through the shipped spine
    network: with ``--lowest_vertebra L5`` the levels are named and each lies where the generator put it (without
    it, none: tests/pipeline/test_spine_network.py)."""
    import nibabel as nib

    from tests.lumbar_cut import l2_l5_cut

    subj, truth = l2_l5_cut(11)
    sdir = tmp_path / "scans" / "sub-0011"
    sdir.mkdir(parents=True)
    for role in ("water", "fat", "inphase"):
        nib.save(nib.Nifti1Image(subj.images[role], subj.affine), str(sdir / f"sub-0011_{role}.nii.gz"))
    infer = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
    infer += ["--dataset_dir", str(tmp_path / "scans"), "--write_report", "false", "--vertebral_outputs", "true"]
    res = subprocess.run(
        infer + ["--output_dir", str(tmp_path / "stated"), "--lowest_vertebra", "L5"],
        cwd=BUNDLE_ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "stated" / "sub-0011"
    levels = json.loads((out / "sub-0011_ff_table.json").read_text())["meta"]["levels"]
    assert levels["status"] == "ok" and levels["anchor"] == "stated lowest body L5", levels["reasons"]
    assert levels["naming"]["status"] == "counted" and levels["naming"]["anchor"] == "stated lowest body L5"
    named = {lv["level"]: 0.5 * (lv["z_low_mm"] + lv["z_high_mm"]) for lv in levels["levels"]}
    assert {"L3", "L4", "L5"} <= set(named)
    for name, mid in named.items():
        assert truth[name][0] <= mid < truth[name][1], (name, mid, truth[name])
    table = pd.read_csv(out / "sub-0011_ff_levels.csv")
    assert set(table.level_status) == {"ok"} and {"L3", "L4", "L5"} <= set(table.level)
    assert set(table.level_anchor) == {"stated lowest body L5"}  # a mixed cohort can tell these levels apart
    run = json.loads((out / "sub-0011_run.json").read_text())
    assert run["settings"]["lowest_vertebra"] == "L5"
    # a cohort of several protocols states it per subject in participants.tsv: the same statement there is the same
    # run (resumed, nothing redone); another one is refused rather than written over these results
    participants = tmp_path / "scans" / "participants.tsv"
    participants.write_text("participant_id\tlowest_vertebra\nsub-0011\tL5\n")
    again = infer + ["--output_dir", str(tmp_path / "stated")]
    res = subprocess.run(again, cwd=BUNDLE_ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((out / "sub-0011_run.json").read_text()) == run
    participants.write_text("participant_id\tlowest_vertebra\nsub-0011\tL4\n")
    res = subprocess.run(again, cwd=BUNDLE_ROOT, capture_output=True, text=True)
    assert res.returncode != 0 and "differs in: settings" in res.stdout + res.stderr
    assert json.loads((out / "sub-0011_ff_table.json").read_text())["meta"]["levels"] == levels
