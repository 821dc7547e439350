"""Simulated MONAI Label annotation loop: does the ``uncertainty`` next-sample strategy teach the model faster than
``random``?

A pool of scans the shipped model handles poorly (anatomy-complete phantoms) stands for the unlabelled studies and
the phantom generator's labels for the annotator. Per (strategy, seed) chain, each round picks scans until the next
budget of annotated scans is reached (``uncertainty``: the highest doubt of the current weights,
:mod:`scripts.integrations.image_doubt`, recomputed after every round as the server's cache refresh does;
``uncertainty_typical``: the highest doubt x density, the density of a scan being its typicality among the pool's
scans, :mod:`scripts.integrations.scan_typicality`, as the server's strategy of that name ranks; ``random``: a seeded
draw), fine-tunes the current weights on all annotated scans with ``configs/train.json`` (the server's
round) and keeps the new weights only if their validation mean Dice beats the current weights' (the server's
keep-if-better rule, measured on the pool's ``validation`` entries), then scores the held-out set (Dice per muscle,
FF median |error|). Every round's record is written as it finishes (``<out>/<strategy>/seed<k>/round<r>/``); a
rerun skips finished rounds. The table and the curve: :mod:`scripts.studies.annotation_loop_report`.

Usage::

    python -m scripts.studies.annotation_loop --pool_dir P --heldout_dir H --out_dir O \\
        --strategies uncertainty,random --seeds 0,1,2 --budgets 1,2,4 --epochs 8
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
from scripts.integrations.scan_typicality import (
    TYPICALITY_VERSION,
    ScanDescriptor,
    describe_scan,
    pool_density,
    typical_score,
)
from scripts.io.atomic import atomic_write_text
from scripts.studies import annotation_runs as runs
from scripts.studies.annotation_loop_report import write_report
from scripts.studies.resumable_steps import run_step

__all__ = ["STRATEGIES", "pick", "LoopConfig", "run_chain", "run_baseline", "main"]

logger = logging.getLogger(__name__)

STRATEGIES = ("uncertainty", "random", "uncertainty_typical")
#: the strategies that rank by the doubt of the current weights.
_DOUBTING = ("uncertainty", "uncertainty_typical")


def pick(
    strategy: str,
    unlabelled: list[str],
    n: int,
    seed: int,
    round_index: int,
    doubts: dict[str, float] | None = None,
    densities: dict[str, float] | None = None,
    beta: float = 1.0,
) -> list[str]:
    """The ``n`` subjects a round annotates.

    Args:
        strategy: ``uncertainty`` (highest doubt first; equal scores by subject id), ``uncertainty_typical``
            (highest ``doubt * density ** beta`` first, :func:`scripts.integrations.scan_typicality.typical_score`)
            or ``random`` (a draw seeded by ``seed`` and ``round_index``, the same on every machine and run).
        unlabelled: the pool's subjects not annotated yet.
        doubts: subject -> doubt score of the current weights (``uncertainty`` and ``uncertainty_typical``).
        densities: subject -> density among the pool's scans, unlabelled and labelled (``uncertainty_typical``).
        beta: the density's weight (``uncertainty_typical``).
    """
    if n > len(unlabelled):
        raise ValueError(f"round {round_index} needs {n} scans but only {len(unlabelled)} are left in the pool")
    if strategy == "random":
        return random.Random(f"annotation-loop/{seed}/{round_index}").sample(sorted(unlabelled), n)
    if strategy not in _DOUBTING:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    missing = set(unlabelled) - set(doubts or {})
    if missing:
        raise ValueError(f"no doubt score for {sorted(missing)}")
    if strategy == "uncertainty":
        return sorted(unlabelled, key=lambda s: (-doubts[s], s))[:n]
    missing = set(unlabelled) - set(densities or {})
    if missing:
        raise ValueError(f"no density for {sorted(missing)}")
    score = {s: typical_score(doubts[s], densities[s], beta) for s in unlabelled}
    return sorted(unlabelled, key=lambda s: (-score[s], s))[:n]


class LoopConfig:
    """The study's inputs, shared by every chain (picklable for the worker processes).

    Args:
        pool_dir: cohort whose ``training`` entries (the first ``pool_size``) are the pool and whose ``validation``
            entries (the first ``n_validation``) are the server's validation.
        heldout_dir: cohort whose ``testing`` entries (the first ``n_heldout``) are scored.
        out_dir: where everything goes.
        budgets: increasing numbers of annotated scans after each round.
        working_spacing, patch_size: optional overrides of the bundle's grid and patch/ROI (tests use tiny ones).
        beta: the density's weight of ``uncertainty_typical``.
        cpu_precision: the network's precision on a CPU for held-out scoring and doubts (``float32`` keeps a run that
            was started before bfloat16 became the default comparable with itself); None: the bundle's default.
    """

    def __init__(
        self,
        pool_dir: str,
        heldout_dir: str,
        out_dir: str,
        budgets: list[int],
        epochs: int,
        learning_rate: float,
        pool_size: int,
        n_validation: int,
        n_heldout: int,
        weights: str,
        working_spacing: list[float] | None = None,
        patch_size: list[int] | None = None,
        threads: int = 1,
        beta: float = 1.0,
        cpu_precision: str | None = None,
    ) -> None:
        if not budgets or any(b <= a for a, b in zip([0, *budgets], budgets)):
            raise ValueError(f"budgets must be positive and increasing, got {budgets}")
        self.pool_dir, self.heldout_dir, self.out_dir = Path(pool_dir), Path(heldout_dir), Path(out_dir)
        self.budgets, self.epochs, self.learning_rate = budgets, epochs, learning_rate
        self.weights, self.threads = Path(weights).resolve(), threads
        typical_score(0.0, 1.0, beta)  # a negative beta is refused before any work
        self.beta = beta
        pool = json.loads((self.pool_dir / "datalist.json").read_text())
        self.pool = pool["training"][:pool_size]
        self.validation = pool.get("validation", [])[:n_validation]
        self.heldout = json.loads((self.heldout_dir / "datalist.json").read_text())["testing"][:n_heldout]
        if len(self.pool) < budgets[-1] or not self.validation or not self.heldout:
            raise ValueError(
                f"{pool_dir}: {len(self.pool)} pool scans (need >= {budgets[-1]}), {len(self.validation)} "
                f"validation entries (need >= 1); {heldout_dir}: {len(self.heldout)} testing entries (need >= 1)"
            )
        self.train_overrides: dict[str, Any] = {}
        self.infer_overrides: dict[str, Any] = {}
        if working_spacing:
            self.train_overrides["working_spacing"] = self.infer_overrides["working_spacing"] = working_spacing
        if patch_size:
            self.train_overrides["patch_size"] = self.infer_overrides["roi_size"] = patch_size
        if cpu_precision:
            self.infer_overrides["cpu_precision"] = cpu_precision

    def doubt_config(self) -> Path:
        """``configs/inference.json`` with the study's overrides, for the doubt scorer."""
        path = self.out_dir / "doubt_inference.json"
        if not path.is_file():
            config = json.loads((runs.BUNDLE_ROOT / "configs" / "inference.json").read_text())
            config.update(self.infer_overrides)
            atomic_write_text(path, json.dumps(config, indent=1))
        return path


