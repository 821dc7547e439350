"""The spine network study (issues #21, #26): train it on anatomy-complete phantoms, then score what the pipeline
gives with it on held-out ones (vertebral bodies, names, levels).

Steps, each resumable (markers as in :mod:`scripts.studies.resumable_steps`)::

    python -m scripts.studies.spine_study run --train_dirs A[,B] --test_dir T --out_dir OUT [--epochs 60]
        [--val_interval 5] [--train_overrides '{...}'] [--infer_overrides '{...}']

1. ``datalist.json``: the ``training`` and ``validation`` lists of every ``--train_dirs`` (absolute paths);
2. ``train/``: ``configs/train.json`` with ``configs/spine_train.json`` over it (the target from the tissue maps;
   resumes its own training state); the validation subjects pick the checkpoint;
3. ``test/``: ``configs/inference.json`` on T's ``testing`` subjects with the shipped muscle model and the trained
   spine network (``--vertebral_outputs true``), as a user runs it;
4. the scores, written once the test run is there (nothing is chosen on the held-out subjects):
   ``vertebrae.csv``, per subject and structure (L1-L5 by their counted names, the sacrum, and every body whatever
   its name): Dice of the run's label map against the phantom's vertebral map (a structure the run left out
   counts 0); ``levels_naming.csv``, ``levels_errors.csv``, ``levels_summary.csv``:
   :mod:`scripts.studies.level_validation` with the run's vertebral maps (bounds against the generator's geometry,
   misnamed levels, FF and CSA per level); ``report.md``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.io.atomic import atomic_write_text
from scripts.labels import VERTEBRAL_LABELS
from scripts.studies.bundle_runs import BUNDLE_ROOT, predict_unet, train_unet, training_can_resume
from scripts.studies.cv_splits import folder_list, write_cohorts_datalist
from scripts.studies.level_validation import evaluate_subject, summarise
from scripts.studies.resumable_steps import marker_digest, run_step, study_cli

__all__ = ["vertebra_scores", "run"]

logger = logging.getLogger(__name__)

#: the structure name of "every body, whatever its name" in vertebrae.csv
ANY_BODY = "any_body"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return float("nan") if total == 0 else 2.0 * int((a & b).sum()) / total


def vertebra_scores(pred: np.ndarray, truth: np.ndarray) -> list[dict[str, Any]]:
    """Dice per vertebral structure of one subject.

    Args:
        pred: the run's label map (muscles 1-8, vertebral bodies 9-13, sacrum 14).
        truth: the phantom's vertebral map on the same grid (9-13, 14).

    Returns:
        One row per structure present in ``truth`` (``structure``, ``value``, ``dice``, ``truth_voxels``,
        ``pred_voxels``): L1-L5 and the sacrum by value (a name the run gave to another body scores its overlap
        only), and ``any_body`` (every body against every body: the segmentation without the names).
    """
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} are not on one grid")
    rows = []
    for value, name in sorted(VERTEBRAL_LABELS.items()):
        t = truth == value
        if not t.any():
            continue
        p = pred == value
        rows.append(
            {
                "structure": name,
                "value": value,
                "dice": _dice(p, t),
                "truth_voxels": int(t.sum()),
                "pred_voxels": int(p.sum()),
            }
        )
    t_any, p_any = (truth >= 9) & (truth <= 13), (pred >= 9) & (pred <= 13)
    if t_any.any():
        rows.append(
            {
                "structure": ANY_BODY,
                "value": 0,
                "dice": _dice(p_any, t_any),
                "truth_voxels": int(t_any.sum()),
                "pred_voxels": int(p_any.sum()),
            }
        )
    return rows


def _score(test_dir: Path, run_dir: Path, out: Path) -> dict[str, Any]:
    """Step 4: vertebrae.csv and the level validation of the run's maps."""
    entries = json.loads((test_dir / "datalist.json").read_text())["testing"]
    rows = []
    for e in entries:
        sid = e["subject"]
        seg = run_dir / sid / f"{sid}_seg.nii.gz"
        if not seg.is_file():
            raise FileNotFoundError(f"{seg}: the test run has no label map of {sid}")
        pred = np.asarray(nib.load(str(seg)).dataobj)
        truth = np.asarray(nib.load(str(test_dir / e["vertebrae"])).dataobj)
        rows += [{"subject": sid, **r} for r in vertebra_scores(pred, truth)]
    table = pd.DataFrame(rows)
    table.to_csv(out / "vertebrae.csv", index=False)
    participants = pd.read_csv(test_dir / "participants.tsv", sep="\t")
    tested = {e["subject"] for e in entries}
    names, errors = [], []
    for _, row in participants[participants.participant_id.astype(str).isin(tested)].iterrows():
        n, e = evaluate_subject(test_dir, row, pred_dir=run_dir)
        names += n
        errors += e
    names_df, errors_df = pd.DataFrame(names), pd.DataFrame(errors)
    names_df.to_csv(out / "levels_naming.csv", index=False)
    errors_df.to_csv(out / "levels_errors.csv", index=False)
    summary = summarise(names_df, errors_df) if len(names_df) else pd.DataFrame()
    summary.to_csv(out / "levels_summary.csv", index=False)
    return {"subjects": len(entries), "vertebrae": table, "levels": summary}


