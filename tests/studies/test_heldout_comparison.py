"""scripts.studies.heldout_comparison: two evaluations compared at full precision, known answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scripts.labels import MUSCLES
from scripts.studies.heldout_comparison import accuracy_measures, compare

from tests.conftest import BUNDLE_ROOT


def _evaluation(folder: Path, dice: dict[str, float], ff_error: float, subjects=("sub-0001", "sub-0002")) -> Path:
    """Per-case tables as evaluate_phantom writes them: every side of a muscle has the same Dice, HD95 2 mm, and a
    predicted mean FF ``ff_error`` pp above a true FF of 10 + 5 * (subject index) %; plus the L/R 'mean' rows,
    which the comparison must ignore."""
    seg, ff = [], []
    for i, subject in enumerate(subjects):
        for muscle in MUSCLES:
            truth = 10.0 + 5.0 * i + MUSCLES.index(muscle)
            for side in ("left", "right", "mean"):
                seg.append(dict(subject=subject, muscle=muscle, side=side, dice=dice[muscle], hd95_mm=2.0, rvd=0.0))
                ff.append(
                    dict(
                        subject=subject,
                        muscle=muscle,
                        side=side,
                        ff_mean_pct_pred=truth + (ff_error if side != "mean" else 50.0),
                        ff_mean_pct_truth=truth,
                    )
                )
    folder.mkdir(parents=True)
    pd.DataFrame(seg).to_csv(folder / "segmentation_metrics.csv", index=False)
    pd.DataFrame(ff).to_csv(folder / "ff_agreement.csv", index=False)
    return folder


BASE_DICE = {"psoas": 0.93330, "iliacus": 0.93851, "quadratus_lumborum": 0.91722, "erector_spinae_multifidus": 0.95318}


def test_a_gain_under_0_002_stays_under_where_the_summary_would_round_it_to_0_002(tmp_path):
    """The case that made the tool: summary.md's three decimals give 0.9355 -> 0.9375 (+0.0020) for these Dice."""
    candidate_dice = {
        "psoas": 0.93636,
        "iliacus": 0.94065,
        "quadratus_lumborum": 0.91866,
        "erector_spinae_multifidus": 0.95412,
    }
    base = _evaluation(tmp_path / "base", BASE_DICE, ff_error=1.0)
    cand = _evaluation(tmp_path / "cand", candidate_dice, ff_error=-0.5)
    table = compare(base, cand).set_index("measure")
    rounded_gain = np.mean([round(v, 3) for v in candidate_dice.values()]) - np.mean(
        [round(v, 3) for v in BASE_DICE.values()]
    )
    assert rounded_gain == pytest.approx(0.0020, abs=1e-9)
    assert table.loc["dice_mean", "difference"] == pytest.approx(0.001895, abs=1e-9)
    assert table.loc["dice_mean", "difference"] < 0.002
    assert table.loc["dice_psoas", "candidate"] == pytest.approx(0.93636)
    # every side 1 pp too high, then 0.5 pp too low: median and P95 of the absolute error, the bias with its sign
    assert table.loc["ff_median_pp_psoas", "baseline"] == pytest.approx(1.0)
    assert table.loc["ff_median_pp_mean", "difference"] == pytest.approx(-0.5)
    assert table.loc["ff_p95_pp", "candidate"] == pytest.approx(0.5)
    assert table.loc["ff_bias_pp", "baseline"] == pytest.approx(1.0)
    assert table.loc["ff_bias_pp", "candidate"] == pytest.approx(-0.5)
    # a constant offset keeps the points on a line of slope 1: R^2 1 either way
    assert table.loc["ff_r2", "baseline"] == pytest.approx(1.0)
    assert table.loc["hd95_mm_quadratus_lumborum", "difference"] == pytest.approx(0.0)


def test_the_mean_rows_and_sides_without_ff_do_not_count(tmp_path):
    folder = _evaluation(tmp_path / "e", BASE_DICE, ff_error=2.0)
    ff = pd.read_csv(folder / "ff_agreement.csv")
    ff.loc[(ff.muscle == "psoas") & (ff.side == "left"), "ff_mean_pct_pred"] = np.nan  # a missing side
    ff.to_csv(folder / "ff_agreement.csv", index=False)
    measures = accuracy_measures(folder)
    assert measures["ff_median_pp_psoas"] == pytest.approx(2.0)  # the 'mean' rows (50 pp off) are left out
    assert measures["ff_median_pp"] == pytest.approx(2.0)
    assert measures["dice_mean"] == pytest.approx(np.mean(list(BASE_DICE.values())))


