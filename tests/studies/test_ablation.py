"""Augmentation ablation (scripts/studies/ablation.py): the arms' settings, the comparison table against scipy, and a
tiny
end-to-end run (two arms, 1 epoch, tiny phantoms) that resumes without redoing work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon
from scripts.phantom import generate_cohort
from scripts.studies.ablation import ARMS, COMMON_OVERRIDES, ablation_table, arm_overrides, run

TINY_TRAIN = {"working_spacing": [8.0, 8.0, 12.0], "num_workers": 0, "patch_size": [32, 32, 16]}
TINY_INFER = {"working_spacing": [8.0, 8.0, 12.0], "roi_size": [32, 32, 16]}


def test_arms_differ_only_in_spatial_augmentation() -> None:
    settings = {arm: arm_overrides(arm, "model.npz") for arm in ARMS}
    for values in settings.values():
        for key, value in COMMON_OVERRIDES.items():
            assert values[key] == value
    assert settings["none"]["rigid_prob"] == settings["none"]["bspline_prob"] == 0.0
    assert settings["none"]["anatomical_model"] == ""
    assert settings["rotations"]["rigid_prob"] > 0 and settings["rotations"]["bspline_prob"] == 0
    assert settings["rotations+bspline"]["bspline_prob"] > 0 and settings["rotations+bspline"]["anatomical_model"] == ""
    assert settings["rotations+bspline+anatomical"]["anatomical_model"] == "model.npz"
    with pytest.raises(ValueError, match="needs an anatomical variability model"):
        arm_overrides("rotations+bspline+anatomical", None)
    with pytest.raises(ValueError, match="unknown arm"):
        arm_overrides("elastic", None)


def test_ablation_table_known_answer() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.7, 0.8, 8)
    better = base + rng.uniform(0.01, 0.05, 8)
    rows = []
    for arm, values in (("none", base), ("rotations", better)):
        for i, v in enumerate(values):
            rows.append(
                {
                    "arm": arm,
                    "subject": f"s{i}",
                    "muscle": "psoas",
                    "side": "mean",
                    "dice": v,
                    "rvd": -v / 10,
                    "hd95_mm": 10 * v,
                }
            )
            rows.append(
                {
                    "arm": arm,
                    "subject": f"s{i}",
                    "muscle": "psoas",
                    "side": "left",
                    "dice": 0.0,
                    "rvd": 0.0,
                    "hd95_mm": 0.0,
                }
            )
    table = ablation_table(pd.DataFrame(rows)).set_index(["arm", "metric"])
    assert table.loc[("none", "dice"), "mean"] == pytest.approx(base.mean())
    assert table.loc[("rotations", "dice"), "sd"] == pytest.approx(better.std(ddof=1))
    assert np.isnan(table.loc[("none", "dice"), "p_wilcoxon"])
    expected = wilcoxon(better, base).pvalue
    assert table.loc[("rotations", "dice"), "p_wilcoxon"] == pytest.approx(expected)
    # rvd and hd95 are monotone in dice, so the three tests give one p; Holm over three equal p-values is 3p
    p = table.xs("rotations").p_wilcoxon
    assert np.allclose(p, expected)
    assert np.allclose(table.xs("rotations").p_holm, min(1.0, 3 * expected))


def test_tiny_ablation_end_to_end_and_resume(tmp_path: Path) -> None:
    train = tmp_path / "train"
    test = tmp_path / "test"
    generate_cohort(train, n=4, seed=7, geometry="tiny", variety=False, n_validation=1, n_testing=0, progress=False)
    generate_cohort(test, n=2, seed=8, geometry="tiny", variety=False, n_validation=0, n_testing=2, progress=False)
    out = tmp_path / "ablation"
    kwargs = dict(
        n_train=2,
        epochs=1,
        val_interval=1,
        out_dir=str(out),
        arms="none,rotations",
        train_overrides=TINY_TRAIN,
        infer_overrides=TINY_INFER,
    )
    table = run(str(train), str(test), **kwargs)
    assert set(table.arm) == {"none", "rotations"}
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics.arm) == {"none", "rotations"} and metrics.subject.nunique() == 2
    assert metrics.dice.between(0, 1).all()
    report = (out / "report.md").read_text()
    assert "| rotations |" in report and "Dice" in report
    datalist = json.loads((out / "datalist.json").read_text())
    assert len(datalist["training"]) == 2 and len(datalist["testing"]) == 2
    # the arms ran with their own settings, recorded in the step markers
    marker = json.loads((out / "rotations" / "train" / ".done.json").read_text())
    assert marker["overrides"]["rigid_prob"] == 0.3 and marker["overrides"]["contrast_prob"] == 0.0
    model = out / "none" / "train" / "models" / "model.pt"
    stamp = model.stat().st_mtime_ns
    run(str(train), str(test), **kwargs)
    assert model.stat().st_mtime_ns == stamp
    # a finished run copied elsewhere with only its evaluate/ folders and datalist resumes without retraining
    moved = tmp_path / "copied"
    moved.mkdir()
    (moved / "datalist.json").write_text((out / "datalist.json").read_text())
    for arm in ("none", "rotations"):
        shutil.copytree(out / arm / "evaluate", moved / arm / "evaluate")
    run(str(train), str(test), **{**kwargs, "out_dir": str(moved)})
    assert not (moved / "none" / "train").exists() and not (moved / "rotations" / "predict").exists()
    pd.testing.assert_frame_equal(pd.read_csv(moved / "metrics.csv"), metrics)
    with pytest.raises(ValueError, match="exists with other subjects"):
        run(str(train), str(test), **{**kwargs, "seed": 3})
