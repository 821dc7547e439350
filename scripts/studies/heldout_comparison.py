"""Two evaluations of the same held-out phantoms side by side, unrounded: the numbers an adoption rule is checked on.

A candidate model (new weights, a new inference default) is adopted or not by rules written before its held-out
run (docs/studies/training_history.md, heldout_phantoms.md): a mean Dice at least the baseline's plus a margin,
a per-muscle median FF error no more than some tenths of a point worse, and so on. ``evaluate_phantom``'s
``summary.md`` rounds Dice to three decimals and FF errors to two, which can turn a gain of 0.0019 into 0.002: a
rule checked on the summary can pass when it fails. This tool recomputes every measure from the two evaluations'
per-case tables at full precision and gives the candidate minus the baseline.

Measures (each evaluation: ``segmentation_metrics.csv`` and ``ff_agreement.csv`` of
``scripts.evaluation.evaluate_phantom --out_dir``; sides left and right, muscles 1-8 only):

- ``dice_<muscle>``, ``hd95_mm_<muscle>``: mean over the sides of the muscle (both sides pooled);
  ``dice_mean``: the mean of the four muscles' means;
- ``ff_median_pp_<muscle>``, ``ff_p95_pp_<muscle>``: median and 95th percentile of the per-side absolute error of
  the mean FF (percentage points); ``ff_median_pp_mean``: the mean of the four medians;
- ``ff_median_pp``, ``ff_p95_pp``, ``ff_r2``, ``ff_bias_pp``: all sides pooled; R^2 of the regression of predicted on
  true FF and the Bland-Altman bias (predicted minus true), as ``evaluate_phantom`` reports them.

Either side may also be a bundle version whose held-out tables the bundle keeps (``--baseline 0.36.0 --candidate
0.37.0``: ``docs/studies/validation/heldout/*_<version>.csv``, the default held-out set). ``--n_bootstrap N``
adds a paired bootstrap over subjects: how far the difference would move on another draw of the same number of
phantoms (two held-out draws of 20 moved a muscle's median FF error by up to 0.25 pp).

::

    python -m scripts.studies.heldout_comparison --baseline eval_base/accuracy --candidate eval_new/accuracy \
        [--out_csv comparison.csv] [--n_bootstrap 2000 --seed 0]
    python -m scripts.studies.heldout_comparison --baseline 0.36.0 --candidate 0.37.0 --n_bootstrap 2000
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from scripts.evaluation.agreement import bland_altman, linear_regression
from scripts.labels import MUSCLES
from scripts.tools.eval_metrics import heldout_tables

__all__ = ["measures", "accuracy_measures", "compare", "main"]

TABLES = ("segmentation_metrics.csv", "ff_agreement.csv")


def _tables(source: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-side tables of ``source``: an evaluation folder, or a bundle version whose held-out tables the
    bundle keeps (``docs/studies/validation/heldout/*_<version>.csv``, the seed-2 default held-out set)."""
    root = Path(source)
    if root.is_dir():
        missing = [name for name in TABLES if not (root / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{root} lacks {', '.join(missing)}: give the --out_dir of scripts.evaluation.evaluate_phantom "
                "(python -m scripts.evaluation.evaluate_phantom --dataset_dir D --pred_dir P --out_dir <this folder>)"
            )
        paths = tuple(root / name for name in TABLES)
    elif re.fullmatch(r"\d+\.\d+\.\d+", str(source)):
        paths = heldout_tables(str(source))
    else:
        raise FileNotFoundError(
            f"{source} is neither an evaluation folder (the --out_dir of scripts.evaluation.evaluate_phantom) nor a "
            "bundle version with held-out tables in docs/studies/validation/heldout (for example 0.37.0)"
        )
    seg, ff = (pd.read_csv(path) for path in paths)
    return seg[seg.side.isin(["left", "right"])], ff[ff.side.isin(["left", "right"])]


def measures(seg: pd.DataFrame, ff: pd.DataFrame, where: str = "the tables") -> pd.Series:
    """Every measure of the module docstring from per-side tables (``side`` left or right only).

    Raises:
        ValueError: a muscle has no side in ``seg``, or no side of ``ff`` has both a predicted and a true FF.
    """
    sides = ff.dropna(subset=["ff_mean_pct_pred", "ff_mean_pct_truth"])
    if sides.empty:
        raise ValueError(f"{where}: no side has both a predicted and a true mean FF")
    error = (sides.ff_mean_pct_pred - sides.ff_mean_pct_truth).abs()
    out: dict[str, float] = {}
    for muscle in MUSCLES:
        rows = seg[seg.muscle == muscle]
        if rows.empty:
            raise ValueError(f"{where}: segmentation_metrics.csv has no side of {muscle}")
        out[f"dice_{muscle}"] = float(rows.dice.mean())
        out[f"hd95_mm_{muscle}"] = float(rows.hd95_mm.replace([np.inf], np.nan).mean())
        e = error[sides.muscle == muscle]
        out[f"ff_median_pp_{muscle}"] = float(e.median())
        out[f"ff_p95_pp_{muscle}"] = float(e.quantile(0.95))
    out["dice_mean"] = float(np.mean([out[f"dice_{m}"] for m in MUSCLES]))
    out["ff_median_pp_mean"] = float(np.nanmean([out[f"ff_median_pp_{m}"] for m in MUSCLES]))
    out["ff_median_pp"] = float(error.median())
    out["ff_p95_pp"] = float(error.quantile(0.95))
    out["ff_r2"] = float(linear_regression(sides.ff_mean_pct_truth, sides.ff_mean_pct_pred).r2)
    out["ff_bias_pp"] = float(bland_altman(sides.ff_mean_pct_pred, sides.ff_mean_pct_truth).bias)
    return pd.Series(out)


def accuracy_measures(accuracy_dir: str | Path) -> pd.Series:
    """:func:`measures` of one evaluation folder (or a bundle version's held-out tables), at full precision.

    Raises:
        FileNotFoundError: a per-case table is missing.
        ValueError: see :func:`measures`.
    """
    return measures(*_tables(accuracy_dir), where=str(accuracy_dir)).rename(str(accuracy_dir))


def _resampled(groups: dict, subjects: np.ndarray) -> pd.DataFrame:
    """The rows of ``subjects`` from a table split by subject (a subject drawn twice contributes its rows twice)."""
    return pd.concat([groups[s] for s in subjects if s in groups], ignore_index=True)


def compare(
    baseline_dir: str | Path, candidate_dir: str | Path, n_bootstrap: int = 0, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """One row per measure: ``baseline``, ``candidate`` and ``difference`` (candidate minus baseline).

    With ``n_bootstrap`` > 0, also ``ci_low`` and ``ci_high``: the percentile interval (``level``) of the difference
    when the subjects are drawn again with replacement, the same draw for both models (a paired bootstrap: the
    phantoms, not the models, are what a second held-out set would change).

    Raises:
        ValueError: the two evaluations are not of the same subjects (a comparison of different phantoms would
            say nothing about the models), or ``n_bootstrap`` / ``level`` out of range.
    """
    if n_bootstrap < 0 or not 0.0 < level < 1.0:
        raise ValueError(f"n_bootstrap must be >= 0 and level in (0, 1), got {n_bootstrap} and {level}")
    tables = [_tables(d) for d in (baseline_dir, candidate_dir)]
    subjects = [set(seg.subject) for seg, _ in tables]
    if subjects[0] != subjects[1]:
        raise ValueError(
            f"{baseline_dir} and {candidate_dir} evaluate different subjects "
            f"({len(subjects[0] ^ subjects[1])} differ): run both models on the same held-out set"
        )
    base, cand = (measures(seg, ff, where=str(d)) for (seg, ff), d in zip(tables, (baseline_dir, candidate_dir)))
    table = pd.DataFrame({"baseline": base, "candidate": cand})
    table["difference"] = table.candidate - table.baseline
    if n_bootstrap:
        rng = np.random.default_rng(seed)
        names = np.array(sorted(subjects[0]))
        split = [[dict(tuple(t.groupby("subject", sort=False))) for t in pair] for pair in tables]
        draws = []
        for _ in range(n_bootstrap):
            pick = rng.choice(names, size=len(names), replace=True)
            pair = [measures(_resampled(seg, pick), _resampled(ff, pick)) for seg, ff in split]
            draws.append(pair[1] - pair[0])
        spread = pd.DataFrame(draws)
        tail = (1.0 - level) / 2.0
        table["ci_low"] = spread.quantile(tail)
        table["ci_high"] = spread.quantile(1.0 - tail)
    return table.rename_axis("measure").reset_index()


def main(baseline: str, candidate: str, out_csv: str | None = None, n_bootstrap: int = 0, seed: int = 0) -> None:
    """Print the comparison as Markdown (five decimals; with ``n_bootstrap`` the 95 % interval of the difference)
    and optionally write it as CSV (full precision)."""
    table = compare(baseline, candidate, n_bootstrap=n_bootstrap, seed=seed)
    ci = "ci_low" in table
    lines = [
        "| measure | baseline | candidate | candidate - baseline |" + (" 95 % interval |" if ci else ""),
        "|---|---|---|---|" + ("---|" if ci else ""),
    ]
    for row in table.itertuples():
        line = f"| {row.measure} | {row.baseline:.5f} | {row.candidate:.5f} | {row.difference:+.5f} |"
        lines.append(line + (f" {row.ci_low:+.5f} to {row.ci_high:+.5f} |" if ci else ""))
    print("\n".join(lines))
    if out_csv:
        Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_csv, index=False)


if __name__ == "__main__":
    import fire

    fire.Fire(main)
