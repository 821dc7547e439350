"""Augmentation ablation: does realistic spatial augmentation let a U-Net learn from few scans (the paper's claim)?

One command::

    python -m scripts.studies.ablation run --dataset_dir phantom_train --test_dir phantom_test [--n_train 8] \\
        [--epochs 60] [--out_dir eval/ablation] [--anatomical_model model.npz]

Arms, all trained from scratch on the same ``n_train`` scans (drawn with ``seed`` from ``DIR``'s ``training``
list; ``DIR``'s ``validation`` list picks the checkpoint) with the same seed, schedule and network:

- ``none``: no augmentation at all;
- ``rotations``: small rigid transforms (rotation up to 5/5/10 degrees, 5 % scaling, 5 mm translation);
- ``rotations+bspline``: plus the random cubic B-spline deformation;
- ``rotations+bspline+anatomical``: plus deformations drawn from the training scans' own variability (a PCA model
  of their registrations, built from the same ``n_train`` label maps unless ``--anatomical_model`` is given).

Every other augmentation (flip, contrast synthesis, field of view, intensity) is off in every arm, so the arms differ
only in the spatial augmentation the paper describes. Each arm's model segments every ``testing`` scan of ``test_dir``
through ``configs/inference.json``; Dice, RVD and HD95 per subject, muscle and side are compared with the ``none`` arm
(paired Wilcoxon signed-rank, Holm-corrected). ``--seeds 0,1,2`` (and ``--draws 0,1``, draws of the training scans)
train every arm once per seed and draw; :func:`scripts.studies.ablation_stats.contrast_table` then tests every contrast,
including B-spline added to rotations, over the training runs and declares equivalence only inside
:data:`scripts.studies.ablation_stats.EQUIVALENCE_MARGINS`. Steps are resumable (markers as in
:mod:`scripts.studies.cross_validation`); an arm whose ``<arm>/evaluate/`` step is finished is never retrained, so a
run's ``datalist.json`` and ``evaluate/`` folders, copied to a fresh ``out_dir``, carry it across machines. Output:
``out_dir/metrics.csv``, ``out_dir/contrasts.csv`` and ``out_dir/report.md``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scripts.evaluation.agreement import holm_correction, paired_wilcoxon
from scripts.evaluation.evaluate_phantom import evaluate_run
from scripts.io.atomic import atomic_write_text
from scripts.studies.ablation_stats import EQUIVALENCE_MARGINS, contrast_table
from scripts.studies.bundle_runs import predict_unet, train_unet
from scripts.studies.cv_splits import read_entries, write_study_datalist
from scripts.studies.resumable_steps import DONE, exit_on_sigterm, run_step

__all__ = ["ARMS", "COMMON_OVERRIDES", "arm_overrides", "ablation_table", "contrast_report", "replicates", "run"]

logger = logging.getLogger(__name__)

#: train.json settings shared by every arm: everything but the spatial augmentation off
COMMON_OVERRIDES: dict[str, Any] = {
    "flip_prob": 0.0,
    "contrast_prob": 0.0,
    "field_of_view_prob": 0.0,
    "intensity_prob": 0.0,
    "remap_prob": 0.0,
}
#: arm -> train.json settings ("anatomical_model" is filled in with the model's path)
ARMS: dict[str, dict[str, Any]] = {
    "none": {"rigid_prob": 0.0, "bspline_prob": 0.0, "anatomical_model": ""},
    "rotations": {"rigid_prob": 0.3, "bspline_prob": 0.0, "anatomical_model": ""},
    "rotations+bspline": {"rigid_prob": 0.3, "bspline_prob": 0.3, "anatomical_model": ""},
    "rotations+bspline+anatomical": {
        "rigid_prob": 0.3,
        "bspline_prob": 0.3,
        "anatomical_model": None,
        "anatomical_prob": 0.3,
    },
}
METRICS = ("dice", "rvd", "hd95_mm")


def arm_overrides(arm: str, anatomical_model: str | None) -> dict[str, Any]:
    """The train.json settings of one arm (``anatomical_model``: path used where the arm needs one)."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; arms are {list(ARMS)}")
    values = {**COMMON_OVERRIDES, **ARMS[arm]}
    if values["anatomical_model"] is None:
        if not anatomical_model:
            raise ValueError(f"arm {arm!r} needs an anatomical variability model")
        values["anatomical_model"] = str(anatomical_model)
    return values


