"""Monte-Carlo cross-validation end to end on a tiny phantom cohort: 2 splits, 1 epoch, 2 atlases; resume skips
finished work and leaves files untouched; a half-done step is moved aside and redone with its downstream steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scripts.phantom import generate_cohort
from scripts.studies.cross_validation import draw_splits, run

TINY = {
    "k": 2,
    "n_test": 2,
    "seed": 1,
    "epochs": 1,
    "val_interval": 1,
    "n_val": 1,
    "atlas_k": 2,
    "train_overrides": {"working_spacing": [8.0, 8.0, 12.0], "num_workers": 0, "patch_size": [32, 32, 16]},
    "infer_overrides": {"working_spacing": [8.0, 8.0, 12.0], "roi_size": [32, 32, 16]},
    "atlas_params": {
        "working_spacing_mm": 8.0,
        "affine_shrink": [2, 1],
        "affine_sigmas_mm": [8.0, 0.0],
        "bspline_shrink": [1],
        "bspline_sigmas_mm": [0.0],
        "bspline_mesh_mm": 80.0,
        "bspline_iterations": 15,
        "sampling_percentage": 0.1,
    },
}


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("cv")
    data = root / "data"
    generate_cohort(data, n=6, seed=5, geometry="tiny", variety=False, n_validation=0, n_testing=0, progress=False)
    out = root / "study"
    report = Path(run(str(data), out_dir=str(out), **TINY))
    return data, out, report


def test_splits_are_seeded_disjoint_and_recorded(study):
    data, out, _ = study
    doc = json.loads((out / "splits.json").read_text())
    assert doc["seed"] == 1 and doc["k"] == 2 and len(doc["splits"]) == 2
    subjects = set(doc["subjects"])
    for i, split in enumerate(doc["splits"]):
        assert split["seed"] == 1000 + i
        assert len(split["test"]) == 2 and not set(split["test"]) & set(split["train"])
        assert set(split["test"]) | set(split["train"]) == subjects
        dl = json.loads((out / f"split_{i}" / "datalist.json").read_text())
        assert [e["subject"] for e in dl["testing"]] == split["test"]
        assert {e["subject"] for e in dl["validation"]} <= set(split["train"])
    assert draw_splits(sorted(subjects), 2, 2, 1) == doc["splits"]  # the same seed draws the same splits


def test_report_tables_hold_numbers_in_valid_ranges(study):
    _, out, report = study
    assert report == out / "report" / "report.md"
    text = report.read_text()
    assert "U-Net vs multi-atlas (LWV)" in text and "ratio to U-Net" in text
    assert "p Wilcoxon, subjects (Holm)" in text and "p corrected t (Holm)" in text and "Per muscle and side" in text
    metrics = pd.read_csv(out / "metrics_all.csv", dtype={"subject": str})
    assert set(metrics.method) == {"unet", "multi_atlas", "multi_atlas_mv"}
    assert len(metrics) == 2 * 2 * 3 * 12  # splits x test subjects x methods x (8 labels + 4 L/R means)
    assert metrics.dice.dropna().between(0, 1).all()
    assert (metrics.hd95_mm.dropna() >= 0).all() and (metrics.hd_mm >= metrics.hd95_mm - 1e-9).all()
    assert metrics.ff_ref_pct.dropna().between(0, 100).all() and metrics.ff_ref_pct.notna().all()
    assert metrics.ff_true_pct.notna().all()  # phantom ground truth joined
    ma = metrics[metrics.method == "multi_atlas"]
    assert ma.dice.mean() > 0.4  # two atlases on 6.8 mm phantoms still find the muscles
    seg = pd.read_csv(out / "report" / "segmentation_table.csv")
    assert set(seg.metric) == {"dice", "rvd", "hd_mm", "hd95_mm"} and len(seg) == 2 * 16
    assert seg.p_wilcoxon_subjects.dropna().between(0, 1).all()
    assert (seg.p_holm_subjects.dropna() >= seg.p_wilcoxon_subjects.dropna()).all()
    # the bundle's border rule only leaves out voxels above its FF threshold, so it can only lower a label's mean
    both = metrics[["ff_method_pct", "ff_method_trim_pct"]].dropna()
    assert len(both) and (both.ff_method_trim_pct <= both.ff_method_pct + 1e-6).all()
    assert np.allclose(metrics.ff_error_trim_pp, metrics.ff_method_trim_pct - metrics.ff_ref_pct, equal_nan=True)
    ff = pd.read_csv(out / "report" / "ff_agreement.csv")
    assert (ff.n > 0).all() and ff.r2.dropna().between(0, 1).all()
    assert set(ff.ff_rule) == {"ff_method_pct", "ff_method_trim_pct"} and len(ff) == 2 * 3
    timing = pd.read_csv(out / "report" / "timing.csv")
    assert (timing.seconds_mean > 0).all() and np.isclose(timing.set_index("method").ratio_to_unet["unet"], 1.0)
    for name in ("box_dice.png", "ff_regression_unet.png", "ff_bland_altman_multi_atlas.png"):
        assert (out / "report" / name).stat().st_size > 0


def test_resume_does_no_work_and_touches_nothing(study):
    data, out, report = study
    before = _files(out)
    assert run(str(data), out_dir=str(out), **TINY) == str(report)
    assert _files(out) == before


def test_other_settings_for_the_same_folder_are_refused(study):
    data, out, _ = study
    with pytest.raises(ValueError, match="splits.json was written with other settings"):
        run(str(data), out_dir=str(out), **{**TINY, "k": 3})
    with pytest.raises(ValueError, match="settings.json holds other settings"):
        run(str(data), out_dir=str(out), **{**TINY, "epochs": 2})


def test_half_done_step_is_moved_aside_and_redone(study):
    data, out, _ = study
    split = out / "split_1"
    # a crash in the middle of the multi-atlas step: its marker was never written
    (split / "multi_atlas" / ".done.json").unlink()
    before = _files(out)
    run(str(data), out_dir=str(out), **TINY)
    after = _files(out)
    assert (split / "multi_atlas.incomplete-1" / "multi_atlas").is_dir()  # kept, not deleted
    assert (split / "multi_atlas" / ".done.json").is_file()
    assert (split / "evaluate.stale-1" / "metrics.csv").is_file()  # its evaluation used the old labels: redone
    assert after["split_1/evaluate/.done.json"] != before["split_1/evaluate/.done.json"]
    # nothing else was redone
    for name in (
        "split_0/unet_train/.done.json",
        "split_0/multi_atlas/.done.json",
        "split_0/evaluate/.done.json",
        "split_1/unet_train/.done.json",
        "split_1/unet/.done.json",
        "splits.json",
    ):
        assert after[name] == before[name], name


def test_missing_datalist_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="datalist.json: datalist not found"):
        run(str(tmp_path), out_dir=str(tmp_path / "out"), **TINY)


def _fake_study(root: Path, splits: list[list[str]], dice_shift: float, settings: dict) -> Path:
    """A finished study's files with U-Net rows only: Dice 0.80 + 0.01 i + ``dice_shift`` (1 + i / 20), i = subject."""
    root.mkdir(parents=True)
    rows = []
    for i, test in enumerate(splits):
        for subject in test:
            idx = int(subject.split("-")[1])
            for muscle in ("psoas", "iliacus", "quadratus_lumborum", "erector_spinae_multifidus"):
                for side in ("left", "right", "mean"):
                    rows.append(
                        {
                            "split": i,
                            "subject": subject,
                            "method": "unet",
                            "muscle": muscle,
                            "side": side,
                            "dice": 0.80 + 0.01 * idx + dice_shift * (1 + idx / 20),
                            "rvd": 0.05,
                            "hd_mm": 9.0,
                            "hd95_mm": 4.0 + 0.1 * idx,
                            "ff_ref_pct": 5.0 + idx,
                            "ff_method_pct": 5.0 + idx + dice_shift * 10,
                            "seconds": 3.0,
                        }
                    )
    pd.DataFrame(rows).to_csv(root / "metrics_all.csv", index=False)
    (root / "splits.json").write_text(
        json.dumps({"splits": [{"split": i, "test": t, "seed": 1000 + i} for i, t in enumerate(splits)]})
    )
    (root / "settings.json").write_text(json.dumps(settings))
    return root


