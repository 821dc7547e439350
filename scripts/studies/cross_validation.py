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
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.evaluation.segmentation_metrics import compute_label_metrics
from scripts.io.atomic import atomic_write, atomic_write_text
from scripts.io.dixon_inputs import compute_ff, load_dixon
from scripts.quantification.fat_fraction import check_same_grid
from scripts.quantification.statistics import quantify_muscles
from scripts.studies.multi_atlas import Atlas, MultiAtlasParams, segment

__all__ = [
    "METHODS",
    "bundle_border_trim_ff",
    "inference_overrides",
    "draw_splits",
    "load_or_draw_splits",
    "run_step",
    "run_split",
    "evaluate_split",
    "pretrained_record",
    "run",
]

logger = logging.getLogger(__name__)

BUNDLE_ROOT = Path(__file__).resolve().parents[2]
#: method names of the study: the U-Net, multi-atlas with locally weighted voting and with majority voting
METHODS: dict[str, str] = {"unet": "U-Net", "multi_atlas": "multi-atlas (LWV)", "multi_atlas_mv": "multi-atlas (MV)"}
DONE = ".done.json"
#: part of the evaluation step's inputs: change it when evaluate_split's columns change, so that resuming a finished
#: study with a newer bundle redoes the (cheap) evaluation and the report, not the training
EVALUATION_FORMAT = "2"
PATH_KEYS = ("image", "label", "water", "fat", "inphase", "opposed", "ff", "ff_true")


# ---------------------------------------------------------------------------------------------------------------------
# splits
# ---------------------------------------------------------------------------------------------------------------------


def _read_entries(dataset_dir: Path, key: str) -> list[dict[str, Any]]:
    path = dataset_dir / "datalist.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: datalist not found (the study needs DIR/datalist.json)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data.get(key), list) or not data[key]:
        raise ValueError(f"{path}: no non-empty list {key!r} (keys: {sorted(data)})")
    entries, seen = [], set()
    for i, item in enumerate(data[key]):
        if not isinstance(item, dict) or not item.get("label") or not (item.get("image") or item.get("inphase")):
            raise ValueError(f"{path}: entry {i} of {key!r} needs 'image' (or 'inphase') and 'label'")
        # only file roles become absolute paths; other fields (e.g. demographics) pass through unchanged
        e = {
            k: (str((dataset_dir / v).resolve()) if k in PATH_KEYS and isinstance(v, str) else v)
            for k, v in item.items()
        }
        e.setdefault("image", e.get("inphase"))
        e["subject"] = str(item.get("subject") or Path(e["image"]).name.split(".")[0])
        if e["subject"] in seen:
            raise ValueError(f"{path}: subject {e['subject']!r} appears twice in {key!r}")
        seen.add(e["subject"])
        for role in ("image", "label"):
            if not Path(e[role]).is_file():
                raise FileNotFoundError(f"{path}: {role} of {e['subject']} not found: {e[role]}")
        entries.append(e)
    return entries