def _doubts(cfg: LoopConfig, weights: Path, subjects: list[str]) -> dict[str, float]:
    """subject -> doubt score of ``weights``, cached per weights file content (``<out>/doubts/<digest>.json``)."""
    cache_file = cfg.out_dir / "doubts" / f"{runs.weights_digest(weights)}.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    todo = [s for s in subjects if s not in cache]
    if todo:
        scorer = runs.WeightsDoubtScorer(weights, cfg.doubt_config())
        by_id = {e["subject"]: e for e in cfg.pool}
        for s in todo:
            cache[s] = scorer(cfg.pool_dir / by_id[s]["image"]).score
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True), overwrite=True)
    return {s: cache[s] for s in subjects}


def _densities(cfg: LoopConfig) -> dict[str, float]:
    """subject -> density among all the pool's scans (unlabelled and labelled: the whole pool in every round), from
    descriptors cached in ``<out>/typicality.json``."""
    cache_file = cfg.out_dir / "typicality.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    if cache.get("version") != TYPICALITY_VERSION:
        cache = {"version": TYPICALITY_VERSION, "descriptors": {}}
    todo = [e for e in cfg.pool if e["subject"] not in cache["descriptors"]]
    for e in todo:
        cache["descriptors"][e["subject"]] = describe_scan(cfg.pool_dir / e["image"]).as_dict()
    if todo:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True), overwrite=True)
    pool = {e["subject"]: ScanDescriptor.from_dict(cache["descriptors"][e["subject"]]) for e in cfg.pool}
    return pool_density(pool)


def run_baseline(cfg: LoopConfig) -> dict[str, Any]:
    """The shipped weights' validation Dice and held-out scores (round 0 of every chain), computed once."""

    def work(folder: Path) -> dict[str, Any]:
        data = runs.make_subset(
            cfg.pool_dir, {"training": cfg.validation, "validation": cfg.validation}, folder / "validation_data"
        )
        heldout = runs.make_subset(cfg.heldout_dir, {"testing": cfg.heldout}, cfg.out_dir / "heldout_data")
        val = runs.validation_dice(data, cfg.weights, folder / "validate", cfg.train_overrides)
        scores = runs.score_heldout(heldout, cfg.weights, folder / "heldout", cfg.infer_overrides)
        return {"round": 0, "n_annotated": 0, "weights": str(cfg.weights), "val_dice": val, **scores}

    return run_step(cfg.out_dir / "baseline", work)