def test_compare_studies_pairs_the_shared_splits_and_refuses_other_splits(tmp_path):
    from scripts.studies.cv_report import compare_studies

    splits = [[f"sub-{j:02d}" for j in range(5 * i, 5 * i + 5)] for i in range(3)]
    base = _fake_study(tmp_path / "one", splits, 0.0, {"train_overrides": {}})
    # two splits of the same draw (a smaller --k), every Dice higher, by 0.01 to 0.0145 (no ties)
    two = _fake_study(tmp_path / "two", splits[:2], 0.01, {"train_overrides": {"network_channels": "water_fat"}})
    report = compare_studies(two, base, tmp_path / "cmp", name="water+fat", baseline_name="in-phase")
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    dice = table[(table.muscle == "psoas") & (table.metric == "dice")].iloc[0]
    expected = np.mean([0.80 + 0.01 * j for j in range(10)])  # split 2 (sub-10..14) is not shared: left out
    assert dice.n == 10 and np.isclose(dice["in-phase_mean"], expected)
    assert np.isclose(dice["water+fat_mean"] - dice["in-phase_mean"], 0.01 * (1 + 4.5 / 20))
    assert np.isclose(dice.p_wilcoxon_subjects, 2 / 1024)  # 10 distinct subjects, all one way, no ties: exact p
    assert dice.better == "water+fat"
    ff = pd.read_csv(tmp_path / "cmp" / "ff_agreement.csv").set_index("method")
    assert np.isclose(ff.loc["in-phase", "bias_pp"], 0.0) and np.isclose(ff.loc["water+fat", "bias_pp"], 0.1)
    text = report.read_text()
    assert "splits [0, 1]" in text and "network_channels" in text
    other = _fake_study(tmp_path / "other", [splits[1], splits[0]], 0.0, {})
    with pytest.raises(ValueError, match="different splits"):
        compare_studies(two, other, tmp_path / "cmp2")
    with pytest.raises(FileNotFoundError, match="missing .*metrics_all.csv"):
        compare_studies(tmp_path / "cmp", base, tmp_path / "cmp3")