def draw_splits(subjects: Sequence[str], k: int, n_test: int, seed: int) -> list[dict[str, Any]]:
    """Draw ``k`` Monte-Carlo splits: each a random ``n_test`` test subjects, the rest training.

    Args:
        subjects: subject identifiers (order matters for reproducibility: the datalist order).
        k: number of splits.
        n_test: test subjects per split (at least 1, leaving at least 2 for training).
        seed: seed of ``numpy.random.default_rng``; split ``i`` gets training seed ``seed * 1000 + i``.

    Returns:
        ``[{"split": i, "seed": ..., "test": [...], "train": [...]}, ...]`` with sorted subject lists.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not 1 <= n_test <= len(subjects) - 2:
        raise ValueError(f"n_test must lie in [1, {len(subjects) - 2}] for {len(subjects)} subjects, got {n_test}")
    rng = np.random.default_rng(seed)
    splits = []
    for i in range(k):
        order = rng.permutation(len(subjects))
        test = sorted(subjects[j] for j in order[:n_test])
        splits.append(
            {"split": i, "seed": seed * 1000 + i, "test": test, "train": sorted(s for s in subjects if s not in test)}
        )
    return splits


def load_or_draw_splits(out_dir: Path, subjects: Sequence[str], k: int, n_test: int, seed: int) -> dict[str, Any]:
    """Read ``out_dir/splits.json`` when it exists (same settings required), else draw the splits and write it."""
    path = out_dir / "splits.json"
    settings = {"k": k, "n_test": n_test, "seed": seed, "subjects": sorted(subjects)}
    if path.is_file():
        stored = json.loads(path.read_text())
        diff = [name for name in settings if stored.get(name) != settings[name]]
        if diff:
            raise ValueError(
                f"{path} was written with other settings ({', '.join(diff)} differ): resume with the "
                "same --k/--n_test/--seed and dataset, or choose another --out_dir"
            )
        return stored
    doc = {**settings, "splits": draw_splits(list(subjects), k, n_test, seed)}
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return doc


# ---------------------------------------------------------------------------------------------------------------------
# resumable steps
# ---------------------------------------------------------------------------------------------------------------------


def _move_aside(folder: Path, why: str) -> None:
    n = 1
    while folder.with_name(f"{folder.name}.{why}-{n}").exists():
        n += 1
    aside = folder.with_name(f"{folder.name}.{why}-{n}")
    logger.warning("%s is %s: moved to %s, redoing the step", folder, why, aside.name)
    folder.rename(aside)


def _marker_digest(*folders: Path) -> str:
    """A digest of the markers of the steps a step depends on (it changes when one of them is redone)."""
    text = "".join((f / DONE).read_text() if (f / DONE).is_file() else "" for f in folders)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_step(
    folder: Path,
    work: Callable[[Path], dict[str, Any]],
    depends: str = "",
    can_resume: Callable[[Path], bool] | None = None,
) -> dict[str, Any]:
    """Run ``work(folder)`` unless ``folder/.done.json`` exists; the marker (its return value) is written last.

    A folder without the marker is what a crash leaves: it is moved aside to ``<folder>.incomplete-<n>`` (kept for
    inspection, never deleted) and the step starts again in a fresh, empty folder. A finished step whose inputs
    were redone since (``depends``, a digest of the upstream markers, differs) is moved to ``<folder>.stale-<n>``
    and redone. A step that can continue its own interrupted work (``can_resume(folder)`` true: a training with a
    saved state) is run again in its folder instead, and its record says ``"resumed": true``.

    Args:
        folder: the step's own folder.
        work: does the step in the given folder (empty, or as an interrupted run left it when ``can_resume``) and
            returns a JSON-able record.
        depends: digest of the upstream steps' markers.
        can_resume: whether a folder without marker holds work that ``work`` continues rather than redoes.

    Returns:
        the marker's content (a finished step's record, e.g. its timing).
    """
    marker = folder / DONE
    if marker.is_file():
        record = json.loads(marker.read_text())
        if record.get("depends", "") == depends:
            return record
        _move_aside(folder, "stale")
    resumed = False
    if folder.exists() and not marker.is_file():
        if can_resume is not None and can_resume(folder):
            logger.warning("%s was interrupted: continuing it from its saved state", folder)
            resumed = True
        else:
            _move_aside(folder, "incomplete")
    folder.mkdir(parents=True, exist_ok=resumed)
    start = time.perf_counter()
    record = dict(work(folder))
    if resumed:
        record["resumed"] = True
    record.setdefault("seconds", round(time.perf_counter() - start, 2))
    record["depends"] = depends
    atomic_write_text(marker, json.dumps(record, indent=2) + "\n")
    return record


def _bundle_run(args: Sequence[str], log: Path) -> None:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--bundle_root", str(BUNDLE_ROOT), *args]
    with open(log, "a") as fh:  # a resumed step keeps the log of its interrupted run above
        fh.write(" ".join(cmd) + "\n")
        fh.flush()
        res = subprocess.run(cmd, cwd=BUNDLE_ROOT, stdout=fh, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-25:])
        raise RuntimeError(f"bundle run failed (exit {res.returncode}); log {log}:\n{tail}")


def exit_on_sigterm() -> None:
    """Turn SIGTERM (``kill``, job schedulers) into ``SystemExit``, so that a running step's child process is killed
    too (``subprocess.run`` kills its child on any exception) instead of training on as an orphan."""
    import signal

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _overrides(values: Mapping[str, Any] | None) -> list[str]:
    out: list[str] = []
    for name, value in (values or {}).items():
        out += [f"--{name}", json.dumps(value) if not isinstance(value, str) else value]
    return out


def training_can_resume(folder: Path) -> bool:
    """Whether an interrupted ``unet_train`` step left a training state that train.json resumes from."""
    return any((folder / "models" / "train_state").glob("checkpoint_epoch=*.pt"))


def _train_unet(
    dataset_dir: Path, datalist: Path, epochs: int, val_interval: int, seed: int, overrides: Mapping[str, Any] | None
) -> Callable[[Path], dict[str, Any]]:
    def work(folder: Path) -> dict[str, Any]:
        start = time.perf_counter()
        _bundle_run(
            [
                "--config_file",
                str(BUNDLE_ROOT / "configs" / "train.json"),
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


def _predict_unet(
    dataset_dir: Path, datalist: Path, model: Path, n_test: int, overrides: Mapping[str, Any] | None
) -> Callable[[Path], dict[str, Any]]:
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


def _multi_atlas(
    test: Sequence[Mapping[str, Any]], atlases: Sequence[Mapping[str, Any]], atlas_k: int, params: MultiAtlasParams
) -> Callable[[Path], dict[str, Any]]:
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


# ---------------------------------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------------------------------


def _ff_means(
    label: np.ndarray, affine: np.ndarray, ff: Any, subject: str, border_trim_ff: float | None = None
) -> pd.DataFrame:
    res = quantify_muscles(
        label, affine, ff.ff, ff.affine, ff.provenance, subject=subject, border_trim_ff=border_trim_ff
    )
    return res.table[["muscle", "side", "ff_mean_pct"]]


def bundle_border_trim_ff(infer_overrides: Mapping[str, Any] | None = None) -> float | None:
    """The fat-border rule of the bundle's inference (``border_trim_ff`` of inference.json, or its override)."""
    if infer_overrides and "border_trim_ff" in infer_overrides:
        return infer_overrides["border_trim_ff"]
    return json.loads((BUNDLE_ROOT / "configs" / "inference.json").read_text())["border_trim_ff"]


