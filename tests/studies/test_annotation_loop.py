"""The simulated annotation loop: picks, the keep-if-better rule, a tiny end-to-end study, its resume and table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from scripts.integrations.scan_typicality import describe_scan, pool_density
from scripts.phantom.cohort import generate_cohort
from scripts.studies import annotation_loop as loop
from scripts.studies import annotation_runs as runs
from scripts.studies.annotation_loop_report import COLUMNS, verdict, write_report

TINY = ["--working_spacing", "[8.0,8.0,12.0]", "--patch_size", "[32,32,16]"]


def test_pick_uncertainty_takes_the_highest_doubts_ties_by_id():
    doubts = {"a": 0.2, "b": 0.9, "c": 0.5, "d": 0.9}
    assert loop.pick("uncertainty", ["a", "b", "c", "d"], 1, 0, 1, doubts) == ["b"]
    assert loop.pick("uncertainty", ["d", "c", "b", "a"], 3, 5, 2, doubts) == ["b", "d", "c"]
    with pytest.raises(ValueError, match="no doubt score"):
        loop.pick("uncertainty", ["a", "e"], 1, 0, 1, doubts)


def test_pick_uncertainty_typical_weighs_the_doubt_by_density():
    densities = {"atypical": 0.05, "typical": 0.8, "middle": 0.4}
    pool = list(densities)
    # equal doubts: the most typical scan first, then by density
    equal = dict.fromkeys(pool, 0.1)
    assert loop.pick("uncertainty_typical", pool, 1, 0, 1, equal, densities) == ["typical"]
    assert loop.pick("uncertainty_typical", pool, 3, 0, 1, equal, densities) == ["typical", "middle", "atypical"]
    # the atypical scan is the most doubtful: 0.3 x 0.05 = 0.015 < 0.1 x 0.8 = 0.08 (typical) < 0.25 x 0.4 = 0.1
    doubts = {"atypical": 0.3, "typical": 0.1, "middle": 0.25}
    assert loop.pick("uncertainty", pool, 1, 0, 1, doubts) == ["atypical"]
    assert loop.pick("uncertainty_typical", pool, 3, 0, 1, doubts, densities) == ["middle", "typical", "atypical"]
    # ... but with density 0.5 (0.3 x 0.5 = 0.15) it is typical enough to come first
    denser = {**densities, "atypical": 0.5}
    assert loop.pick("uncertainty_typical", pool, 1, 0, 1, doubts, denser) == ["atypical"]
    # beta 2: 0.3 x 0.5^2 = 0.075 > 0.1 x 0.8^2 = 0.064 > 0.25 x 0.4^2 = 0.04
    by_beta2 = loop.pick("uncertainty_typical", pool, 3, 0, 1, doubts, denser, beta=2.0)
    assert by_beta2 == ["atypical", "typical", "middle"]
    # beta 0 is the doubt alone
    assert loop.pick("uncertainty_typical", pool, 3, 0, 1, doubts, densities, beta=0.0) == loop.pick(
        "uncertainty", pool, 3, 0, 1, doubts
    )
    with pytest.raises(ValueError, match="no density"):
        loop.pick("uncertainty_typical", pool, 1, 0, 1, doubts, {"typical": 1.0})
    with pytest.raises(ValueError, match="no doubt score"):
        loop.pick("uncertainty_typical", pool, 1, 0, 1, {}, densities)


def test_pick_random_is_seeded_and_reproducible():
    pool = [f"sub-{i:04d}" for i in range(20)]
    first = loop.pick("random", pool, 4, 0, 1)
    assert first == loop.pick("random", list(reversed(pool)), 4, 0, 1)  # order of the pool does not matter
    assert len(set(first)) == 4 and set(first) <= set(pool)
    others = {tuple(loop.pick("random", pool, 4, seed, 1)) for seed in range(1, 6)}
    assert len(others | {tuple(first)}) > 1  # seeds draw differently
    assert loop.pick("random", pool, 4, 0, 1) != loop.pick("random", pool, 4, 0, 2)
    with pytest.raises(ValueError, match="only 2 are left"):
        loop.pick("random", pool[:2], 3, 0, 1)
    with pytest.raises(ValueError, match="unknown strategy"):
        loop.pick("first", pool, 1, 0, 1)


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pool") / "data"
    generate_cohort(
        out,
        n=6,
        seed=12,
        geometry="tiny",
        variety=False,
        n_validation=1,
        n_testing=1,
        progress=False,
        anatomy="complete",
    )
    return out


def _config(cohort: Path, out: Path, **kwargs) -> loop.LoopConfig:
    return loop.LoopConfig(
        str(cohort),
        str(cohort),
        str(out),
        [1, 2],
        1,
        1e-4,
        4,
        1,
        1,
        str(runs.BUNDLE_ROOT / "models" / "model.pt"),
        [8.0, 8.0, 12.0],
        [32, 32, 16],
        **kwargs,
    )


@pytest.mark.parametrize(("val_round", "action"), [(0.70, "replaced"), (0.50, "kept"), (0.60, "kept")])
def test_round_keeps_the_previous_weights_unless_validation_improves(
    tiny_cohort, tmp_path, monkeypatch, val_round, action
):
    new_model = tmp_path / "new.pt"
    new_model.write_bytes(b"x")
    monkeypatch.setattr(runs, "fine_tune", lambda *a, **k: (new_model, val_round))
    monkeypatch.setattr(runs, "score_heldout", lambda *a, **k: {"dice_mean": 0.99, "ff_abs_err_median_pp": 0.1})
    prev = {"weights": "old.pt", "val_dice": 0.60, "dice_mean": 0.5, "ff_abs_err_median_pp": 3.0, "labelled": []}
    rec = loop._round(_config(tiny_cohort, tmp_path / "out"), "random", 0, 1, prev, tmp_path / "r1")
    assert rec["weights_action"] == action and rec["val_dice_round"] == val_round
    if action == "replaced":
        assert rec["weights"] == str(new_model) and rec["dice_mean"] == 0.99 and rec["val_dice"] == 0.70
    else:  # the served model and its held-out scores stay those of the previous round
        assert rec["weights"] == "old.pt" and rec["dice_mean"] == 0.5 and rec["ff_abs_err_median_pp"] == 3.0
        assert rec["val_dice"] == 0.60
    assert rec["n_annotated"] == 1 and rec["cpu_s"] >= 0


def test_round_uncertainty_typical_uses_the_density_among_the_whole_pool(tiny_cohort, tmp_path, monkeypatch):
    cfg = _config(tiny_cohort, tmp_path / "out")
    by_id = {e["subject"]: e for e in cfg.pool}
    density = pool_density({s: describe_scan(tiny_cohort / e["image"]) for s, e in by_id.items()})
    labelled = [min(density, key=density.get)]  # annotated already, but still part of the pool
    unlabelled = sorted(set(by_id) - set(labelled))
    # equal doubts: the unlabelled scan most typical of the whole pool (unlabelled and labelled) is picked
    monkeypatch.setattr(loop, "_doubts", lambda c, w, subjects: dict.fromkeys(subjects, 0.1))
    monkeypatch.setattr(runs, "fine_tune", lambda *a, **k: (None, 0.0))
    prev = {"weights": "old.pt", "val_dice": 0.6, "dice_mean": 0.5, "ff_abs_err_median_pp": 3.0, "labelled": labelled}
    rec = loop._round(cfg, "uncertainty_typical", 0, 2, prev, tmp_path / "r2")
    expected = max(unlabelled, key=lambda s: density[s])
    assert rec["picked"] == [expected] and rec["labelled"] == [*labelled, expected]
    assert rec["picked_density"] == [pytest.approx(density[expected], rel=1e-9)]
    cache = json.loads((cfg.out_dir / "typicality.json").read_text())
    assert set(cache["descriptors"]) == set(by_id)
    with pytest.raises(ValueError, match="beta"):
        _config(tiny_cohort, tmp_path / "other", beta=-1.0)


def test_tiny_study_end_to_end_resume_and_table(tiny_cohort, tmp_path):
    out = tmp_path / "study"
    args = [
        "--pool_dir",
        str(tiny_cohort),
        "--heldout_dir",
        str(tiny_cohort),
        "--out_dir",
        str(out),
        "--seeds",
        "0",
        "--budgets",
        "1,2",
        "--epochs",
        "1",
        "--pool_size",
        "4",
        "--n_validation",
        "1",
        "--n_heldout",
        "1",
        *TINY,
    ]
    loop.main(args)
    table = pd.read_csv(out / "rounds.csv", dtype={"picked": str})
    assert list(table.columns) == COLUMNS
    assert len(table) == 6 and set(table.strategy) == {"uncertainty", "random"}  # rounds 0-2 of each chain
    assert set(table.weights_action) <= {"shipped", "kept", "replaced"}
    assert (table.n_annotated == table["round"].map({0: 0, 1: 1, 2: 2})).all()
    # uncertainty's first pick: the pool scan the shipped weights doubt most (cached per weights file)
    doubts = json.loads(
        (out / "doubts" / f"{runs.weights_digest(runs.BUNDLE_ROOT / 'models' / 'model.pt')}.json").read_text()
    )
    assert len(doubts) == 4 and all(0 <= d <= 1 for d in doubts.values())
    unc = table[table.strategy == "uncertainty"].set_index("round")
    assert unc.picked[1] == max(sorted(doubts), key=lambda s: doubts[s])
    # random's picks: the seeded draw, reproducible
    rnd = table[table.strategy == "random"].set_index("round")
    pool = sorted(doubts)
    assert rnd.picked[1] == loop.pick("random", pool, 1, 0, 1)[0]
    assert rnd.picked[2] == loop.pick("random", [s for s in pool if s != rnd.picked[1]], 1, 0, 2)[0]
    # a kept round carries the previous scores; every round's validation figure is a Dice in [0, 1]
    for chain in (unc, rnd):
        for r in (1, 2):
            assert 0 <= chain.val_dice_round[r] <= 1
            if chain.weights_action[r] == "kept":
                assert chain.dice_mean[r] == chain.dice_mean[r - 1]
    assert (out / "curve.png").stat().st_size > 1000
    assert "Random's mean Dice with 2 annotated scans" in (out / "summary.md").read_text()
    # resume: a rerun redoes nothing (the round markers are untouched) and writes the same table
    markers = {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/round*/.done.json")}
    assert len(markers) == 4
    loop.main(args)
    assert {p: p.stat().st_mtime_ns for p in markers} == markers
    assert pd.read_csv(out / "rounds.csv", dtype={"picked": str}).equals(table)
    # a later run with more rounds rewrites the summary (a stale one is replaced, not refused)
    (out / "summary.md").write_text("stale")
    assert "Random's mean Dice" in write_report(out, [1, 2]) and (out / "summary.md").read_text() != "stale"
    # doubts of more subjects with the same weights extend the cache
    cache = next((out / "doubts").glob("*.json"))
    cache.write_text(json.dumps({s: d for s, d in doubts.items() if s != pool[0]}))
    cfg = _config(tiny_cohort, out)
    assert loop._doubts(cfg, runs.BUNDLE_ROOT / "models" / "model.pt", pool) == pytest.approx(doubts, abs=1e-6)


def test_verdict_reports_met_and_not_met():
    rows = []
    for strategy, dice in (("random", [0.80, 0.82, 0.85]), ("uncertainty", [0.80, 0.86, 0.87])):
        rows += [{"strategy": strategy, "seed": 0, "n_annotated": n, "dice_mean": d} for n, d in zip([1, 2, 4], dice)]
    table = pd.DataFrame(rows)
    assert "Target met: uncertainty reaches it with 2 scans" in verdict(table, [1, 2, 4])
    table.loc[table.strategy == "uncertainty", "dice_mean"] = [0.80, 0.81, 0.86]
    assert "Target not met: uncertainty reaches it first with 4 scans" in verdict(table, [1, 2, 4])
    assert "not available" in verdict(table[table.n_annotated < 4], [1, 2, 4])


def test_cpu_precision_reaches_the_heldout_and_doubt_settings_only(tiny_cohort, tmp_path):
    cfg = _config(tiny_cohort, tmp_path / "out", cpu_precision="float32")
    assert cfg.infer_overrides["cpu_precision"] == "float32"
    assert "cpu_precision" not in cfg.train_overrides
    assert "cpu_precision" not in _config(tiny_cohort, tmp_path / "out2").infer_overrides
