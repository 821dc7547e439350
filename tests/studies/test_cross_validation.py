"""Monte-Carlo cross-validation end to end on a tiny phantom cohort: 2 splits, 1 epoch, 2 atlases; resume skips
finished work and leaves files untouched; a half-done step is moved aside and redone with its downstream steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scripts.phantom import generate_cohort
from scripts.studies.cross_validation import run
from scripts.studies.cv_splits import draw_splits

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
