"""The bundle runs of the simulated annotation loop (:mod:`scripts.studies.annotation_loop`): subset datasets, the
server's fine-tuning round with its keep-if-better rule, the validation score of given weights, held-out scoring and
the network's doubt about pool images with given weights.

Each run is a ``python -m monai.bundle run`` child process of the bundle's own configs, as the MONAI Label server
runs them, with ``overrides`` (e.g. a coarser working grid) passed on its command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from scripts.evaluation.evaluate_phantom import evaluate_run
from scripts.integrations.image_doubt import DoubtScorer
from scripts.io.atomic import atomic_write_text
from scripts.labels import MUSCLES

__all__ = [
    "BUNDLE_ROOT",
    "make_subset",
    "bundle_run",
    "validation_dice",
    "fine_tune",
    "score_heldout",
    "WeightsDoubtScorer",
    "weights_digest",
]

BUNDLE_ROOT = Path(__file__).resolve().parents[2]


def make_subset(src_dir: Path, entries: dict[str, list[dict[str, Any]]], out_dir: Path) -> Path:
    """A dataset folder holding ``entries`` (datalist key -> entries of ``src_dir``'s datalist) without copying
    images: each subject folder is a symbolic link into ``src_dir`` (datalist paths are relative to the folder).

    Returns:
        ``out_dir``, with ``datalist.json`` and, when ``src_dir`` has one, the matching rows of ``ground_truth.csv``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    subjects = set()
    for rows in entries.values():
        for e in rows:
            folder = Path(e["image"]).parts[0]
            subjects.add(e["subject"])
            if not (out_dir / folder).exists():
                (out_dir / folder).symlink_to((src_dir / folder).resolve(), target_is_directory=True)
    atomic_write_text(out_dir / "datalist.json", json.dumps(entries, indent=1))
    truth = src_dir / "ground_truth.csv"
    if truth.is_file():
        table = pd.read_csv(truth, dtype={"subject": str})
        table[table.subject.isin(subjects)].to_csv(out_dir / "ground_truth.csv", index=False)
    return out_dir


def _cli(overrides: dict[str, Any]) -> list[str]:
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", json.dumps(value).replace(" ", "") if isinstance(value, list) else str(value)]
    return args


def bundle_run(args: list[str], log_file: Path) -> None:
    """Run ``python -m monai.bundle run <args>`` in the bundle root; its output goes to ``log_file``.

    Raises:
        RuntimeError: the run failed (the message names the log and quotes its end).
    """
    with log_file.open("w") as log:
        res = subprocess.run(
            [sys.executable, "-m", "monai.bundle", "run", *args],
            cwd=BUNDLE_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(BUNDLE_ROOT)},
        )
    if res.returncode != 0:
        tail = log_file.read_text()[-2000:]
        raise RuntimeError(f"bundle run failed (exit {res.returncode}), log {log_file}:\n{tail}")


def _train_args(dataset_dir: Path, weights: Path, out: Path, overrides: dict[str, Any]) -> list[str]:
    return [
        "--dataset_dir",
        str(dataset_dir),
        "--pretrained_ckpt",
        str(weights),
        "--ckpt_dir",
        str(out / "models"),
        "--output_dir",
        str(out),
        "--resume_ckpt",
        "",
        *_cli(overrides),
    ]


def _metric_writer(out: Path) -> str:
    # the evaluator's best validation mean Dice, written where the study reads it (the log format is not a contract)
    return f"$open({str(out / 'val_dice.txt')!r}, 'w').write(str(@validate#evaluator.state.best_metric))"


def validation_dice(dataset_dir: Path, weights: Path, out: Path, overrides: dict[str, Any]) -> float:
    """Validation mean Dice of ``weights`` on the ``validation`` entries of ``dataset_dir``, computed by
    ``configs/train.json``'s own validation (the figure its best-model saver ranks weights by)."""
    out.mkdir(parents=True, exist_ok=True)
    run = ["$@settings", "$@validate#dataset.build()", "$@validate#evaluator.run()", _metric_writer(out)]
    extra = out / "validate_only.json"
    atomic_write_text(extra, json.dumps({"run": run}))
    config = json.dumps([str(BUNDLE_ROOT / "configs" / "train.json"), str(extra)]).replace(" ", "")
    bundle_run(["--config_file", config, *_train_args(dataset_dir, weights, out, overrides)], out / "validate.log")
    shutil.rmtree(out / "models", ignore_errors=True)  # the saver's copy of the unchanged weights
    return float((out / "val_dice.txt").read_text())


