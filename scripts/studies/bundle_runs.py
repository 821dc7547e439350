"""U-Net steps of a study run as ``monai.bundle run`` subprocesses of this bundle: training with ``configs/train.json``
(resumable from its saved state), prediction with ``configs/inference.json``, and the inference settings they share."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BUNDLE_ROOT",
    "training_can_resume",
    "train_unet",
    "predict_unet",
    "bundle_border_trim_ff",
    "inference_overrides",
]

BUNDLE_ROOT = Path(__file__).resolve().parents[2]


def _bundle_run(args: Sequence[str], log: Path) -> None:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--bundle_root", str(BUNDLE_ROOT), *args]
    with open(log, "a") as fh:  # a resumed step keeps the log of its interrupted run above
        fh.write(" ".join(cmd) + "\n")
        fh.flush()
        res = subprocess.run(cmd, cwd=BUNDLE_ROOT, stdout=fh, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-25:])
        raise RuntimeError(f"bundle run failed (exit {res.returncode}); log {log}:\n{tail}")


def _overrides(values: Mapping[str, Any] | None) -> list[str]:
    out: list[str] = []
    for name, value in (values or {}).items():
        out += [f"--{name}", json.dumps(value) if not isinstance(value, str) else value]
    return out


def training_can_resume(folder: Path) -> bool:
    """Whether an interrupted ``unet_train`` step left a training state that train.json resumes from."""
    return any((folder / "models" / "train_state").glob("checkpoint_epoch=*.pt"))


def train_unet(
    dataset_dir: Path,
    datalist: Path,
    epochs: int,
    val_interval: int,
    seed: int,
    overrides: Mapping[str, Any] | None,
    overlays: Sequence[str] = (),
) -> Callable[[Path], dict[str, Any]]:
    """The training step (for :func:`scripts.studies.resumable_steps.run_step`): train.json writing ``models/``.

    ``overlays``: config files of ``configs/`` read over train.json (e.g. ``("spine_train.json",)``).
    """
    configs = [str(BUNDLE_ROOT / "configs" / name) for name in ("train.json", *overlays)]

    def work(folder: Path) -> dict[str, Any]:
        start = time.perf_counter()
        _bundle_run(
            [
                "--config_file",
                configs[0] if len(configs) == 1 else json.dumps(configs),
                "--dataset_dir",
                str(dataset_dir),
                "--datalist",
                str(datalist),
                "--epochs",
                str(epochs),
                "--val_interval",
                str(val_interval),
                "--seed",
                str(seed),
                "--ckpt_dir",
                str(folder / "models"),
                "--output_dir",
                str(folder / "train"),
                *_overrides(overrides),
            ],
            folder / "train.log",
        )
        if not (folder / "models" / "model.pt").is_file():
            raise RuntimeError(
                f"training in {folder} wrote no models/model.pt (no validation ran: val_interval "
                f"{val_interval} > epochs {epochs}?)"
            )
        return {
            "seconds": round(time.perf_counter() - start, 2),
            "epochs": epochs,
            "val_interval": val_interval,
            "seed": seed,
            "overrides": dict(overrides or {}),
        }

    return work


def predict_unet(
    dataset_dir: Path, datalist: Path, model: Path, n_test: int, overrides: Mapping[str, Any] | None
) -> Callable[[Path], dict[str, Any]]:
    """The prediction step: inference.json with ``model`` on the datalist's ``testing`` scans, into ``out/``."""

    def work(folder: Path) -> dict[str, Any]:
        start = time.perf_counter()
        _bundle_run(
            [
                "--config_file",
                str(BUNDLE_ROOT / "configs" / "inference.json"),
                "--dataset_dir",
                str(dataset_dir),
                "--datalist",
                str(datalist),
                "--datalist_key",
                "testing",
                "--ckpt_path",
                str(model),
                "--output_dir",
                str(folder / "out"),
                "--write_report",
                "False",
                *_overrides(overrides),
            ],
            folder / "inference.log",
        )
        seconds = time.perf_counter() - start
        # the whole bundle run (start-up, model loading, FF tables included) shared by its subjects
        return {"seconds": round(seconds, 2), "seconds_per_subject": round(seconds / n_test, 2)}

    return work


def bundle_border_trim_ff(infer_overrides: Mapping[str, Any] | None = None) -> float | None:
    """The fat-border rule of the bundle's inference (``border_trim_ff`` of inference.json, or its override)."""
    if infer_overrides and "border_trim_ff" in infer_overrides:
        return infer_overrides["border_trim_ff"]
    return json.loads((BUNDLE_ROOT / "configs" / "inference.json").read_text())["border_trim_ff"]


def inference_overrides(train_overrides: Mapping[str, Any], infer_overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The inference settings of a study: ``infer_overrides``, plus ``roi_size`` = the training ``patch_size`` when
    the training patch was changed and the window was not.

    Why: train.json validates (and so picks its checkpoint) with a sliding window of the training patch size; a
    model trained on small patches and run with inference.json's larger default window (made for the shipped model)
    sees zero padding it never met wherever the scan is shorter than the window. Measured on the 5-split phantom
    study (patch 64x64x32): two scans of truncated coverage, ES+MF Dice 0.876 -> 0.953 and psoas HD95 30 -> 2 mm.
    """
    out = dict(infer_overrides)
    if "patch_size" in train_overrides and "roi_size" not in out:
        out["roi_size"] = list(train_overrides["patch_size"])
    return out
