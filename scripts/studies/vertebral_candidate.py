"""A 15-output (or, with ``--vertebral_context false``, a muscle-only 9-output) candidate (issue #21), made the way
the shipped model was made: fine-tune, then interpolate.

Why: two 15-output fine-tunes on anatomy-complete phantoms (docs/studies/training_history.md, "Vertebral context")
beat the shipped model on those phantoms but lost on the default phantoms and on every real sample: the weights moved
away from what transfers. The shipped model itself is 0.7 x a model + 0.3 x its fine-tune, and interpolating a
fine-tune with its start keeps much of the start's robustness while gaining some of the tune (weight-space
ensembles, "WiSE-FT"). Here the start is the shipped model widened to 15 outputs; the six vertebral output channels
are the fine-tune's own at every weight (the start has none to give). A muscle-only tune keeps the shipped shapes
(the vertebrae then come from the pipeline's spine network), so its cohorts may mix anatomy-complete phantoms with
the default-anatomy ones the shipped model was made on.

Steps, each resumable (markers as in :mod:`scripts.studies.resumable_steps`)::

    python -m scripts.studies.vertebral_candidate run --train_dirs A,B --target_val_dirs A,B --keep_val_dirs C \\
        --out_dir OUT [--epochs 20] [--weights 0.25,0.5,0.75,1.0] [--train_overrides '{...}']

1. ``datalist.json``: the training lists of every ``--train_dirs`` (absolute paths), their validation lists;
2. ``train/``: configs/train.json from ``models/model.pt`` (or ``--start_ckpt``: a second phase of an earlier
   tune) with ``--vertebral_context true`` (or false; resumes its own training state);
3. ``soup_<w>/model.pt`` for each weight ``w``: ``(1 - w) x widened shipped + w x tuned``;
4. every soup and the shipped 9-output model segment the validation subjects of every ``--target_val_dirs``
   (anatomy-complete phantoms: what the tune is for) and ``--keep_val_dirs`` (default-anatomy phantoms: what the
   shipped model does well and must keep, the only proxy for transfer that is not a real scan);
5. the choice, by a rule fixed here before any result: the weight with the highest mean muscle Dice on the target
   sets among those whose mean muscle Dice on the keep sets is at least the shipped model's minus ``keep_margin``
   and, with ``--keep_ff_r2_margin``, whose keep sets' FF R^2 is at least the shipped model's minus that margin
   (none: no candidate). Written: ``validation.csv`` (per weight, set and structure), ``validation_ff.csv`` (FF
   per side), ``report.md`` and ``chosen.json``. The held-out sets and the real samples are scored afterwards,
   once, on the chosen weights only.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from scripts.evaluation.agreement import linear_regression
from scripts.evaluation.evaluate_phantom import evaluate_run
from scripts.io.atomic import atomic_write, atomic_write_text
from scripts.pipeline.pretrained import adapt_state_dict
from scripts.studies.bundle_runs import BUNDLE_ROOT, predict_unet, train_unet, training_can_resume
from scripts.studies.cv_splits import folder_list, read_entries, write_cohorts_datalist
from scripts.studies.resumable_steps import marker_digest, run_step, study_cli
from scripts.tools.average_checkpoints import interpolate_state_dicts

__all__ = ["widened_soup", "choose_weight", "run"]

logger = logging.getLogger(__name__)

SHIPPED = "shipped"


def widened_soup(base: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor], weight: float) -> dict:
    """``(1 - weight) x base + weight x tuned`` where ``base`` may have fewer output channels than ``tuned``.

    The base is first given the tuned network's shapes (:func:`scripts.pipeline.pretrained.adapt_state_dict`: its own
    channels copied, the channels it lacks taken from ``tuned``), so the extra classes are the fine-tune's at every
    weight and the old classes move from the base to the tune.

    Args:
        base: state_dict of the starting model (e.g. 9 outputs).
        tuned: state_dict of its fine-tune (e.g. 15 outputs).
        weight: share of ``tuned``, in [0, 1].
    """
    widened, _ = adapt_state_dict(dict(tuned), dict(base))
    return interpolate_state_dicts(widened, tuned, weight)


def ff_r2(ff: pd.DataFrame) -> pd.Series:
    """R^2 of the predicted against the true mean FF over the muscle sides, per ``model`` (keep-group rows only).

    ``ff`` has the columns ``model``, ``group``, ``side``, ``ff_mean_pct_pred`` and ``ff_mean_pct_truth`` (as the FF
    agreement table of :func:`scripts.evaluation.evaluate_phantom.evaluate_run`, with ``model`` and ``group`` added).
    """
    sides = ff[(ff.group == "keep") & ff.side.isin(["left", "right"])]
    return pd.Series(
        {m: linear_regression(t.ff_mean_pct_truth, t.ff_mean_pct_pred).r2 for m, t in sides.groupby("model")}
    )


def choose_weight(
    table: pd.DataFrame,
    keep_margin: float = 0.005,
    ff: pd.DataFrame | None = None,
    keep_ff_r2_margin: float | None = None,
) -> dict[str, Any]:
    """The rule of step 5 on ``validation.csv``'s rows (columns ``model``, ``group``, ``kind``, ``dice``).

    ``group`` is ``target`` or ``keep``; ``kind`` is ``muscle`` (L/R mean rows) or ``vertebra``. With
    ``keep_ff_r2_margin`` (and ``ff``, the FF agreement rows: see :func:`ff_r2`), a weight must also keep the keep
    sets' FF R^2 within that margin of the shipped model's, as the adoption rule asks of the default held-out set.
    Returns the chosen ``model`` (a weight as text, or None), the reference keep Dice and every candidate's scores.
    """
    muscles = table[table.kind == "muscle"]
    score = muscles.groupby(["model", "group"]).dice.mean().unstack("group")
    if SHIPPED not in score.index:
        raise ValueError("the table has no rows of the shipped model, the reference of the keep rule")
    floor = float(score.loc[SHIPPED, "keep"]) - keep_margin
    candidates = score.drop(index=SHIPPED)
    allowed = candidates[candidates["keep"] >= floor]
    r2 = None
    ff_floor = None
    if keep_ff_r2_margin is not None:
        if ff is None:
            raise ValueError("keep_ff_r2_margin needs the FF agreement rows (ff)")
        r2 = ff_r2(ff)
        if SHIPPED not in r2.index:
            raise ValueError("the FF rows have no keep-set rows of the shipped model, the reference of the FF rule")
        ff_floor = float(r2[SHIPPED]) - keep_ff_r2_margin
        allowed = allowed[[bool(r2.get(m, float("nan")) >= ff_floor) for m in allowed.index]]
    chosen = None if allowed.empty else str(allowed["target"].idxmax())
    scores = {m: {"target": float(r["target"]), "keep": float(r["keep"])} for m, r in candidates.iterrows()}
    if r2 is not None:
        for m in scores:
            scores[m]["keep_ff_r2"] = float(r2.get(m, float("nan")))
    result = {
        "chosen": chosen,
        "keep_floor": floor,
        "scores": scores,
        "shipped": {"target": float(score.loc[SHIPPED, "target"]), "keep": float(score.loc[SHIPPED, "keep"])},
    }
    if r2 is not None:
        result["keep_ff_r2_floor"] = ff_floor
        result["shipped"]["keep_ff_r2"] = float(r2[SHIPPED])
    return result


def _validate(model: Path, num_classes: int, val_dir: Path, folder: Path, infer_overrides: Mapping[str, Any]):
    """Segment ``val_dir``'s validation subjects with ``model``; returns the metric rows (muscles and vertebrae) and
    the FF agreement rows."""
    entries = read_entries(val_dir, "validation")
    folder.mkdir(parents=True, exist_ok=True)
    datalist = folder / "datalist.json"
    atomic_write_text(datalist, json.dumps({"testing": entries}, indent=2) + "\n", overwrite=True)
    overrides = {**dict(infer_overrides), "num_classes": num_classes}
    run_step(folder / "predict", predict_unet(val_dir, datalist, model, len(entries), overrides))
    return evaluate_run(str(val_dir), str(folder / "predict" / "out"), datalist_key="validation")


def run(
    train_dirs: Sequence[str] | str,
    target_val_dirs: Sequence[str] | str,
    keep_val_dirs: Sequence[str] | str,
    out_dir: str = "eval/vertebral_candidate",
    epochs: int = 20,
    val_interval: int = 4,
    learning_rate: float = 0.0002,
    weights: Sequence[float] | str | float = (0.25, 0.5, 0.75, 1.0),
    keep_margin: float = 0.005,
    keep_ff_r2_margin: float | None = None,
    seed: int = 0,
    base_ckpt: str = "",
    start_ckpt: str = "",
    train_overrides: Mapping[str, Any] | None = None,
    infer_overrides: Mapping[str, Any] | None = None,
    vertebral_context: bool = True,
) -> dict[str, Any]:
    """Steps 1-5 of the module docstring; returns the choice (also ``out_dir/chosen.json``).

    Args:
        train_dirs: phantom cohorts whose ``training`` and ``validation`` lists train the candidate.
        target_val_dirs, keep_val_dirs: cohorts whose ``validation`` subjects score the weights (see above).
        out_dir: output folder (resumes what is there).
        epochs, val_interval, learning_rate, seed: the fine-tune's schedule.
        weights: shares of the fine-tune to try, each in (0, 1].
        keep_margin: Dice the candidate may lose against the shipped model on the keep sets.
        keep_ff_r2_margin: FF R^2 the candidate may lose on the keep sets (None: not checked).
        base_ckpt: the shipped weights that every soup interpolates from and every rule compares with (default:
            the bundle's ``models/model.pt``).
        start_ckpt: the weights the fine-tune starts from (default: ``base_ckpt``); e.g. an earlier tune, for a
            second phase under other settings. Its output count must be the tune's (9 or 15).
        train_overrides: more train.json settings (e.g. ``{"contrast_prob": 0.3}``).
        infer_overrides: more inference.json settings for the validation runs.
        vertebral_context: True: the tune has 15 outputs (muscles and vertebrae); False: the shipped 9 outputs
            (a muscle-only tune, e.g. on a mix of anatomy-complete and default-anatomy cohorts).
    """
    # one weight on the command line (``--weights 1``) arrives as a number, not a list
    if isinstance(weights, (int, float)):
        weights = [weights]
    ws = [float(w) for w in (weights.split(",") if isinstance(weights, str) else weights)]
    if not ws or any(not 0.0 < w <= 1.0 for w in ws):
        raise ValueError(f"weights must lie in (0, 1], got {ws}")
    if keep_margin < 0:
        raise ValueError(f"keep_margin must be >= 0, got {keep_margin}")
    if keep_ff_r2_margin is not None and keep_ff_r2_margin < 0:
        raise ValueError(f"keep_ff_r2_margin must be >= 0, got {keep_ff_r2_margin}")
    out = Path(out_dir)
    base = Path(base_ckpt) if base_ckpt else BUNDLE_ROOT / "models" / "model.pt"
    if not base.is_file():
        raise FileNotFoundError(f"{base}: the shipped weights are missing (--base_ckpt)")
    start = Path(start_ckpt) if start_ckpt else base
    if not start.is_file():
        raise FileNotFoundError(f"{start}: the weights to start the tune from are missing (--start_ckpt)")
    train_list = write_cohorts_datalist(folder_list(train_dirs), out)
    n_tuned = 15 if vertebral_context else 9
    overrides = {
        "pretrained_ckpt": str(start),
        "vertebral_context": vertebral_context,
        "learning_rate": learning_rate,
        **dict(train_overrides or {}),
    }
    first = folder_list(train_dirs)[0]
    run_step(
        out / "train",
        train_unet(first, train_list, epochs, val_interval, seed, overrides),
        can_resume=training_can_resume,
    )
    tuned_path = out / "train" / "models" / "model.pt"
    models: dict[str, tuple[Path, int]] = {SHIPPED: (base, 9)}
    for w in ws:
        folder = out / f"soup_{w:g}"

        def soup(f: Path, w: float = w) -> dict[str, Any]:
            state = widened_soup(
                torch.load(base, map_location="cpu", weights_only=True),
                torch.load(tuned_path, map_location="cpu", weights_only=True),
                w,
            )
            atomic_write(f / "model.pt", lambda tmp: torch.save(state, tmp), suffix=".pt")
            return {"weight": w}

        run_step(folder, soup, depends=marker_digest(out / "train"))
        models[f"{w:g}"] = (folder / "model.pt", n_tuned)
    rows, ff_rows = [], []
    for group, dirs in (("target", folder_list(target_val_dirs)), ("keep", folder_list(keep_val_dirs))):
        for val_dir in dirs:
            for name, (model, n_classes) in models.items():
                # keyed by folder, not group: a set given as both target and keep is segmented once
                folder = out / "validation" / name / val_dir.resolve().name
                seg, ff = _validate(model, n_classes, val_dir, folder, infer_overrides or {})
                ff_rows.append(ff.assign(model=name, group=group, val_dir=str(val_dir)))
                part = seg[seg.side.isin(["mean", "midline"])].copy()
                part.insert(0, "model", name)
                part.insert(1, "group", group)
                part.insert(2, "val_dir", str(val_dir))
                part.insert(3, "kind", ["vertebra" if s == "midline" else "muscle" for s in part.side])
                rows.append(part)
    table = pd.concat(rows, ignore_index=True)
    table.to_csv(out / "validation.csv", index=False)
    ff_table = pd.concat(ff_rows, ignore_index=True)
    ff_table.to_csv(out / "validation_ff.csv", index=False)
    choice = choose_weight(table, keep_margin, ff_table, keep_ff_r2_margin)
    vertebra = table[(table.kind == "vertebra") & (table.group == "target")].groupby("model").dice.mean()
    choice["vertebra_dice_target"] = {m: (None if math.isnan(v) else float(v)) for m, v in vertebra.items()}
    atomic_write_text(out / "chosen.json", json.dumps(choice, indent=2) + "\n", overwrite=True)
    atomic_write_text(out / "report.md", _report(choice, keep_margin, n_tuned) + "\n", overwrite=True)
    if choice["chosen"] is not None:
        logger.info("chosen: weight %s (%s)", choice["chosen"], out / f"soup_{choice['chosen']}" / "model.pt")
    else:
        logger.warning("no weight keeps the default-anatomy Dice within %.3f of the shipped model's", keep_margin)
    return choice


def _report(choice: Mapping[str, Any], keep_margin: float, n_outputs: int = 15) -> str:
    # a 9-output network draws no vertebra: its vertebra rows come from the pipeline's own spine network
    vertebra = "vertebra Dice, target sets" if n_outputs == 15 else "vertebra Dice (spine network), target sets"
    with_ff = "keep_ff_r2_floor" in choice
    rule = (
        f"Rule: highest target-set muscle Dice among weights whose keep-set muscle Dice >= the shipped model's - "
        f"{keep_margin:g} ({choice['keep_floor']:.4f})"
    )
    if with_ff:
        rule += f" and whose keep-set FF R^2 >= {choice['keep_ff_r2_floor']:.4f}"
    head = f"| weight | muscle Dice, target sets | muscle Dice, keep sets | {vertebra} |"
    sep = "|---|---|---|---|"
    if with_ff:
        head, sep = head + " FF R^2, keep sets |", sep + "---|"

    def ff_cell(s: Mapping[str, Any]) -> str:
        return f" {s['keep_ff_r2']:.4f} |" if with_ff else ""

    shipped = choice["shipped"]
    lines = [
        f"# {n_outputs}-output candidate: fine-tune interpolated with the shipped model",
        "",
        rule + ".",
        "",
        head,
        sep,
        f"| shipped (9 outputs) | {shipped['target']:.4f} | {shipped['keep']:.4f} | - |{ff_cell(shipped)}",
    ]
    for m, s in choice["scores"].items():
        v = choice.get("vertebra_dice_target", {}).get(m)
        lines.append(f"| {m} | {s['target']:.4f} | {s['keep']:.4f} | {'-' if v is None else f'{v:.4f}'} |{ff_cell(s)}")
    lines += ["", f"Chosen: {choice['chosen'] if choice['chosen'] is not None else 'none (no weight keeps the floor)'}"]
    return "\n".join(lines)


def main() -> None:
    """``python -m scripts.studies.vertebral_candidate run ...``."""
    study_cli({"run": run})


if __name__ == "__main__":
    main()