def test_different_subjects_or_a_missing_table_are_refused_with_the_way_forward(tmp_path):
    base = _evaluation(tmp_path / "base", BASE_DICE, ff_error=1.0)
    other = _evaluation(tmp_path / "other", BASE_DICE, ff_error=1.0, subjects=("sub-0001", "sub-0003"))
    with pytest.raises(ValueError, match="different subjects"):
        compare(base, other)
    (other / "ff_agreement.csv").unlink()
    with pytest.raises(FileNotFoundError, match="evaluate_phantom"):
        accuracy_measures(other)


def test_the_command_prints_the_table_and_writes_the_csv(tmp_path):
    base = _evaluation(tmp_path / "base", BASE_DICE, ff_error=1.0)
    cand = _evaluation(tmp_path / "cand", {m: v + 0.01 for m, v in BASE_DICE.items()}, ff_error=1.0)
    out_csv = tmp_path / "cmp" / "comparison.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.studies.heldout_comparison",
            "--baseline",
            str(base),
            "--candidate",
            str(cand),
            "--out_csv",
            str(out_csv),
            "--n_bootstrap",
            "20",
        ],
        cwd=BUNDLE_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "| dice_mean | 0.93555 | 0.94555 | +0.01000 | +0.01000 to +0.01000 |" in done.stdout
    table = pd.read_csv(out_csv).set_index("measure")
    assert table.loc["dice_mean", "difference"] == pytest.approx(0.01)
    assert len(table) == 4 * 4 + 6 and {"ci_low", "ci_high"} <= set(table.columns)


def test_the_paired_bootstrap_gives_no_spread_to_a_shift_every_subject_shares(tmp_path):
    """Each subject's sides move by the same amount, so every redraw of the subjects gives the same difference; a
    difference that only some subjects carry gets an interval that spans it."""
    subjects = tuple(f"sub-{i:04d}" for i in range(1, 7))
    base = _evaluation(tmp_path / "base", BASE_DICE, ff_error=1.0, subjects=subjects)
    cand = _evaluation(tmp_path / "cand", {m: v + 0.01 for m, v in BASE_DICE.items()}, 1.0, subjects=subjects)
    table = compare(base, cand, n_bootstrap=40, seed=3).set_index("measure")
    assert table.loc["dice_mean", ["ci_low", "ci_high"]].tolist() == pytest.approx([0.01, 0.01])
    assert table.loc["ff_bias_pp", ["ci_low", "ci_high"]].tolist() == pytest.approx([0.0, 0.0])
    # now only the first subject's psoas gains 0.06: the mean gain is 0.01, some redraws hold it twice, some never
    seg = pd.read_csv(base / "segmentation_metrics.csv")
    seg.loc[(seg.subject == "sub-0001") & (seg.muscle == "psoas"), "dice"] += 0.06
    one = tmp_path / "one"
    one.mkdir()
    seg.to_csv(one / "segmentation_metrics.csv", index=False)
    (one / "ff_agreement.csv").write_text((base / "ff_agreement.csv").read_text())
    lumpy = compare(base, one, n_bootstrap=200, seed=3).set_index("measure")
    assert lumpy.loc["dice_psoas", "difference"] == pytest.approx(0.01)
    assert lumpy.loc["dice_psoas", "ci_low"] == pytest.approx(0.0)
    assert lumpy.loc["dice_psoas", "ci_high"] > 0.015
    with pytest.raises(ValueError, match="n_bootstrap"):
        compare(base, one, n_bootstrap=-1)


def test_two_bundle_versions_compare_from_the_tables_the_bundle_keeps():
    """0.37.0 changed only the psoas and iliacus borders (the border decision): QL and ES+MF are the same numbers."""
    table = compare("0.36.0", "0.37.0").set_index("measure")
    assert table.loc["ff_median_pp_quadratus_lumborum", "difference"] == 0.0
    assert table.loc["dice_erector_spinae_multifidus", "difference"] == 0.0
    assert table.loc["ff_r2", "difference"] > 0.005  # what the border decision was adopted for
    with pytest.raises(FileNotFoundError, match="neither an evaluation folder"):
        compare("no_such_folder", "0.37.0")
    with pytest.raises(FileNotFoundError, match="no held-out table for version 0.0.1"):
        compare("0.0.1", "0.37.0")