def _report(scores: Mapping[str, Any], train_marker: Mapping[str, Any]) -> str:
    table: pd.DataFrame = scores["vertebrae"]
    lines = [
        "# Spine network: vertebral bodies and levels on held-out phantoms",
        "",
        f"Training: {train_marker.get('epochs')} epochs, {train_marker.get('seconds')} s; "
        f"{scores['subjects']} held-out subjects.",
        "",
        "| structure | subjects | Dice mean | Dice median | Dice min | share >= 0.90 |",
        "|---|---|---|---|---|---|",
    ]
    for name, g in table.groupby("structure", sort=False):
        d = g.dice.fillna(0.0)
        share = 100 * (d >= 0.9).mean()
        lines.append(f"| {name} | {len(g)} | {d.mean():.3f} | {d.median():.3f} | {d.min():.3f} | {share:.0f} % |")
    levels: pd.DataFrame = scores["levels"]
    if len(levels):
        lines += ["", "Levels (scripts.studies.level_validation on the run's vertebral maps):", ""]
        cols = [c for c in levels.columns if c != "scenario"]
        lines += ["| scenario | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for _, r in levels.iterrows():
            cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in r[cols]]
            lines.append(f"| {r['scenario']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(
    train_dirs: Sequence[str] | str,
    test_dir: str,
    out_dir: str = "eval/spine_study",
    epochs: int = 60,
    val_interval: int = 5,
    seed: int = 0,
    train_overrides: Mapping[str, Any] | None = None,
    infer_overrides: Mapping[str, Any] | None = None,
) -> str:
    """Steps 1-4 of the module docstring; returns the path of ``report.md``.

    Args:
        train_dirs: anatomy-complete phantom cohorts (their ``training`` and ``validation`` lists, tissue maps).
        test_dir: an anatomy-complete cohort whose ``testing`` subjects are scored (vertebral maps, participants.tsv).
        out_dir: output folder (resumes what is there).
        epochs, val_interval, seed: the training schedule.
        train_overrides: more train.json settings over spine_train.json's.
        infer_overrides: more inference.json settings for the test run.
    """
    out = Path(out_dir)
    dirs = folder_list(train_dirs)
    test = Path(test_dir)
    entries = json.loads((test / "datalist.json").read_text()).get("testing") or []
    if not entries or "vertebrae" not in entries[0]:
        raise ValueError(
            f"{test}: the test cohort needs 'testing' subjects with vertebral maps (python -m scripts.phantom cohort "
            "... --n_testing N --anatomy complete)"
        )
    datalist = write_cohorts_datalist(dirs, out)
    trained = run_step(
        out / "train",
        train_unet(dirs[0], datalist, epochs, val_interval, seed, train_overrides, overlays=("spine_train.json",)),
        can_resume=training_can_resume,
    )
    spine = out / "train" / "models" / "model.pt"
    overrides = {**dict(infer_overrides or {}), "spine_ckpt_path": str(spine), "vertebral_outputs": True}
    shipped = BUNDLE_ROOT / "models" / "model.pt"
    run_step(
        out / "test",
        predict_unet(test, test / "datalist.json", shipped, len(entries), overrides),
        depends=marker_digest(out / "train"),
    )
    scores = _score(test, out / "test" / "out", out)
    report = out / "report.md"
    atomic_write_text(report, _report(scores, trained) + "\n", overwrite=True)
    logger.info("spine study report: %s", report)
    return str(report)


def main() -> None:
    """``python -m scripts.studies.spine_study run ...``."""
    study_cli({"run": run})


if __name__ == "__main__":
    main()