def evaluate_split(
    test: Sequence[Mapping[str, Any]],
    predictions: Mapping[str, Path],
    seconds: Mapping[str, Mapping[str, float]],
    truth: pd.DataFrame | None,
    border_trim_ff: float | None = None,
) -> pd.DataFrame:
    """Metrics of every method's label maps against the reference labels of the test subjects.

    Args:
        test: datalist entries (absolute paths) of the split's test subjects.
        predictions: method -> folder holding ``<subject>/<subject>_seg.nii.gz`` per subject.
        seconds: method -> subject -> segmentation time in s.
        truth: the dataset's ``ground_truth.csv`` (phantoms), whose ``ff_true_pct`` is added when given.
        border_trim_ff: the bundle's fat-border rule (:func:`bundle_border_trim_ff`) for the ``*_trim_*`` columns;
            ``None`` leaves them out.

    Returns:
        long table: subject, method, label, muscle, side, the metric columns of
        :func:`scripts.evaluation.segmentation_metrics.compute_label_metrics`, ``ff_method_pct`` (FF under the method's
        label,
        plain mean: the paper's rule), ``ff_ref_pct`` (under the reference label, same FF map, plain mean),
        ``ff_error_pp`` (their difference), ``ff_method_trim_pct`` and ``ff_error_trim_pp`` (FF under the method's
        label by the bundle's rule, which leaves out mostly-fat border voxels, against the same plain reference),
        ``ff_true_pct`` (phantom truth, if any), ``seconds``.
    """
    rows = []
    for e in test:
        sid = e["subject"]
        ref_img = nib.load(e["label"])
        ref = np.asarray(ref_img.dataobj).astype(np.uint8)
        spacing = tuple(float(z) for z in ref_img.header.get_zooms()[:3])
        scan = load_dixon({k: v for k, v in e.items() if k in ("subject", "water", "fat", "inphase", "opposed", "ff")})
        ff = compute_ff(scan)
        ff_ref = _ff_means(ref, ref_img.affine, ff, sid).rename(columns={"ff_mean_pct": "ff_ref_pct"})
        for method, folder in predictions.items():
            path = folder / sid / f"{sid}_seg.nii.gz"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: the {method} label map of {sid} is missing")
            pred_img = nib.load(path)
            check_same_grid(
                pred_img.shape[:3],
                pred_img.affine,
                ref_img.shape[:3],
                ref_img.affine,
                name_a=str(path),
                name_b=e["label"],
            )
            pred = np.asarray(pred_img.dataobj).reshape(ref.shape).astype(np.uint8)
            m = compute_label_metrics(pred, ref, spacing)
            m = m.merge(
                _ff_means(pred, pred_img.affine, ff, sid).rename(columns={"ff_mean_pct": "ff_method_pct"}),
                on=["muscle", "side"],
                how="left",
            ).merge(ff_ref, on=["muscle", "side"], how="left")
            m["ff_error_pp"] = m.ff_method_pct - m.ff_ref_pct
            if border_trim_ff is not None:
                trim = _ff_means(pred, pred_img.affine, ff, sid, border_trim_ff)
                m = m.merge(
                    trim.rename(columns={"ff_mean_pct": "ff_method_trim_pct"}), on=["muscle", "side"], how="left"
                )
                m["ff_error_trim_pp"] = m.ff_method_trim_pct - m.ff_ref_pct
            if truth is not None:
                t = truth[truth.subject == sid][["muscle", "side", "ff_true_pct"]]
                if not (t.side == "mean").any():
                    t = pd.concat([t, t.groupby("muscle", as_index=False).ff_true_pct.mean().assign(side="mean")])
                m = m.merge(t, on=["muscle", "side"], how="left")
            m.insert(0, "method", method)
            m.insert(0, "subject", sid)
            m["seconds"] = seconds[method][sid]
            rows.append(m)
    return pd.concat(rows, ignore_index=True)