def _write_datalist(dataset_dir: Path, test_dir: Path, n_train: int, seed: int, out: Path) -> Path:
    # the study's own reader: absolute paths, subjects named, files checked, empty lists refused with the file named
    training = read_entries(dataset_dir, "training")
    validation = read_entries(dataset_dir, "validation")
    testing = read_entries(test_dir, "testing")
    if len(training) < n_train:
        raise ValueError(f"{dataset_dir}/datalist.json: {len(training)} training scans, fewer than n_train={n_train}")
    pick = sorted(np.random.default_rng(seed).choice(len(training), size=n_train, replace=False).tolist())
    datalist = {"training": [training[i] for i in pick], "validation": validation, "testing": testing}
    return write_study_datalist(out, datalist)


def ablation_table(metrics: pd.DataFrame, baseline: str = "none") -> pd.DataFrame:
    """Per arm, muscle (L/R mean rows) and metric: mean, SD and the paired Wilcoxon p against ``baseline``.

    The test needs at least 3 subject pairs with finite values; otherwise ``p_wilcoxon`` is NaN.

    Args:
        metrics: long table with columns ``arm``, ``subject``, ``muscle``, ``side`` and :data:`METRICS`.
        baseline: the arm every other arm is compared with.
    """
    means = metrics[metrics.side == "mean"]
    rows = []
    for arm in means.arm.unique():
        for muscle in means.muscle.unique():
            a = means[(means.arm == arm) & (means.muscle == muscle)].set_index("subject")
            b = means[(means.arm == baseline) & (means.muscle == muscle)].set_index("subject")
            for metric in METRICS:
                x = a[metric].astype(float)
                row = {
                    "arm": arm,
                    "muscle": muscle,
                    "metric": metric,
                    "mean": x.mean(),
                    "sd": x.std(ddof=1),
                    "n": int(x.notna().sum()),
                    "p_wilcoxon": np.nan,
                }
                if arm != baseline:
                    pair = pd.concat([x, b[metric].astype(float)], axis=1, join="inner")
                    # Why: an empty prediction has an infinite HD95; such pairs cannot be ranked, only counted.
                    pair = pair[np.isfinite(pair).all(axis=1)]
                    if len(pair) >= 3 and not np.allclose(pair.iloc[:, 0], pair.iloc[:, 1]):
                        row["p_wilcoxon"] = paired_wilcoxon(pair.iloc[:, 0].to_numpy(), pair.iloc[:, 1].to_numpy()).p
                rows.append(row)
    table = pd.DataFrame(rows)
    tested = table.p_wilcoxon.notna()
    table["p_holm"] = np.nan
    if tested.any():
        table.loc[tested, "p_holm"] = holm_correction(table.loc[tested, "p_wilcoxon"].to_numpy(dtype=float))
    return table


def _int_list(values: Sequence[int] | str | int | None) -> list[int]:
    if values is None or values == "":
        return []
    if isinstance(values, int):
        return [values]
    if isinstance(values, str):
        return [int(v) for v in values.split(",") if v.strip()]
    return [int(v) for v in values]


def replicates(
    seed: int, seeds: Sequence[int] | str | None = None, draws: Sequence[int] | str | None = None
) -> list[tuple[int, int]]:
    """(draw, training seed) of every replicate; ``seed`` alone is the single replicate ``(seed, seed)``."""
    return [(d, s) for d in (_int_list(draws) or [seed]) for s in (_int_list(seeds) or [seed])]


