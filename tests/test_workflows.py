"""Bundle workflows end to end on tiny phantoms: train.json (a few iterations) then inference.json."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scripts.labels import MUSCLES
from scripts.phantom import generate_cohort

from tests.conftest import BUNDLE_ROOT

TINY_OVERRIDES = ["--working_spacing", "[8.0,8.0,12.0]", "--num_workers", "0"]


def _bundle_run(*args: str, cwd: Path = BUNDLE_ROOT) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", "run", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort") / "data"
    generate_cohort(out, n=5, seed=11, geometry="tiny", variety=False, n_validation=1, n_testing=1, progress=False)
    return out


@pytest.fixture(scope="module")
def tiny_model(tiny_cohort, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("train")
    res = _bundle_run(
        "--config_file",
        "configs/train.json",
        "--dataset_dir",
        str(tiny_cohort),
        "--epochs",
        "3",
        "--val_interval",
        "1",
        "--patch_size",
        "[32,32,16]",
        "--ckpt_dir",
        str(run / "models"),
        "--output_dir",
        str(run / "eval"),
        *TINY_OVERRIDES,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (run / "train.log").write_text(res.stdout + res.stderr)
    return run


def test_training_writes_bare_state_dict_and_loss_decreases(tiny_model):
    import torch

    sd = torch.load(tiny_model / "models" / "model.pt", weights_only=True)
    assert isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())
    assert any(k.startswith("model.") for k in sd)
    log = (tiny_model / "train.log").read_text()
    losses = [float(x) for x in re.findall(r"train_loss: ([0-9.]+)", log)]
    assert len(losses) >= 6
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    # the resumable state lives only while a run is unfinished
    assert not (tiny_model / "models" / "train_state").exists()


def _datalist_with_shifted_validation_labels(dataset_dir: Path, out_dir: Path) -> Path:
    """A copy of the datalist whose validation labels are rolled by half the image along x: the muscles move onto
    background, so any model scores (near) zero on validation against them."""
    datalist = json.loads((dataset_dir / "datalist.json").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    for entries in datalist.values():
        if not isinstance(entries, list):
            continue
        for entry in entries:
            for key, value in entry.items():
                if isinstance(value, str) and value.endswith(".nii.gz"):
                    entry[key] = str((dataset_dir / value).resolve())
    for entry in datalist["validation"]:
        img = nib.load(entry["label"])
        lab = np.asarray(img.dataobj)
        rolled = out_dir / f"rolled_{Path(entry['label']).name}"
        nib.save(nib.Nifti1Image(np.roll(lab, lab.shape[0] // 2, axis=0), img.affine, img.header), rolled)
        entry["label"] = str(rolled)
    path = out_dir / "datalist.json"
    path.write_text(json.dumps(datalist, indent=2))
    return path


def test_a_killed_training_resumes_from_its_last_state_and_keeps_its_best_model(tiny_cohort, tmp_path):
    import hashlib
    import os
    import signal
    import time

    args = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        "configs/train.json",
        "--dataset_dir",
        str(tiny_cohort),
        "--epochs",
        "6",
        "--val_interval",
        "2",
        "--patch_size",
        "[32,32,16]",
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        str(tmp_path / "eval"),
        *TINY_OVERRIDES,
    ]
    proc = subprocess.Popen(
        args, cwd=BUNDLE_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    state = tmp_path / "models" / "train_state"
    deadline = time.time() + 300
    while not list(state.glob("checkpoint_epoch=*.pt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # let the atomic checkpoint write finish
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = sorted(state.glob("checkpoint_epoch=*.pt"))
    assert saved, "training should have been killed after its first state checkpoint"
    epoch = int(saved[-1].stem.split("=")[1])
    assert epoch < 6
    best = tmp_path / "models" / "model.pt"
    assert best.is_file(), "the validation at epoch 2 comes before the state checkpoint of epoch 2"
    best_digest = hashlib.sha256(best.read_bytes()).hexdigest()

    # resume against validation labels no model can match: every resumed validation scores below the best so far,
    # so the best model from before the kill must survive (it used to be replaced by the first resumed validation)
    shifted = _datalist_with_shifted_validation_labels(tiny_cohort, tmp_path / "shifted")
    res = subprocess.run(
        [*args, "--datalist", str(shifted)], cwd=BUNDLE_ROOT, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    epochs_run = sorted(
        {int(e) for e in re.findall(r"Epoch\[(\d+)\]", log)} | {int(e) for e in re.findall(r"Epoch: (\d+)/", log)}
    )
    assert epochs_run and min(epochs_run) == epoch + 1 and max(epochs_run) == 6, epochs_run
    best_reported = re.search(r"Key metric: val_mean_dice best value: [0-9.]+ at epoch: 2", log)
    assert best_reported, "the resumed run should report the best validation score from before the kill"
    assert not state.exists()
    kept = hashlib.sha256(best.read_bytes()).hexdigest() == best_digest
    assert kept, "a resumed validation that scored below the earlier best replaced models/model.pt"


def test_inference_end_to_end(tiny_cohort, tiny_model, tmp_path):
    out = tmp_path / "eval"
    # run from another folder, as a user would with the bundle elsewhere: scripts.* must still import
    args = [
        "--config_file",
        str(BUNDLE_ROOT / "configs" / "inference.json"),
        "--bundle_root",
        str(BUNDLE_ROOT),
        "--dataset_dir",
        str(tiny_cohort),
        "--ckpt_path",
        str(tiny_model / "models" / "model.pt"),
        "--roi_size",
        "[32,32,16]",
        "--output_dir",
        str(out),
        "--working_spacing",
        "[8.0,8.0,12.0]",
    ]
    res = _bundle_run(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    dl = json.loads((tiny_cohort / "datalist.json").read_text())
    subject = dl["testing"][0]["subject"]
    sdir = out / subject
    seg = nib.load(sdir / f"{subject}_seg.nii.gz")
    src = nib.load(tiny_cohort / dl["testing"][0]["inphase"])
    assert seg.shape == src.shape
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)
    table = pd.read_csv(sdir / f"{subject}_ff_table.csv")
    assert len(table) == 12
    assert {"ff_mean_pct", "ff_core_mean_pct", "volume_ml", "ff_method", "ff_source"} <= set(table.columns)
    for name in (
        "ff_table.json",
        "ff_slices.csv",
        "normative.csv",
        "qc_axial.png",
        "ff_chart.png",
        "report.html",
        "ff.nii.gz",
        "run.json",
    ):
        assert (sdir / f"{subject}_{name}").stat().st_size > 0, name
    cohort = pd.read_csv(out / "cohort_ff_table.csv", dtype={"subject": str})
    assert set(cohort.subject) == {subject}
    means = cohort[cohort.side == "mean"]
    assert len(means) == 4
    # the paper's reference is an L/R mean: every mean row is placed against it (band NaN only if FF is missing)
    assert means.loc[means.ff_mean_pct.notna(), "band"].notna().all()
    # the same run again is allowed (identical inputs, model and settings) ...
    assert _bundle_run(*args, cwd=tmp_path).returncode == 0
    # ... a different model writing into the same folder is refused
    other = tmp_path / "other.pt"
    shutil.copy(tiny_model / "models" / "model.pt", other)
    with open(other, "ab") as fh:
        fh.write(b"\0")
    res = _bundle_run(*[a if a != str(tiny_model / "models" / "model.pt") else str(other) for a in args], cwd=tmp_path)
    assert res.returncode != 0
    assert "different run" in res.stderr


def test_inference_refuses_a_missing_file_naming_it(tiny_cohort, tiny_model, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_cohort, bad)
    dl = json.loads((bad / "datalist.json").read_text())
    victim = bad / dl["testing"][0]["fat"]
    victim.unlink()
    res = _bundle_run(
        "--config_file",
        "configs/inference.json",
        "--dataset_dir",
        str(bad),
        "--ckpt_path",
        str(tiny_model / "models" / "model.pt"),
        "--roi_size",
        "[32,32,16]",
        "--output_dir",
        str(tmp_path / "eval"),
        "--working_spacing",
        "[8.0,8.0,12.0]",
    )
    assert res.returncode != 0
    assert victim.name in res.stderr and "file not found" in res.stderr
    assert not list((tmp_path / "eval").glob("*/*_ff_table.csv"))


def test_two_channel_water_fat_model_trains_and_runs_inference(tiny_cohort, tmp_path):
    import torch

    res = _bundle_run(
        "--config_file",
        "configs/train.json",
        "--dataset_dir",
        str(tiny_cohort),
        "--epochs",
        "1",
        "--val_interval",
        "1",
        "--patch_size",
        "[32,32,16]",
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        str(tmp_path / "train"),
        "--network_channels",
        "water_fat",
        *TINY_OVERRIDES,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    model = tmp_path / "models" / "model.pt"
    sd = torch.load(model, weights_only=True)
    assert next(v for v in sd.values() if v.ndim == 5).shape[1] == 2  # the first convolution reads water and fat
    args = [
        "--config_file",
        "configs/inference.json",
        "--dataset_dir",
        str(tiny_cohort),
        "--ckpt_path",
        str(model),
        "--roi_size",
        "[32,32,16]",
        "--working_spacing",
        "[8.0,8.0,12.0]",
    ]
    res = _bundle_run(*args, "--output_dir", str(tmp_path / "eval"), "--network_channels", "water_fat")
    assert res.returncode == 0, res.stderr[-3000:]
    subject = json.loads((tiny_cohort / "datalist.json").read_text())["testing"][0]["subject"]
    seg = nib.load(tmp_path / "eval" / subject / f"{subject}_seg.nii.gz")
    assert seg.shape == nib.load(tiny_cohort / subject / f"{subject}_water.nii.gz").shape
    assert (tmp_path / "eval" / subject / f"{subject}_ff_table.csv").is_file()
    # the one-channel default with this model: refused before anything is written, naming the setting to use
    res = _bundle_run(*args, "--output_dir", str(tmp_path / "eval1"))
    assert res.returncode != 0 and "--network_channels water_fat" in res.stderr
    assert not (tmp_path / "eval1").exists()


def test_evaluate_overlay_writes_per_case_metrics(tiny_cohort, tiny_model, tmp_path):
    res = _bundle_run(
        "--config_file",
        "['configs/train.json','configs/evaluate.json']",
        "--dataset_dir",
        str(tiny_cohort),
        "--ckpt_dir",
        str(tiny_model / "models"),
        "--output_dir",
        str(tmp_path),
        "--patch_size",
        "[32,32,16]",
        *TINY_OVERRIDES,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    raw = pd.read_csv(tmp_path / "val_mean_dice_raw.csv")
    assert len(raw) == 1 and raw.shape[1] == 1 + 8 + 1  # filename, 8 muscles, mean
    hd = pd.read_csv(tmp_path / "val_hd95_mm_raw.csv")
    assert (hd.iloc[:, 1:] >= 0).all().all()


def test_real_samples_are_segmented_and_scored(shared_dir, tiny_model, tmp_path):
    from scripts.studies.evaluate_real_samples import SAMPLES, evaluate, reference_in_our_labels

    kwargs = dict(overrides={"working_spacing": [8.0, 8.0, 12.0], "roi_size": [32, 32, 16]}, out_dir=str(tmp_path))
    df = evaluate(str(shared_dir), str(tiny_model / "models" / "model.pt"), str(BUNDLE_ROOT), **kwargs)
    assert set(df["sample"]) == {"musclemap_lumbar_sub0001", "totalsegmentator_mr_sample"}
    assert df.dice.between(0, 1).all()
    assert (df[df["sample"] == "musclemap_lumbar_sub0001"].vol_ref_ml > 10).all()
    for name, (img_rel, lab_rel, mapping) in SAMPLES.items():
        image = nib.load(str(shared_dir / "real-samples" / img_rel))
        pred = nib.load(str(tmp_path / f"{name}_pred.nii.gz"))
        assert pred.shape == image.shape and np.allclose(pred.affine, image.affine)
        for kind in ("pred", "reference"):
            assert (tmp_path / f"{name}_qc_{kind}.png").stat().st_size > 10_000
        # the reference in our labels keeps every structure's voxels under our first label value
        ref = np.asarray(nib.load(str(shared_dir / "real-samples" / lab_rel)).dataobj).astype(np.int32)
        ours = reference_in_our_labels(ref, mapping)
        for our_labels, theirs in mapping.values():
            assert np.array_equal(ours == our_labels[0], np.isin(ref, theirs))
    # earlier results are never overwritten
    with pytest.raises(FileExistsError, match="holds earlier results"):
        evaluate(str(shared_dir), str(tiny_model / "models" / "model.pt"), str(BUNDLE_ROOT), **kwargs)


def test_shipped_model_finds_real_muscles_only_with_batch_norm_adaptation(shared_dir):
    """The shipped weights on the real MuscleMap scan (a fat-bright lumbar image from a real scanner, strong coil
    falloff), scored against that sample's own labels (a MuscleMap model's output, not a manual reference): the
    training statistics lose most of ES+MF and psoas, the scan's own statistics find them (docs/studies/real_scans.md).
    """
    from scripts.evaluation.segmentation_metrics import dice
    from scripts.studies.evaluate_real_samples import SAMPLES, reference_in_our_labels, segment

    img_rel, lab_rel, mapping = SAMPLES["musclemap_lumbar_sub0001"]
    image = shared_dir / "real-samples" / img_rel
    ref = reference_in_our_labels(np.asarray(nib.load(str(shared_dir / "real-samples" / lab_rel)).dataobj), mapping)
    scores = {}
    for adapt in (True, False):
        pred, _ = segment(image, BUNDLE_ROOT / "models" / "model.pt", BUNDLE_ROOT, {"adapt_batch_norm": adapt})
        scores[adapt] = {
            name: dice(np.isin(pred, ours), ref == ours[0])
            for name, (ours, _) in mapping.items()
            if name.startswith(("erector", "psoas"))
        }
    for name, value in scores[True].items():
        assert value > 0.7, (name, scores)
    assert max(scores[False].values()) < 0.7, scores


def test_vertebral_context_training_from_the_shipped_weights_and_inference(tiny_cohort, tmp_path):
    import torch

    complete = tmp_path / "complete"
    generate_cohort(
        complete,
        n=3,
        seed=12,
        geometry="tiny",
        variety=False,
        n_validation=1,
        n_testing=1,
        progress=False,
        anatomy="complete",
    )
    common = ["--epochs", "1", "--val_interval", "1", "--patch_size", "[32,32,16]", *TINY_OVERRIDES]
    res = _bundle_run(
        "--config_file",
        "configs/train.json",
        "--dataset_dir",
        str(complete),
        "--vertebral_context",
        "true",
        "--pretrained_ckpt",
        str(BUNDLE_ROOT / "models" / "model.pt"),
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        str(tmp_path / "train"),
        *common,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "tensors adapted to this network's channel counts" in res.stdout + res.stderr
    model = tmp_path / "models" / "model.pt"
    assert list(torch.load(model, weights_only=True).values())[-1].shape == (15,)  # the output layer's bias
    args = ["--config_file", "configs/inference.json", "--dataset_dir", str(complete), "--ckpt_path", str(model)]
    args += ["--roi_size", "[32,32,16]", "--working_spacing", "[8.0,8.0,12.0]"]
    res = _bundle_run(*args, "--output_dir", str(tmp_path / "eval"), "--num_classes", "15")
    assert res.returncode == 0, res.stderr[-3000:]
    subject = json.loads((complete / "datalist.json").read_text())["testing"][0]["subject"]
    table = pd.read_csv(tmp_path / "eval" / subject / f"{subject}_ff_table.csv")
    # the spine never enters the muscle statistics (the QC reasons may name the vertebral labels, the rows never do)
    assert set(table.muscle) <= set(MUSCLES) and set(table.label.dropna()) <= set(range(1, 9))
    levels = json.loads((tmp_path / "eval" / subject / f"{subject}_ff_table.json").read_text())["meta"]["levels"]
    assert levels["status"] in ("ok", "uncertain", "not available")  # a 1-epoch network may or may not draw a spine
    per_level = tmp_path / "eval" / subject / f"{subject}_ff_levels.csv"
    assert per_level.exists() == (levels["status"] != "not available")
    # the 9-class default with this model: refused before anything is written, naming the setting to use
    res = _bundle_run(*args, "--output_dir", str(tmp_path / "eval9"))
    assert res.returncode != 0 and "--num_classes 15" in res.stderr
    assert not (tmp_path / "eval9").exists()
    # a muscle-only cohort cannot teach the spine: refused, naming both ways forward
    res = _bundle_run(
        "--config_file",
        "configs/train.json",
        "--dataset_dir",
        str(tiny_cohort),
        "--vertebral_context",
        "true",
        "--ckpt_dir",
        str(tmp_path / "m2"),
        "--output_dir",
        str(tmp_path / "t2"),
        *common,
    )
    assert res.returncode != 0 and "--vertebral_context false" in res.stderr and "--anatomy complete" in res.stderr


def test_a_fine_tune_never_saves_a_model_worse_than_its_start(tiny_cohort, tiny_model, tmp_path):
    import torch

    start = tiny_model / "models" / "model.pt"
    res = _bundle_run(
        "--config_file",
        "configs/train.json",
        "--dataset_dir",
        str(tiny_cohort),
        "--epochs",
        "1",
        "--val_interval",
        "1",
        "--patch_size",
        "[32,32,16]",
        "--pretrained_ckpt",
        str(start),
        "--learning_rate",
        "5.0",
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        str(tmp_path / "eval"),
        *TINY_OVERRIDES,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    scores = [float(v) for v in re.findall(r"Metrics -- val_mean_dice: ([0-9.]+)", res.stdout + res.stderr)]
    assert len(scores) == 2 and scores[1] <= scores[0], scores  # the start, then the ruined epoch
    saved = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    reference = torch.load(start, weights_only=True)
    assert all(torch.equal(saved[k], reference[k]) for k in reference)  # the starting weights stay the best
    # the ruined last weights are kept apart, and the log says that model.pt is the starting model
    last = torch.load(tmp_path / "models" / "model_last.pt", weights_only=True)
    assert set(last) == set(reference) and not all(torch.equal(last[k], reference[k]) for k in reference)
    log = res.stdout + res.stderr
    assert "no epoch of this run beat the starting weights' validation score" in log and "model_last.pt" in log
    assert not (tmp_path / "models" / "train_state").exists()


def test_background_weight_typed_on_the_command_line_shrinks_the_weighted_muscle(tiny_cohort, tiny_model, tmp_path):
    """``--background_weight`` as a user types it (a number, or JSON per muscle): the weighted muscle's labels shrink,
    the run record keeps the weights, and a weight under 1 is refused before anything is written."""
    dl = json.loads((tiny_cohort / "datalist.json").read_text())
    subject = dl["testing"][0]["subject"]
    common = ["--config_file", "configs/inference.json", "--dataset_dir", str(tiny_cohort)]
    common += ["--ckpt_path", str(tiny_model / "models" / "model.pt"), "--roi_size", "[32,32,16]"]
    common += ["--write_report", "false", *TINY_OVERRIDES[:2]]
    volumes = {}
    for name, weight in (("plain", "1"), ("psoas", '{"psoas": 20, "iliacus": 20}')):
        out = tmp_path / name
        res = _bundle_run(*common, "--output_dir", str(out), "--background_weight", weight)
        assert res.returncode == 0, res.stderr[-3000:]
        seg = np.asarray(nib.load(out / subject / f"{subject}_seg.nii.gz").dataobj)
        volumes[name] = np.bincount(seg.ravel(), minlength=9)[:9]  # voxels per label 0-8
        record = json.loads((out / subject / f"{subject}_run.json").read_text())
        volumes[name + "_record"] = record["settings"]["segmentation"]["background_weight"]
    assert volumes["plain_record"] == dict.fromkeys(
        ("psoas", "iliacus", "quadratus_lumborum", "erector_spinae_multifidus"), 1.0
    )
    assert volumes["psoas_record"]["psoas"] == 20.0 and volumes["psoas_record"]["quadratus_lumborum"] == 1.0
    plain = volumes["plain"][1:5].sum()  # psoas and iliacus, both sides
    assert plain > 0, volumes["plain"]  # the tiny model draws them, so the comparison means something
    assert volumes["psoas"][1:5].sum() < plain
    # the unweighted QL and ES+MF (5-8) never lose a voxel: only the weighted channels were divided
    assert (volumes["psoas"][5:9] >= volumes["plain"][5:9]).all(), (volumes["plain"], volumes["psoas"])
    bad = tmp_path / "bad"
    res = _bundle_run(*common, "--output_dir", str(bad), "--background_weight", "0.5")
    assert res.returncode != 0 and "background_weight" in res.stderr and not bad.exists()
