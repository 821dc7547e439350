"""The scans of a study and its Monte-Carlo splits: the datalist read with absolute paths, the seeded draw of test
and training subjects (``splits.json``, written once and reused on resume) and each split's own datalist."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scripts.io.atomic import atomic_write_text

__all__ = [
    "PATH_KEYS",
    "read_entries",
    "write_study_datalist",
    "folder_list",
    "write_cohorts_datalist",
    "draw_splits",
    "load_or_draw_splits",
    "split_datalist",
]

PATH_KEYS = ("image", "label", "water", "fat", "inphase", "opposed", "ff", "ff_true", "vertebrae", "tissue")


def read_entries(dataset_dir: Path, key: str) -> list[dict[str, Any]]:
    """The entries of ``dataset_dir/datalist.json[key]`` with absolute file paths and a unique ``subject`` each."""
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


def write_study_datalist(out: Path, data: dict[str, Any]) -> Path:
    """Write ``out/datalist.json``; an existing one with other entries is refused (nothing is overwritten).

    A resumed study finds its own datalist again; a different one means another study's folder.

    Returns:
        the datalist's path.
    """
    path = out / "datalist.json"
    if path.is_file() and json.loads(path.read_text()) != data:
        raise ValueError(f"{path} exists with other subjects; use another --out_dir (nothing was overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def folder_list(values: Sequence[str] | str) -> list[Path]:
    """Folders given as a list or as one comma-separated string (a study's command line); at least one."""
    items = values.split(",") if isinstance(values, str) else list(values)
    out = [Path(str(v).strip()) for v in items if str(v).strip()]
    if not out:
        raise ValueError("give at least one folder")
    return out


def write_cohorts_datalist(dirs: Sequence[Path], out: Path) -> Path:
    """``out/datalist.json`` joining the ``training`` and the ``validation`` lists of several cohorts (absolute
    paths, each subject's files from its own cohort); see :func:`write_study_datalist`."""
    data = {
        "training": [e for d in dirs for e in read_entries(d, "training")],
        "validation": [e for d in dirs for e in read_entries(d, "validation")],
    }
    return write_study_datalist(out, data)


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


def split_datalist(entries: Mapping[str, Mapping[str, Any]], split: Mapping[str, Any], n_val: int) -> dict:
    """The datalist of one split: its training scans, ``n_val`` of them also as validation, its test scans."""
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