def contrast_report(contrasts: pd.DataFrame) -> list[str]:
    """Markdown of :func:`scripts.studies.ablation_stats.contrast_table` (Dice and HD95 rows)."""
    if contrasts.empty:
        return []
    units = ", ".join(sorted(set(contrasts.unit)))
    lines = [
        "## Contrasts between arms",
        "",
        f"Unit of the tests: {units}. Difference = arm − reference (|RVD| for RVD), 95 % interval; p of the "
        "difference (t over training runs; Wilcoxon over subjects for a single run) and of equivalence (TOST "
        "against the declared margins "
        + ", ".join(f"{k} {v:g}" for k, v in EQUIVALENCE_MARGINS.items())
        + "), both Holm-adjusted over the whole table. 'equivalent' needs the TOST, not a non-significant "
        "difference.",
        "",
        "| arm vs reference | muscle | metric | difference [95 % CI] | p difference (Holm) | "
        "p equivalence (Holm) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in contrasts[contrasts.metric.isin(["dice", "hd95_mm"])].iterrows():
        digits = 3 if r.metric == "dice" else 2
        lines.append(
            f"| {r.arm} vs {r.reference} | {r.muscle.replace('_', ' ')} | {r.metric} | "
            f"{r['mean']:+.{digits}f} [{r.ci_lower:+.{digits}f}, {r.ci_upper:+.{digits}f}] | "
            f"{r.p_difference:.2g} ({r.p_difference_holm:.2g}) | {r.p_equivalence:.2g} "
            f"({r.p_equivalence_holm:.2g}) | {r.verdict} |"
        )
    return lines + [""]


def _report(table: pd.DataFrame, settings: Mapping[str, Any]) -> str:
    lines = [
        "# Augmentation ablation",
        "",
        f"Training scans: {settings['n_train']} (seed {settings['seed']}), {settings['epochs']} epochs from "
        f"scratch per arm; held-out scans: {settings['n_test']} from `{settings['test_dir']}`. Everything but "
        "the spatial augmentation is off in every arm. p: paired Wilcoxon signed-rank against `none`, "
        "Holm-corrected over all comparisons.",
        "",
    ]
    for metric, name in (("dice", "Dice"), ("hd95_mm", "HD95 (mm)"), ("rvd", "relative volume difference")):
        sub = table[table.metric == metric]
        muscles = list(dict.fromkeys(sub.muscle))
        lines += [
            f"## {name} (L/R mean, mean +- SD)",
            "",
            "| arm | " + " | ".join(muscles) + " |",
            "|---|" + "---|" * len(muscles),
        ]
        for arm in dict.fromkeys(sub.arm):
            cells = []
            for m in muscles:
                r = sub[(sub.arm == arm) & (sub.muscle == m)].iloc[0]
                p = "" if np.isnan(r.p_holm) else f" (p {r.p_holm:.3g})"
                cells.append(f"{r['mean']:.3f} +- {r.sd:.3f}{p}")
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines.append("")
    seconds = settings.get("train_seconds", {})
    if seconds:
        lines += ["Training time per arm (s): " + ", ".join(f"{a} {s:.0f}" for a, s in seconds.items()), ""]
    return "\n".join(lines)


def run(
    dataset_dir: str,
    test_dir: str,
    n_train: int = 8,
    epochs: int = 60,
    val_interval: int = 10,
    seed: int = 0,
    out_dir: str = "eval/ablation",
    anatomical_model: str | None = None,
    arms: Sequence[str] | str = tuple(ARMS),
    train_overrides: Mapping[str, Any] | None = None,
    infer_overrides: Mapping[str, Any] | None = None,
    seeds: Sequence[int] | str | None = None,
    draws: Sequence[int] | str | None = None,
) -> pd.DataFrame:
    """Train every arm, segment the held-out scans, compare; resumable. Returns the comparison table.

    Args:
        dataset_dir: cohort whose ``datalist.json`` has ``training`` (>= ``n_train``) and ``validation`` lists.
        test_dir: cohort whose ``datalist.json`` ``testing`` list holds the held-out scans (with
            ``ground_truth.csv``, as :mod:`scripts.phantom` writes).
        n_train: number of training scans.
        epochs, val_interval: training schedule of every arm.
        seed: draws the training scans and seeds every arm's training.
        out_dir: output folder (resumes what is there).
        anatomical_model: an existing ``.npz`` model; default: built from the ``n_train`` label maps.
        arms: which arms to run (names of :data:`ARMS`; ``none`` is always included).
        train_overrides: extra train.json settings for every arm (e.g. a smaller patch for a quick run).
        infer_overrides: extra inference.json settings (e.g. ``{"roi_size": [64, 64, 32]}``).
        seeds: training seeds (replicate runs of every arm; default: ``seed`` only).
        draws: seeds of the draws of the ``n_train`` training scans (default: ``seed`` only). With more than one
            (draw, seed) replicate each goes to ``out_dir/draw<d>_seed<s>/`` and the contrasts use the training runs
            as their unit; a single replicate keeps the one-run layout ``out_dir/<arm>/``.
    """
    names = _arm_names(arms)
    out = Path(out_dir)
    reps = replicates(seed, seeds, draws)
    frames, seconds = [], {}
    for draw, train_seed in reps:
        rep_out = out if len(reps) == 1 else out / f"draw{draw}_seed{train_seed}"
        frame, rep_seconds, n_test = _run_replicate(
            Path(dataset_dir),
            Path(test_dir),
            rep_out,
            names,
            n_train,
            draw,
            train_seed,
            epochs,
            val_interval,
            anatomical_model,
            train_overrides,
            infer_overrides,
        )
        frame.insert(1, "draw", draw)
        frame.insert(2, "seed", train_seed)
        frames.append(frame)
        seconds.update(
            {(arm if len(reps) == 1 else f"{arm} draw{draw} seed{train_seed}"): v for arm, v in rep_seconds.items()}
        )
    settings = {
        "n_train": n_train,
        "seed": seed,
        "epochs": epochs,
        "n_test": n_test,
        "test_dir": str(test_dir),
        "train_seconds": seconds,
        "replicates": reps,
    }
    return _write_results(out, pd.concat(frames, ignore_index=True), reps, settings)


def _arm_names(arms: Sequence[str] | str) -> list[str]:
    """The arms to run (checked against :data:`ARMS`), the baseline ``none`` first."""
    names = [a.strip() for a in arms.split(",")] if isinstance(arms, str) else list(arms)
    for name in names:
        if name not in ARMS:
            raise ValueError(f"unknown arm {name!r}; arms are {list(ARMS)}")
    return ["none"] + [a for a in names if a != "none"]


def _write_results(
    out: Path, metrics: pd.DataFrame, reps: list[tuple[int, int]], settings: Mapping[str, Any]
) -> pd.DataFrame:
    """Write metrics.csv, comparison.csv, contrasts.csv and report.md; returns the one-run comparison table."""
    metrics.to_csv(out / "metrics.csv", index=False)
    # the one-run comparison against `none` as before (over the subjects of the first replicate only when several)
    first = metrics[(metrics.draw == reps[0][0]) & (metrics.seed == reps[0][1])]
    table = ablation_table(first.drop(columns=["draw", "seed"]))
    table.to_csv(out / "comparison.csv", index=False)
    contrasts = contrast_table(metrics if len(reps) > 1 else metrics.drop(columns=["draw", "seed"]))
    contrasts.to_csv(out / "contrasts.csv", index=False)
    text = _report(table, settings) + "\n" + "\n".join(contrast_report(contrasts))
    atomic_write_text(out / "report.md", text + "\n")
    logger.info("wrote %s", out / "report.md")
    return table


def _run_replicate(
    dataset_dir: Path,
    test_dir: Path,
    out: Path,
    names: Sequence[str],
    n_train: int,
    draw: int,
    train_seed: int,
    epochs: int,
    val_interval: int,
    anatomical_model: str | None,
    train_overrides: Mapping[str, Any] | None,
    infer_overrides: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame, dict[str, float], int]:
    """Train and evaluate every arm once on the training scans of ``draw`` with training seed ``train_seed``."""
    datalist = _write_datalist(dataset_dir, test_dir, n_train, draw, out)
    n_test = len(json.loads(datalist.read_text())["testing"])
    pending = [a for a in names if not (out / a / "evaluate" / DONE).is_file()]
    if any(ARMS[a]["anatomical_model"] is None for a in pending) and not anatomical_model:
        from scripts.transforms.anatomical_variability import build_variability_model_from_datalist

        def build(folder: Path) -> dict[str, Any]:
            return {"model": build_variability_model_from_datalist(str(datalist), str(folder / "model.npz"))}

        # each draw gets the variability model of its own training label maps
        anatomical_model = run_step(out / "anatomical_model", build)["model"]
    frames, seconds = [], {}
    for arm in names:

        def evaluate(folder: Path, arm: str = arm) -> dict[str, Any]:
            # Why a step of its own: its folder (metrics.csv + marker, a few hundred kB) is all a finished arm
            # needs, so a run copied to another machine without the weights and label maps resumes without
            # retraining what was already measured.
            overrides = {**arm_overrides(arm, anatomical_model), **dict(train_overrides or {})}
            train = train_unet(dataset_dir, datalist, epochs, val_interval, train_seed, overrides)
            trained = run_step(out / arm / "train", train)
            predicted = out / arm / "predict"
            model = out / arm / "train" / "models" / "model.pt"
            run_step(predicted, predict_unet(dataset_dir, datalist, model, n_test, infer_overrides))
            seg, _ = evaluate_run(str(test_dir), str(predicted / "out"))
            seg.to_csv(folder / "metrics.csv", index=False)
            return {"train_seconds": float(trained["seconds"]), "rows": len(seg)}

        evaluated = run_step(out / arm / "evaluate", evaluate)
        seconds[arm] = evaluated["train_seconds"]
        seg = pd.read_csv(out / arm / "evaluate" / "metrics.csv", dtype={"subject": str})
        seg.insert(0, "arm", arm)
        frames.append(seg)
    return pd.concat(frames, ignore_index=True), seconds, n_test


def contrasts_from_metrics(metrics_csv: str, out_dir: str) -> str:
    """Write ``contrasts.csv`` and ``contrasts.md`` of a finished ablation from its ``metrics.csv`` alone.

    Example:
        ``python -m scripts.studies.ablation contrasts --metrics_csv docs/studies/ablation/metrics.csv
        --out_dir docs/studies/ablation``
    """
    metrics = pd.read_csv(metrics_csv, dtype={"subject": str})
    reps = metrics[[c for c in ("draw", "seed") if c in metrics.columns]].drop_duplicates()
    if len(reps) <= 1:
        metrics = metrics.drop(columns=[c for c in ("draw", "seed") if c in metrics.columns])
    contrasts = contrast_table(metrics)
    out = Path(out_dir)
    atomic_write_text(out / "contrasts.csv", contrasts.to_csv(index=False), overwrite=True)
    atomic_write_text(
        out / "contrasts.md",
        "\n".join(["# Augmentation ablation: contrasts", ""] + contrast_report(contrasts)) + "\n",
        overwrite=True,
    )
    return str(out / "contrasts.md")


def main() -> None:
    """``fire`` entry point: ``python -m scripts.studies.ablation run --dataset_dir ... --test_dir ...``."""
    import fire

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    exit_on_sigterm()

    from scripts.configuration.settings import typed_cli

    typed_run = typed_cli(run)

    @functools.wraps(run)
    def run_cli(*args: Any, **kwargs: Any) -> str:
        # wraps(run): fire shows run's arguments for --help and checks them, not (*args, **kwargs)
        typed_run(*args, **kwargs)
        return f"wrote {Path(kwargs.get('out_dir', 'eval/ablation')) / 'report.md'}"

    fire.Fire({"run": run_cli, "contrasts": contrasts_from_metrics})


if __name__ == "__main__":
    main()