def fine_tune(
    dataset_dir: Path, weights: Path, out: Path, epochs: int, learning_rate: float, seed: int, overrides: dict[str, Any]
) -> tuple[Path | None, float]:
    """One fine-tuning round of ``configs/train.json`` from ``weights`` on ``dataset_dir`` (one validation, at the
    end).

    Returns:
        (the new ``model.pt`` or None if none was written, its validation mean Dice).
    """
    out.mkdir(parents=True, exist_ok=True)
    run = json.loads((BUNDLE_ROOT / "configs" / "train.json").read_text())["run"]
    extra = out / "train_and_report.json"
    atomic_write_text(extra, json.dumps({"run": [*run, _metric_writer(out)]}))
    config = json.dumps([str(BUNDLE_ROOT / "configs" / "train.json"), str(extra)]).replace(" ", "")
    settings = {"epochs": epochs, "val_interval": epochs, "learning_rate": learning_rate, "seed": seed}
    args = ["--config_file", config, *_train_args(dataset_dir, weights, out, {**settings, **overrides})]
    bundle_run(args, out / "train.log")
    model = out / "models" / "model.pt"
    return (model if model.is_file() else None), float((out / "val_dice.txt").read_text())


def score_heldout(dataset_dir: Path, weights: Path, out: Path, overrides: dict[str, Any]) -> dict[str, float]:
    """Run the inference pipeline with ``weights`` on the ``testing`` entries of ``dataset_dir`` and score it.

    Returns:
        ``dice_<muscle>`` (L/R mean Dice averaged over the subjects), ``dice_mean`` (over the four muscles) and
        ``ff_abs_err_median_pp`` (median over subjects, muscles and sides of |predicted - true mean FF|, percentage
        points).
    """
    pred = out / "pred"
    args = ["--config_file", "configs/inference.json", "--dataset_dir", str(dataset_dir), "--output_dir", str(pred)]
    args += ["--ckpt_path", str(weights), "--write_report", "false", *_cli(overrides)]
    out.mkdir(parents=True, exist_ok=True)
    bundle_run(args, out / "inference.log")
    seg, ff = evaluate_run(str(dataset_dir), str(pred))
    n_expected = len(json.loads((dataset_dir / "datalist.json").read_text())["testing"])
    if seg.subject.nunique() != n_expected:
        raise RuntimeError(f"{pred}: {seg.subject.nunique()} of {n_expected} held-out subjects have a prediction")
    means = seg[seg.side == "mean"]
    scores = {f"dice_{m}": float(means[means.muscle == m].dice.mean()) for m in MUSCLES}
    scores["dice_mean"] = sum(scores.values()) / len(MUSCLES)
    sides = ff[ff.side != "mean"].dropna(subset=["ff_mean_pct_pred", "ff_mean_pct_truth"])
    scores["ff_abs_err_median_pp"] = float((sides.ff_mean_pct_pred - sides.ff_mean_pct_truth).abs().median())
    shutil.rmtree(pred)  # label maps and tables of every round would fill the disk; the scores are kept
    return scores


def weights_digest(weights: Path) -> str:
    """First 16 hex digits of the SHA-256 of a weights file (the key of cached doubts)."""
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:16]


class WeightsDoubtScorer(DoubtScorer):
    """:class:`scripts.integrations.image_doubt.DoubtScorer` with given weights and inference settings.

    Args:
        weights: the weights file to score with.
        config_file: an inference config (absolute path), e.g. ``configs/inference.json`` with study overrides.
    """

    def __init__(self, weights: Path, config_file: Path) -> None:
        self._weights = Path(weights)
        super().__init__(BUNDLE_ROOT, str(config_file))

    @property
    def model_file(self) -> Path:
        """The weights the scorer uses."""
        return self._weights
