"""The candidate recipe (scripts/studies/vertebral_candidate.py), 15 outputs or muscle-only: the widened
interpolation and the choice rule by known answers, and tiny end-to-end runs on tiny anatomy-complete phantoms (one
that resumes without redoing)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from scripts.phantom import generate_cohort
from scripts.studies.bundle_runs import BUNDLE_ROOT
from scripts.studies.vertebral_candidate import SHIPPED, choose_weight, run, widened_soup

TINY_TRAIN = {"working_spacing": [8.0, 8.0, 12.0], "num_workers": 0, "patch_size": [32, 32, 16]}
TINY_INFER = {"working_spacing": [8.0, 8.0, 12.0], "roi_size": [32, 32, 16]}


def test_widened_soup_moves_the_old_classes_and_keeps_the_new_ones_tuned():
    base = {"out.weight": torch.zeros(9, 4), "out.bias": torch.zeros(9), "body.w": torch.zeros(3)}
    tuned = {"out.weight": torch.ones(15, 4), "out.bias": torch.full((15,), 2.0), "body.w": torch.full((3,), 4.0)}
    soup = widened_soup(base, tuned, 0.25)
    assert soup["out.weight"].shape == (15, 4)
    assert torch.allclose(soup["out.weight"][:9], torch.full((9, 4), 0.25))
    assert torch.allclose(soup["out.weight"][9:], torch.ones(6, 4))  # the vertebral channels: the tune's
    assert torch.allclose(soup["out.bias"][:9], torch.full((9,), 0.5)) and torch.allclose(soup["body.w"], torch.ones(3))


def _table(scores: dict[str, tuple[float, float]]) -> pd.DataFrame:
    rows = []
    for model, (target, keep) in scores.items():
        rows += [
            {"model": model, "group": "target", "kind": "muscle", "dice": target},
            {"model": model, "group": "keep", "kind": "muscle", "dice": keep},
            {"model": model, "group": "target", "kind": "vertebra", "dice": 0.5},
        ]
    return pd.DataFrame(rows)


def test_choice_takes_the_best_target_among_those_that_keep_the_default_anatomy():
    table = _table({SHIPPED: (0.90, 0.952), "0.25": (0.91, 0.950), "0.5": (0.93, 0.948), "1": (0.95, 0.930)})
    choice = choose_weight(table, keep_margin=0.005)
    assert choice["chosen"] == "0.5" and choice["keep_floor"] == pytest.approx(0.947)
    assert choice["scores"]["1"] == {"target": 0.95, "keep": 0.93}
    assert choose_weight(table, keep_margin=0.0)["chosen"] is None
    with pytest.raises(ValueError, match="shipped"):
        choose_weight(table[table.model != SHIPPED])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny anatomy-complete phantoms (one validation), shared by the end-to-end runs."""
    folder = tmp_path_factory.mktemp("vertebral_candidate") / "complete"
    generate_cohort(
        folder, n=3, seed=7, geometry="tiny", variety=False, n_validation=1, anatomy="complete", progress=False
    )
    return folder


def _tiny_run(out: Path, **extra) -> dict:
    """``run``'s options for one tiny epoch, one weight (0.5), tiny grids."""
    return dict(
        out_dir=str(out),
        epochs=1,
        val_interval=1,
        weights="0.5",
        train_overrides=TINY_TRAIN,
        infer_overrides=TINY_INFER,
        **extra,
    )


def test_tiny_run_end_to_end_and_resume(tmp_path: Path, cohort: Path):
    out = tmp_path / "candidate"
    kwargs = _tiny_run(out)
    choice = run(str(cohort), str(cohort), str(cohort), **kwargs)
    assert set(choice["scores"]) == {"0.5"} and "vertebra_dice_target" in choice
    table = pd.read_csv(out / "validation.csv")
    assert set(table.model.astype(str)) == {SHIPPED, "0.5"} and set(table.group) == {"target", "keep"}
    # only a 15-output model can be scored on the vertebrae (after one tiny epoch it may draw none)
    assert set(table[table.kind == "vertebra"].model.astype(str)) <= {"0.5"}
    assert (table[table.kind == "muscle"].groupby("model").size() == 8).all()  # 4 muscles x 2 groups
    state = torch.load(out / "soup_0.5" / "model.pt", weights_only=True)
    base = torch.load(BUNDLE_ROOT / "models" / "model.pt", weights_only=True)
    widened = [k for k in state if state[k].shape != base[k].shape]
    assert widened and all(15 in state[k].shape and 9 in base[k].shape for k in widened)
    assert json.loads((out / "chosen.json").read_text())["keep_floor"] == pytest.approx(choice["keep_floor"])
    soup = out / "soup_0.5" / "model.pt"
    stamp = soup.stat().st_mtime_ns
    run(str(cohort), str(cohort), str(cohort), **kwargs)
    assert soup.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        run(str(cohort), str(cohort), str(cohort), **{**kwargs, "weights": "0"})
    # one weight given on the command line (``--weights 1``) reaches run() as a number
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        run(str(cohort), str(cohort), str(cohort), **{**kwargs, "weights": 0})


def test_muscle_only_tune_keeps_nine_outputs(tmp_path: Path, cohort: Path):
    out = tmp_path / "candidate9"
    base = torch.load(BUNDLE_ROOT / "models" / "model.pt", weights_only=True)
    # a second phase: the tune starts from other weights (one tensor moved far), the soup still mixes in the base
    moved = next(k for k, v in base.items() if v.is_floating_point() and v.ndim == 5)
    start = {k: (v + 0.5 if k == moved else v) for k, v in base.items()}
    torch.save(start, tmp_path / "start.pt")
    # validate_at_start off: after one tiny epoch the starting weights may validate better and be kept as the tune
    kwargs = {**_tiny_run(out, vertebral_context=False), "train_overrides": {**TINY_TRAIN, "validate_at_start": False}}
    choice = run(str(cohort), str(cohort), str(cohort), start_ckpt=str(tmp_path / "start.pt"), **kwargs)
    assert set(choice["scores"]) == {"0.5"}
    report = (out / "report.md").read_text()
    assert "9-output candidate" in report and "spine network" in report
    table = pd.read_csv(out / "validation.csv")
    assert set(table.model.astype(str)) == {SHIPPED, "0.5"}
    assert (table[table.kind == "muscle"].groupby("model").size() == 8).all()  # 4 muscles x 2 groups
    tuned = torch.load(out / "train" / "models" / "model.pt", weights_only=True)
    soup = torch.load(out / "soup_0.5" / "model.pt", weights_only=True)
    assert {k: v.shape for k, v in soup.items()} == {k: v.shape for k, v in base.items()}
    assert (tuned[moved] - start[moved]).abs().mean() < 0.1 < (tuned[moved] - base[moved]).abs().mean()
    with pytest.raises(FileNotFoundError, match="--start_ckpt"):
        run(str(cohort), str(cohort), str(cohort), start_ckpt=str(tmp_path / "missing.pt"), **kwargs)
    key = next(k for k, v in base.items() if v.is_floating_point() and not torch.equal(v, tuned[k]))
    assert torch.allclose(soup[key], 0.5 * base[key] + 0.5 * tuned[key], atol=1e-6)