# ---------------------------------------------------------------------------------------------------------------------
# the study
# ---------------------------------------------------------------------------------------------------------------------


def _split_datalist(entries: Mapping[str, Mapping[str, Any]], split: Mapping[str, Any], n_val: int) -> dict:
    train = [dict(entries[s]) for s in split["train"]]
    rng = np.random.default_rng(split["seed"])
    val = [train[j] for j in sorted(rng.choice(len(train), size=min(n_val, len(train)), replace=False))]
    return {
        "description": f"Monte-Carlo CV split {split['split']} (validation scans are training scans, used only "
        "to choose the checkpoint)",
        "training": train,
        "validation": val,
        "testing": [dict(entries[s]) for s in split["test"]],
    }


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
    atomic_write_text(datalist, json.dumps(_split_datalist(entries, split, n_val), indent=2) + "\n")
    test = [entries[s] for s in split["test"]]
    predictions: dict[str, Path] = {}
    seconds: dict[str, dict[str, float]] = {}
    if "unet" in methods:
        trained = run_step(
            sdir / "unet_train",
            _train_unet(dataset_dir, datalist, epochs, val_interval, split["seed"], train_overrides),
            can_resume=training_can_resume,
        )
        logger.info("split %d: U-Net trained in %.0f s", split["split"], trained["seconds"])
        pred = run_step(
            sdir / "unet",
            _predict_unet(
                dataset_dir, datalist, sdir / "unet_train" / "models" / "model.pt", len(test), infer_overrides
            ),
            _marker_digest(sdir / "unet_train"),
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
        EVALUATION_FORMAT + ":" + _marker_digest(*[sdir / m for m in ("unet", "multi_atlas") if m in methods]),
    )
    return pd.read_csv(sdir / "evaluate" / "metrics.csv", dtype={"subject": str})


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
        atlas_params: fields of :class:`scripts.studies.multi_atlas.MultiAtlasParams` to change.
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
    entries_list = _read_entries(root, datalist_key)
    entries = {e["subject"]: e for e in entries_list}
    out.mkdir(parents=True, exist_ok=True)
    doc = load_or_draw_splits(out, [e["subject"] for e in entries_list], k, n_test, seed)
    truth_path = root / "ground_truth.csv"
    truth = pd.read_csv(truth_path, dtype={"subject": str}) if truth_path.is_file() else None
    settings = {
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
    if pretrained_ckpt:
        # only when given, so that the settings.json of a study from scratch stays as it was and still resumes
        settings["pretrained_ckpt"] = pretrained_record(pretrained_ckpt)
    settings = json.loads(json.dumps(settings))  # tuples as lists, as the file holds them
    settings_path = out / "settings.json"
    if settings_path.is_file() and json.loads(settings_path.read_text()) != settings:
        raise ValueError(
            f"{settings_path} holds other settings than this run: finished steps would mix them; "
            "resume with the same arguments or choose another --out_dir"
        )
    atomic_write_text(settings_path, json.dumps(settings, indent=2) + "\n")
    train_settings = dict(settings["train_overrides"])
    if "pretrained_ckpt" in settings:
        train_settings["pretrained_ckpt"] = settings["pretrained_ckpt"]["path"]
    tables = []
    for split in doc["splits"]:
        logger.info("split %d of %d: test %s", split["split"] + 1, k, ", ".join(split["test"]))
        tables.append(
            run_split(
                split,
                entries,
                root,
                out,
                method_list,
                epochs,
                interval,
                n_val,
                atlas_k,
                params,
                train_settings,
                settings["infer_overrides"],
                truth,
            )
        )
    metrics = pd.concat(tables, ignore_index=True)
    atomic_write_text(out / "metrics_all.csv", metrics.to_csv(index=False), overwrite=True)
    if not report:
        return str(out / "metrics_all.csv")
    from scripts.studies.cv_report import write_report

    return str(write_report(out, metrics, settings))


if __name__ == "__main__":
    import fire

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from scripts.studies.cv_report import compare_studies

    exit_on_sigterm()
    from scripts.configuration.settings import typed_cli

    fire.Fire({"run": typed_cli(run), "compare": typed_cli(compare_studies)})