def _round(cfg: LoopConfig, strategy: str, seed: int, index: int, prev: dict[str, Any], folder: Path) -> dict:
    start_wall, start = time.time(), os.times()
    labelled = prev.get("labelled", [])
    unlabelled = [e["subject"] for e in cfg.pool if e["subject"] not in labelled]
    n_new = cfg.budgets[index - 1] - len(labelled)
    weights = Path(prev["weights"])
    doubts = _doubts(cfg, weights, unlabelled) if strategy in _DOUBTING else None
    densities = _densities(cfg) if strategy == "uncertainty_typical" else None
    picked = pick(strategy, unlabelled, n_new, seed, index, doubts, densities, cfg.beta)
    labelled = [*labelled, *picked]
    by_id = {e["subject"]: e for e in cfg.pool}
    data = runs.make_subset(
        cfg.pool_dir, {"training": [by_id[s] for s in labelled], "validation": cfg.validation}, folder / "data"
    )
    model, val = runs.fine_tune(
        data, weights, folder / "train", cfg.epochs, cfg.learning_rate, 1000 + seed, cfg.train_overrides
    )
    replaced = model is not None and val > prev["val_dice"]
    if replaced:
        scores = runs.score_heldout(cfg.out_dir / "heldout_data", model, folder / "heldout", cfg.infer_overrides)
    else:  # the server keeps the previous weights: the held-out scores are those of the previous round
        scores = {k: v for k, v in prev.items() if k.startswith(("dice_", "ff_"))}
    end = os.times()
    cpu = (end.user + end.system + end.children_user + end.children_system) - (
        start.user + start.system + start.children_user + start.children_system
    )
    return {
        "strategy": strategy,
        "seed": seed,
        "round": index,
        "n_annotated": len(labelled),
        "picked": picked,
        "picked_doubt": [doubts[s] for s in picked] if doubts else [],
        "picked_density": [densities[s] for s in picked] if densities else [],
        "pool_doubt_max": max(doubts.values()) if doubts else None,
        "pool_doubt_median": sorted(doubts.values())[len(doubts) // 2] if doubts else None,
        "labelled": labelled,
        "val_dice_before": prev["val_dice"],
        "val_dice_round": val,
        "weights_action": "replaced" if replaced else "kept",
        "val_dice": val if replaced else prev["val_dice"],
        "weights": str(model if replaced else weights),
        **scores,
        "cpu_s": round(cpu, 1),
        "wall_s": round(time.time() - start_wall, 1),
    }


def run_chain(cfg: LoopConfig, strategy: str, seed: int) -> list[dict[str, Any]]:
    """All rounds of one (strategy, seed) chain, skipping finished ones; returns their records."""
    torch.set_num_threads(cfg.threads)
    prev = run_baseline(cfg)
    records = []
    for index in range(1, len(cfg.budgets) + 1):
        folder = cfg.out_dir / strategy / f"seed{seed}" / f"round{index}"
        prev = run_step(folder, lambda f, i=index, p=prev: _round(cfg, strategy, seed, i, p, f))
        logger.info(
            "%s seed %d round %d: %s",
            strategy,
            seed,
            index,
            {k: prev[k] for k in ("picked", "weights_action", "dice_mean", "cpu_s")},
        )
        records.append(prev)
    return records


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring; ``--help`` lists the options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pool_dir", required=True)
    p.add_argument("--heldout_dir", required=True)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--strategies", default="uncertainty,random")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--budgets", default="1,2,4")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--learning_rate", type=float, default=1e-4, help="the MONAI Label app's fine-tuning rate")
    p.add_argument("--pool_size", type=int, default=12)
    p.add_argument("--n_validation", type=int, default=6)
    p.add_argument("--n_heldout", type=int, default=6)
    p.add_argument("--weights", default=str(runs.BUNDLE_ROOT / "models" / "model.pt"))
    p.add_argument("--working_spacing", type=json.loads, default=None, help="e.g. [8.0,8.0,12.0] (tests)")
    p.add_argument("--patch_size", type=json.loads, default=None, help="e.g. [32,32,16] (tests)")
    p.add_argument("--workers", type=int, default=1, help="chains run at once (each one process)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--beta", type=float, default=1.0, help="uncertainty_typical: doubt x density ** beta")
    p.add_argument("--cpu_precision", choices=["auto", "float32", "bfloat16"], default=None)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    strategies = a.strategies.split(",")
    for s in strategies:
        if s not in STRATEGIES:
            p.error(f"unknown strategy {s!r}; expected some of {','.join(STRATEGIES)}")
    cfg = LoopConfig(
        a.pool_dir,
        a.heldout_dir,
        a.out_dir,
        [int(b) for b in a.budgets.split(",")],
        a.epochs,
        a.learning_rate,
        a.pool_size,
        a.n_validation,
        a.n_heldout,
        a.weights,
        a.working_spacing,
        a.patch_size,
        a.threads,
        a.beta,
        a.cpu_precision,
    )
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    run_baseline(cfg)
    chains = [(s, int(seed)) for seed in a.seeds.split(",") for s in strategies]
    if a.workers > 1:
        with ProcessPoolExecutor(a.workers) as pool:
            for f in [pool.submit(run_chain, cfg, s, seed) for s, seed in chains]:
                f.result()
    else:
        for s, seed in chains:
            run_chain(cfg, s, seed)
    print(write_report(cfg.out_dir, cfg.budgets))


if __name__ == "__main__":
    main()
