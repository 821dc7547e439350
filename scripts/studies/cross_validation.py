"""Monte-Carlo cross-validation of the U-Net against the multi-atlas baseline, the paper's validation study.

One command::

    python -m scripts.studies.cross_validation run --dataset_dir DIR [--k 5] [--n_test 5] [--seed 0] [--epochs 40] \\
        [--out_dir eval/cv] [--methods unet,multi_atlas] [--atlas_k 5]

``DIR/datalist.json`` lists the annotated scans (key ``training`` by default; each entry with ``subject``,
``image`` (the network input, in-phase), ``label`` and the Dixon images ``water``/``fat`` or
``inphase``/``opposed``). ``K`` random splits of ``n_test`` test scans and the rest for training are drawn with
``numpy.random.default_rng(seed)`` and written to ``out_dir/splits.json`` before anything else; a later run reuses
that file (and refuses different settings for the same ``out_dir``). Per split, in ``out_dir/split_<i>/``:

- ``datalist.json``: the split's datalist (absolute paths; ``validation`` = ``n_val`` training scans, kept in
  training, used only to pick the checkpoint: the split has no held-out data beyond its test scans);
- ``unet_train/``: ``configs/train.json`` from scratch (``--epochs``, seed ``seed * 1000 + i``);
- ``unet/``: ``configs/inference.json`` with that model on the test scans (label maps on the input grid, FF tables);
- ``multi_atlas/``: :mod:`scripts.studies.multi_atlas` on the test scans, the split's training scans as atlases,
majority
  and locally weighted voting from the same registrations;
- ``evaluate/metrics.csv``: per test subject, method, muscle and side: Dice, RVD, HD, HD95, ASSD (mm, real
  spacing), FF under the method's label and under the reference label (same FF map, same code) and their
  difference, seconds per subject.

Every step ends by writing its marker ``<step>/.done.json`` (last, atomically). A step with its marker is skipped;
a step folder without one (a crash) is moved aside to ``<step>.incomplete-<n>`` and the step is redone from scratch;
the steps that use its output (prediction after training, evaluation after either method) are then redone too
(their old folders moved to ``<step>.stale-<n>``). Nothing is deleted. The one exception is an interrupted
``unet_train`` that saved a training state (train.json does every 2 epochs): it continues from that state in its
folder (its marker then says ``"resumed": true`` and its ``seconds`` count the last run only), so a crash late in a
long training costs minutes, not the split.
At the end :func:`scripts.studies.cv_report.write_report` writes ``out_dir/report/`` (Markdown, tables, figures).

Two studies on the same splits (e.g. the two-channel water + fat input against the one-channel default, run with
``--train_overrides '{"network_channels": "water_fat"}' --infer_overrides '{"network_channels": "water_fat"}'``)
are compared pair by pair with::

    python -m scripts.studies.cross_validation compare --study eval/cv_water_fat --baseline eval/cv --out_dir
    eval/cv_channels
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.io.atomic import atomic_write, atomic_write_text
from scripts.studies.atlas_registration import MultiAtlasParams
from scripts.studies.bundle_runs import (
    bundle_border_trim_ff,
    inference_overrides,
    predict_unet,
    train_unet,
    training_can_resume,
)
from scripts.studies.cv_compare import compare_studies
from scripts.studies.cv_evaluation import EVALUATION_FORMAT, evaluate_split
from scripts.studies.cv_report import write_report
from scripts.studies.cv_splits import load_or_draw_splits, read_entries, split_datalist
from scripts.studies.multi_atlas import Atlas, segment
from scripts.studies.resumable_steps import exit_on_sigterm, marker_digest, run_step

__all__ = ["METHODS", "run_split", "pretrained_record", "run"]

logger = logging.getLogger(__name__)

#: method names of the study: the U-Net, multi-atlas with locally weighted voting and with majority voting
METHODS: dict[str, str] = {"unet": "U-Net", "multi_atlas": "multi-atlas (LWV)", "multi_atlas_mv": "multi-atlas (MV)"}


def _multi_atlas(
    test: Sequence[Mapping[str, Any]], atlases: Sequence[Mapping[str, Any]], atlas_k: int, params: MultiAtlasParams
) -> Callable[[Path], dict[str, Any]]:
    """The multi-atlas step: both fusions of every test scan from one set of registrations, with their timing."""

    def work(folder: Path) -> dict[str, Any]:
        library = [Atlas(a["image"], a["label"], a["subject"]) for a in atlases]
        per_subject = {}
        for e in test:
            res = segment(e["image"], library, k=atlas_k, fusion=["weighted", "majority"], params=params)
            for fusion, method in (("weighted", "multi_atlas"), ("majority", "multi_atlas_mv")):
                img = nib.Nifti1Image(res.labels[fusion], res.affine)
                atomic_write(
                    folder / method / e["subject"] / f"{e['subject']}_seg.nii.gz",
                    lambda tmp, img=img: nib.save(img, tmp),
                    suffix=".nii.gz",
                )
            per_subject[e["subject"]] = {
                "seconds": round(res.seconds, 2),
                "selected": res.selected,
                "stage_seconds": {s: round(v, 2) for s, v in res.stage_seconds.items()},
            }
            logger.info("multi-atlas %s: %.1f s, atlases %s", e["subject"], res.seconds, res.selected)
        return {
            "subjects": per_subject,
            "atlas_k": atlas_k,
            "params": asdict(params),
            "seconds_per_subject": round(float(np.mean([v["seconds"] for v in per_subject.values()])), 2),
        }

    return work


def run_split(
    split: Mapping[str, Any],
    entries: Mapping[str, Mapping[str, Any]],
    dataset_dir: Path,
    out_dir: Path,
    methods: Sequence[str],
    epochs: int,
    val_interval: int,
    n_val: int,
    atlas_k: int,
    params: MultiAtlasParams,
    train_overrides: Mapping[str, Any] | None,
    infer_overrides: Mapping[str, Any] | None,
    truth: pd.DataFrame | None,
) -> pd.DataFrame:
    """Train, predict, segment with atlases and evaluate one split (each step skipped when already done)."""
    sdir = out_dir / f"split_{split['split']}"
    sdir.mkdir(parents=True, exist_ok=True)
    datalist = sdir / "datalist.json"
    atomic_write_text(datalist, json.dumps(split_datalist(entries, split, n_val), indent=2) + "\n")
    test = [entries[s] for s in split["test"]]
    predictions: dict[str, Path] = {}
    seconds: dict[str, dict[str, float]] = {}
    if "unet" in methods:
        trained = run_step(
            sdir / "unet_train",
            train_unet(dataset_dir, datalist, epochs, val_interval, split["seed"], train_overrides),
            can_resume=training_can_resume,
        )
        logger.info("split %d: U-Net trained in %.0f s", split["split"], trained["seconds"])
        pred = run_step(
            sdir / "unet",
            predict_unet(
                dataset_dir, datalist, sdir / "unet_train" / "models" / "model.pt", len(test), infer_overrides
            ),
            marker_digest(sdir / "unet_train"),
        )
        predictions["unet"] = sdir / "unet" / "out"
        seconds["unet"] = {e["subject"]: pred["seconds_per_subject"] for e in test}
    if "multi_atlas" in methods:
        ma = run_step(sdir / "multi_atlas", _multi_atlas(test, [entries[s] for s in split["train"]], atlas_k, params))
        for method in ("multi_atlas", "multi_atlas_mv"):
            predictions[method] = sdir / "multi_atlas" / method
            # both fusions share the registrations, so they share the time (the voting itself is a second or two)
            seconds[method] = {s: v["seconds"] for s, v in ma["subjects"].items()}

    def evaluate(folder: Path) -> dict[str, Any]:
        table = evaluate_split(test, predictions, seconds, truth, bundle_border_trim_ff(infer_overrides))
        table.insert(0, "split", split["split"])
        atomic_write_text(folder / "metrics.csv", table.to_csv(index=False))
        return {"rows": len(table), "methods": sorted(predictions)}

    run_step(
        sdir / "evaluate",
        evaluate,
        EVALUATION_FORMAT + ":" + marker_digest(*[sdir / m for m in ("unet", "multi_atlas") if m in methods]),
    )
    return pd.read_csv(sdir / "evaluate" / "metrics.csv", dtype={"subject": str})


def pretrained_record(path: str | Path) -> dict[str, str]:
    """Path and sha256 of the checkpoint a study fine-tunes from, after checking that it is a bare state_dict.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: ``path`` is not a PyTorch state_dict (a dict of tensors), e.g. a TorchScript ``model.ts``.
    """
    import torch

    ckpt = Path(path).resolve()
    if not ckpt.is_file():
        raise FileNotFoundError(f"pretrained_ckpt {ckpt}: file not found")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a file that is no checkpoint
        raise ValueError(f"pretrained_ckpt {ckpt}: not a PyTorch state_dict ({type(err).__name__}: {err})") from err
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"pretrained_ckpt {ckpt}: not a bare state_dict (a dict of tensors, as models/model.pt)")
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    return {"path": str(ckpt), "sha256": digest}


def _parse_methods(methods: str | Sequence[str]) -> list[str]:
    names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    bad = [m for m in names if m not in ("unet", "multi_atlas")]
    if bad or not names:
        raise ValueError(f"methods must be a comma-separated subset of unet,multi_atlas; got {methods!r}")
    return names


def _as_dict(value: Mapping[str, Any] | str | None, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{name} must be a dict or a JSON object, got {value!r}") from err
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict, got {value!r}")
    return dict(value)


def _study_settings(
    root: Path,
    k: int,
    n_test: int,
    seed: int,
    epochs: int,
    interval: int,
    n_val: int,
    method_list: list[str],
    atlas_k: int,
    params: MultiAtlasParams,
    train_overrides: Mapping[str, Any] | str | None,
    infer_overrides: Mapping[str, Any] | str | None,
) -> dict[str, Any]:
    """The settings of a study as ``settings.json`` records them (before the fine-tuning start is added)."""
    return {
        "dataset_dir": str(root),
        "k": k,
        "n_test": n_test,
        "seed": seed,
        "epochs": epochs,
        "val_interval": interval,
        "n_val": n_val,
        "methods": method_list,
        "atlas_k": atlas_k,
        "atlas_params": asdict(params),
        "train_overrides": _as_dict(train_overrides, "train_overrides"),
        "infer_overrides": inference_overrides(
            _as_dict(train_overrides, "train_overrides"), _as_dict(infer_overrides, "infer_overrides")
        ),
    }


def _record_settings(path: Path, settings: dict[str, Any], pretrained_ckpt: str | None) -> dict[str, Any]:
    """Write the study's ``settings.json`` (the fine-tuning start added when given) and return the settings as
    the file holds them; refuse settings other than those a resumed study was started with."""
    if pretrained_ckpt:
        # only when given, so that the settings.json of a study from scratch stays as it was and still resumes
        settings["pretrained_ckpt"] = pretrained_record(pretrained_ckpt)
    settings = json.loads(json.dumps(settings))  # tuples as lists, as the file holds them
    if path.is_file() and json.loads(path.read_text()) != settings:
        raise ValueError(
            f"{path} holds other settings than this run: finished steps would mix them; "
            "resume with the same arguments or choose another --out_dir"
        )
    atomic_write_text(path, json.dumps(settings, indent=2) + "\n")
    return settings


def run(
    dataset_dir: str,
    k: int = 5,
    n_test: int = 5,
    seed: int = 0,
    epochs: int = 40,
    out_dir: str = "eval/cv",
    methods: str | Sequence[str] = "unet,multi_atlas",
    atlas_k: int = 5,
    val_interval: int | None = None,
    n_val: int = 2,
    datalist_key: str = "training",
    train_overrides: Mapping[str, Any] | str | None = None,
    infer_overrides: Mapping[str, Any] | str | None = None,
    atlas_params: Mapping[str, Any] | str | None = None,
    pretrained_ckpt: str | None = None,
    report: bool = True,
) -> str:
    """Run (or resume) the whole study and write the report; returns the report's path.

    Args:
        dataset_dir: folder with ``datalist.json`` (and ``ground_truth.csv`` for phantoms).
        k: number of Monte-Carlo splits (the paper: 5).
        n_test: test scans per split (the paper: 5 of 26).
        seed: seed of the split draw; split ``i`` trains with seed ``seed * 1000 + i``.
        epochs: U-Net training epochs per split, from scratch (short on a CPU, the full 100+ on a GPU), or of
            fine-tuning when ``pretrained_ckpt`` is given.
        out_dir: study folder (relative paths start at the current folder).
        methods: ``"unet,multi_atlas"`` or one of them.
        atlas_k: atlases kept after NCC ranking.
        val_interval: epochs between validations (default: ``max(1, epochs // 4)``); the best one is the model.
        n_val: training scans also used as validation (checkpoint choice).
        datalist_key: datalist list holding the annotated scans.
        train_overrides: extra ``train.json`` settings, e.g. ``{"patch_size": [64, 64, 32], "num_workers": 0}``.
        infer_overrides: extra ``inference.json`` settings, e.g. ``{"roi_size": [64, 64, 32]}``; the window defaults
            to the training ``patch_size`` when ``train_overrides`` changes it (:func:`inference_overrides`).
        atlas_params: fields of :class:`scripts.studies.atlas_registration.MultiAtlasParams` to change.
        pretrained_ckpt: a bare state_dict (e.g. the bundle's ``models/model.pt``) every split's U-Net starts from
            instead of random weights; its path and sha256 are recorded in ``settings.json``. It must not have been
            trained on any scan of ``dataset_dir`` (nothing here can check that), or the test scans leak.
        report: write ``out_dir/report`` at the end.
    """
    root = Path(dataset_dir).resolve()
    out = Path(out_dir).resolve()
    method_list = _parse_methods(methods)
    interval = val_interval if val_interval is not None else max(1, epochs // 4)
    if "unet" in method_list and not 1 <= interval <= epochs:
        raise ValueError(f"val_interval must lie in [1, epochs={epochs}] so that a model gets saved, got {interval}")
    params = MultiAtlasParams(
        **{n: tuple(v) if isinstance(v, list) else v for n, v in _as_dict(atlas_params, "atlas_params").items()}
    )
    entries_list = read_entries(root, datalist_key)
    entries = {e["subject"]: e for e in entries_list}
    out.mkdir(parents=True, exist_ok=True)
    doc = load_or_draw_splits(out, [e["subject"] for e in entries_list], k, n_test, seed)
    truth_path = root / "ground_truth.csv"
    truth = pd.read_csv(truth_path, dtype={"subject": str}) if truth_path.is_file() else None
    settings = _study_settings(
        root, k, n_test, seed, epochs, interval, n_val, method_list, atlas_k, params, train_overrides, infer_overrides
    )
    settings = _record_settings(out / "settings.json", settings, pretrained_ckpt)
    train_settings = dict(settings["train_overrides"])
    if "pretrained_ckpt" in settings:
        train_settings["pretrained_ckpt"] = settings["pretrained_ckpt"]["path"]
    tables = []
    for split in doc["splits"]:
        logger.info("split %d of %d: test %s", split["split"] + 1, k, ", ".join(split["test"]))
        args = (method_list, epochs, interval, n_val, atlas_k, params, train_settings, settings["infer_overrides"])
        tables.append(run_split(split, entries, root, out, *args, truth))
    metrics = pd.concat(tables, ignore_index=True)
    atomic_write_text(out / "metrics_all.csv", metrics.to_csv(index=False), overwrite=True)
    if not report:
        return str(out / "metrics_all.csv")
    return str(write_report(out, metrics, settings))


if __name__ == "__main__":
    import fire

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    exit_on_sigterm()
    from scripts.configuration.settings import typed_cli

    fire.Fire({"run": typed_cli(run), "compare": typed_cli(compare_studies)})