def test_sigterm_stops_the_running_step_child_too(tmp_path):
    """A study killed with SIGTERM must not leave its training (a child process) running as an orphan."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    # the child writes its own pid, then sleeps; the parent waits on it with subprocess.run, as _bundle_run does
    child_code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    code = (
        "import subprocess, sys\n"
        "from scripts.studies.cross_validation import exit_on_sigterm\n"
        "exit_on_sigterm()\n"
        f"subprocess.run([sys.executable, '-c', {child_code!r}])\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2])
    deadline = time.time() + 60
    while not (pid_file.is_file() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.time() + 10
    alive = True
    stat = Path(f"/proc/{child}/stat")
    while alive and time.time() < deadline:
        try:
            os.kill(child, 0)
            # a killed child whose new parent does not reap it stays a zombie ("Z"): dead all the same
            alive = not (stat.is_file() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")
            time.sleep(0.1)
        except (ProcessLookupError, FileNotFoundError):
            alive = False
    assert not alive, f"child {child} still running after its parent was terminated"


def test_inference_window_follows_a_changed_training_patch():
    from scripts.studies.cross_validation import inference_overrides

    assert inference_overrides({}, {}) == {}  # shipped settings: inference.json's own window
    assert inference_overrides({"patch_size": [64, 64, 32]}, {}) == {"roi_size": [64, 64, 32]}
    # an explicit window wins
    assert inference_overrides({"patch_size": [64, 64, 32]}, {"roi_size": [96, 96, 48]}) == {"roi_size": [96, 96, 48]}
    assert inference_overrides({"epochs": 3}, {"flip_ensemble": False}) == {"flip_ensemble": False}


def test_an_interrupted_training_step_continues_in_its_folder(tmp_path):
    from scripts.studies.cross_validation import run_step, training_can_resume

    folder = tmp_path / "unet_train"
    state = folder / "models" / "train_state"
    state.mkdir(parents=True)
    assert not training_can_resume(folder)  # no saved state yet: a crash before the first checkpoint
    (state / "checkpoint_epoch=4.pt").write_bytes(b"state")
    (folder / "train.log").write_text("epochs 1-4\n")
    assert training_can_resume(folder)
    seen = []

    def work(f: Path) -> dict:
        seen.append(sorted(p.name for p in f.rglob("*")))
        return {"epochs": 6}

    record = run_step(folder, work, can_resume=training_can_resume)
    assert record["resumed"] is True and record["epochs"] == 6
    assert "checkpoint_epoch=4.pt" in seen[0] and "train.log" in seen[0]  # the work saw the interrupted run's state
    assert not list(tmp_path.glob("unet_train.incomplete-*"))
    assert json.loads((folder / ".done.json").read_text())["resumed"] is True
    # a finished step is skipped, with or without a resumable state
    assert run_step(folder, lambda f: {"epochs": 0}, can_resume=training_can_resume)["epochs"] == 6


def test_an_interrupted_step_without_saved_state_is_redone_from_scratch(tmp_path):
    from scripts.studies.cross_validation import run_step, training_can_resume

    folder = tmp_path / "unet_train"
    (folder / "models").mkdir(parents=True)
    (folder / "train.log").write_text("crashed at epoch 1\n")
    record = run_step(folder, lambda f: {"files": sorted(p.name for p in f.rglob("*"))}, can_resume=training_can_resume)
    assert record["files"] == [] and "resumed" not in record
    assert (tmp_path / "unet_train.incomplete-1" / "train.log").read_text() == "crashed at epoch 1\n"


def test_a_study_fine_tunes_every_split_from_a_given_checkpoint(study, tmp_path):
    import hashlib

    import torch

    data, out, _ = study
    start = out / "split_0" / "unet_train" / "models" / "model.pt"  # any bare state_dict of the same network
    frozen = {**TINY["train_overrides"], "learning_rate": 0.0}  # no step can move the weights
    report = run(
        str(data),
        out_dir=str(tmp_path / "ft"),
        **{**TINY, "k": 1, "train_overrides": frozen},
        methods="unet",
        pretrained_ckpt=str(start),
    )
    settings = json.loads((tmp_path / "ft" / "settings.json").read_text())
    assert settings["pretrained_ckpt"] == {
        "path": str(start.resolve()),
        "sha256": hashlib.sha256(start.read_bytes()).hexdigest(),
    }
    tuned = torch.load(tmp_path / "ft" / "split_0" / "unet_train" / "models" / "model.pt", weights_only=True)
    given = torch.load(start, weights_only=True)
    # batch-norm running statistics move in training even at lr 0; every learned weight must be the given one
    learned = [k for k in given if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert tuned.keys() == given.keys() and len(learned) > 10
    assert all(torch.equal(tuned[k], given[k]) for k in learned)  # it started there
    assert "fine-tuned from `model.pt`" in Path(report).read_text()
    # a study from scratch keeps settings without the key, so its settings.json still resumes
    assert "pretrained_ckpt" not in json.loads((out / "settings.json").read_text())


def test_a_bad_pretrained_checkpoint_is_named(tmp_path):
    from scripts.studies.cross_validation import pretrained_record

    with pytest.raises(FileNotFoundError, match="missing.pt: file not found"):
        pretrained_record(tmp_path / "missing.pt")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.pt: not a PyTorch state_dict"):
        pretrained_record(tmp_path / "notes.pt")


def test_comparison_table_tests_distinct_subjects_and_splits():
    """A subject tested in two splits counts once (its mean); the split-level test is the corrected t-test."""
    from scripts.evaluation.agreement import paired_wilcoxon
    from scripts.labels import MUSCLES
    from scripts.studies.cv_report import comparison_table

    tests = {0: ["s0", "s1", "s2"], 1: ["s0", "s3", "s4"], 2: ["s5", "s6", "s7"]}
    diffs = {
        ("0", "s0"): 0.02,
        ("0", "s1"): 0.03,
        ("0", "s2"): 0.05,
        ("1", "s0"): 0.06,
        ("1", "s3"): 0.01,
        ("1", "s4"): 0.04,
        ("2", "s5"): 0.07,
        ("2", "s6"): 0.08,
        ("2", "s7"): 0.09,
    }
    rows = []
    for split, subjects in tests.items():
        for s in subjects:
            for muscle in MUSCLES:
                rows.append(dict(split=split, subject=s, method="b", muscle=muscle, side="mean", dice=0.8))
                rows.append(
                    dict(
                        split=split,
                        subject=s,
                        method="a",
                        muscle=muscle,
                        side="mean",
                        dice=0.8 + diffs[(str(split), s)],
                    )
                )
    table = comparison_table(pd.DataFrame(rows), "a", "b", columns=("dice",), n_train=5, n_test=3)
    row = table[table.muscle == MUSCLES[0]].iloc[0]
    subject_diff = [0.04, 0.03, 0.05, 0.01, 0.04, 0.07, 0.08, 0.09]  # s0: (0.02 + 0.06) / 2
    assert row.n == 9 and row.n_subjects == 8 and np.isclose(row.diff_mean, np.mean(subject_diff))
    assert np.isclose(row.p_wilcoxon_subjects, paired_wilcoxon(np.array(subject_diff), np.zeros(8)).p)
    split_diff = np.array([0.1 / 3, 0.11 / 3, 0.24 / 3])
    t = split_diff.mean() / np.sqrt((1 / 3 + 3 / 5) * split_diff.var(ddof=1))
    assert np.isclose(row.p_crt, 2 * stats.t.sf(t, 2))
    assert np.isclose(row.p_crt_holm, min(1.0, 4 * row.p_crt))  # four identical tests, one per muscle
