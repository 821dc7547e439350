"""compare_studies: one method of two cross-validation studies on the same splits, pair by pair."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scripts.studies.cv_compare import compare_studies


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
