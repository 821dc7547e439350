"""Known-answer tests of scripts.studies.ablation_stats and the replicate layout of ablation.run (no training)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scripts.studies import ablation
from scripts.studies.ablation_stats import contrast_table, equivalence_test


def test_equivalence_test_known_answer():
    d = [0.004, -0.002, 0.006, 0.000]  # mean 0.002, sd sqrt(3.4667e-5)
    res = equivalence_test(d, margin=0.02)
    se = np.std(d, ddof=1) / 2
    assert np.isclose(res["mean"], 0.002) and np.isclose(res["p_difference"], 2 * stats.t.sf(0.002 / se, 3))
    # TOST: the larger one-sided p, against -margin and +margin
    p_up = stats.t.cdf((0.002 - 0.02) / se, 3)
    p_lo = stats.t.sf((0.002 + 0.02) / se, 3)
    assert np.isclose(res["p_equivalence"], max(p_up, p_lo)) and res["p_equivalence"] < 0.05
    assert np.isclose(res["ci90_upper"], 0.002 + stats.t.ppf(0.95, 3) * se)
    # a clear difference is not equivalent
    assert equivalence_test([0.05, 0.06, 0.04], margin=0.02)["p_equivalence"] > 0.05


def _metrics(n_reps: int, shift: float) -> pd.DataFrame:
    rows = []
    for r in range(n_reps):
        for s in range(6):
            for arm, base in (("none", 0.90), ("rotations", 0.90), ("rotations+bspline", 0.90 + shift)):
                extra = (0.0003 * s + 0.002 * r) if arm == "rotations+bspline" else 0.0
                rows.append(
                    dict(arm=arm, seed=r, subject=f"s{s}", muscle="psoas", side="mean", dice=base + 0.001 * s + extra)
                )
    return pd.DataFrame(rows)


def test_contrast_table_uses_training_runs_and_reports_the_paper_contrast():
    table = contrast_table(_metrics(3, 0.05), margins={"dice": 0.02})
    row = table[(table.arm == "rotations+bspline") & (table.reference == "rotations")].iloc[0]
    # per-run differences 0.05 + 0.0003 * mean(0..5) + 0.002 r: t over 3 training runs
    d = 0.05 + 0.0003 * 2.5 + np.array([0.0, 0.002, 0.004])
    assert row.unit == "training runs" and row.replicates == 3 and np.isclose(row["mean"], d.mean())
    assert np.isclose(row.p_difference, 2 * stats.t.sf(d.mean() / (d.std(ddof=1) / math.sqrt(3)), 2))
    assert row.verdict == "different"
    same = table[(table.arm == "rotations") & (table.reference == "none")].iloc[0]
    assert same.verdict == "equivalent"  # identical arms, all differences 0 inside the margin


def test_contrast_table_one_run_falls_back_to_subjects():
    table = contrast_table(_metrics(1, 0.01).drop(columns="seed"), margins={"dice": 0.02})
    row = table[(table.arm == "rotations+bspline") & (table.reference == "none")].iloc[0]
    assert row.unit == "subjects (one training run)" and row.subjects == 6
    assert np.isclose(row.p_difference, 2 / 64)  # exact Wilcoxon, 6 distinct differences all positive


def test_run_writes_one_folder_per_replicate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls: list[tuple[str, int]] = []

    def fake_train(dataset_dir: Any, datalist: Any, epochs: int, val_interval: int, seed: int, overrides: Any):
        def work(folder: Path) -> dict[str, Any]:
            calls.append((folder.parent.name, seed))
            return {"seconds": 1.0}

        return work

    def fake_predict(*args: Any) -> Any:
        return lambda folder: {}

    def fake_eval(test_dir: str, pred: str) -> tuple[pd.DataFrame, None]:
        arm = Path(pred).parent.parent.name
        return (
            pd.DataFrame(
                [
                    dict(
                        subject=f"s{i}",
                        muscle="psoas",
                        side="mean",
                        dice=0.9 + 0.01 * i + (0.02 if arm == "rotations" else 0.0),
                        rvd=0.0,
                        hd95_mm=1.0,
                    )
                    for i in range(4)
                ]
            ),
            None,
        )

    def fake_datalist(dataset_dir: Path, test_dir: Path, n_train: int, seed: int, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "datalist.json"
        path.write_text('{"training": [], "validation": [], "testing": [1, 2, 3, 4]}')
        return path

    monkeypatch.setattr(ablation, "train_unet", fake_train)
    monkeypatch.setattr(ablation, "predict_unet", fake_predict)
    monkeypatch.setattr(ablation, "evaluate_run", fake_eval)
    monkeypatch.setattr(ablation, "_write_datalist", fake_datalist)
    out = tmp_path / "abl"
    ablation.run("train", "test", out_dir=str(out), arms="none,rotations", seeds="0,1,2")
    assert sorted(calls) == sorted((arm, s) for arm in ("none", "rotations") for s in (0, 1, 2))
    assert (out / "draw0_seed2" / "rotations" / "train" / ".done.json").is_file()
    contrasts = pd.read_csv(out / "contrasts.csv")
    dice = contrasts[(contrasts.metric == "dice")].iloc[0]
    assert dice.unit == "training runs" and dice.replicates == 3 and np.isclose(dice["mean"], 0.02)
    assert "## Contrasts between arms" in (out / "report.md").read_text()
