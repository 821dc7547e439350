"""Does a cohort run recover the population a phantom cohort was generated with?

The phantom draws each subject's muscle FF from a log-normal model centred on the paper's medians with known
effects of sex, age and activity (``scripts.phantom.population``). After running inference.json on such a
cohort (segmentations from the model, not the truth), this compares, per muscle (L/R mean):

- the cohort's median and quartiles with the paper's (the generating values), with bootstrap 95 % intervals
  of the cohort statistics (sampling error);
- the effects estimated by regressing ln FF on sex, age and activity with the generating effects;
- the same statistics from the phantom's ground-truth FF, to separate segmentation error from sampling error.

Rows of the run whose quality verdict is ``fail`` are left out of the model's statistics, as reference building does
(:mod:`scripts.normative.qc_exclusion`; ``--include_failed_qc true`` keeps them); ``recovery.md`` says how many.

Usage::

    python -m scripts.studies.reproduce_normative --dataset_dir /data/normative173 --run_dir /data/normative173_eval \\
        --out_dir docs/studies/normative_reproduction
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scripts.io.atomic import atomic_write_text
from scripts.labels import MUSCLES
from scripts.normative.group_comparison import cohort_frame, covariate_regression
from scripts.normative.qc_exclusion import QCExclusion, exclude_failed_qc
from scripts.phantom.population import EFFECTS, PAPER_REFERENCE

__all__ = ["bootstrap_quartiles", "recovery_tables", "run"]

_TERMS = {
    "female": ("female", EFFECTS["female"]),
    "age_per_decade": ("per decade of age", EFFECTS["per_decade"]),
    "activity_step": ("per activity step", EFFECTS["per_activity_step"]),
}


def bootstrap_quartiles(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Percentile-bootstrap 95 % intervals of Q1, median and Q3.

    Args:
        x: 1D sample.
        n_boot: bootstrap resamples.
        seed: random seed.

    Returns:
        ``(3, 2)`` array: rows Q1, median, Q3; columns lower, upper limit.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=float)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    q = np.percentile(x[idx], [25, 50, 75], axis=1)
    return np.percentile(q, [2.5, 97.5], axis=1).T


def _quartile_rows(df: pd.DataFrame, source: str) -> list[dict]:
    rows = []
    for m in MUSCLES:
        x = df[(df.muscle == m) & (df.side == "mean")].ff.dropna().to_numpy(float)
        q = np.percentile(x, [25, 50, 75])
        ci = bootstrap_quartiles(x)
        for k, name in enumerate(("Q1", "median", "Q3")):
            paper = PAPER_REFERENCE[m][k]
            rows.append(
                {
                    "source": source,
                    "muscle": m,
                    "statistic": name,
                    "paper": paper,
                    "cohort": q[k],
                    "ci_low": ci[k, 0],
                    "ci_high": ci[k, 1],
                    "n": x.size,
                    "paper_within_ci": bool(ci[k, 0] <= paper <= ci[k, 1]),
                }
            )
    return rows


def _effect_rows(df: pd.DataFrame, source: str) -> list[dict]:
    reg = covariate_regression(df, covariates=("age", "sex", "activity"), log_ff=True)
    rows = []
    for _, r in reg[reg.term.isin(list(_TERMS))].iterrows():
        label, truth = _TERMS[r.term]
        rows.append(
            {
                "source": source,
                "muscle": r.muscle,
                "effect": label,
                "generated_ratio": float(np.exp(truth)),
                "estimated_ratio": float(np.exp(r.coef)),
                "ci_low": float(np.exp(r.ci_low)),
                "ci_high": float(np.exp(r.ci_high)),
                "p": float(r.p),
                "generated_within_ci": bool(r.ci_low <= truth <= r.ci_high),
            }
        )
    return rows


def recovery_tables(
    dataset_dir: str | Path, run_dir: str | Path, include_failed_qc: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, QCExclusion]:
    """Quartile and effect recovery from the model's segmentations and from the phantom's ground truth.

    Args:
        dataset_dir: the phantom cohort (``participants.tsv``, ``ground_truth.csv``).
        run_dir: the inference run's output folder (``cohort_ff_table.csv``).
        include_failed_qc: keep the model's rows whose ``qc_status`` is ``fail`` (left out by default).

    Returns:
        ``(quartiles, effects, qc)``: DataFrames with a ``source`` column (``model`` or ``ground_truth``), and what
        the quality rule withheld from the model's rows (:class:`scripts.normative.qc_exclusion.QCExclusion`).
    """
    dataset_dir, run_dir = Path(dataset_dir), Path(run_dir)
    parts = dataset_dir / "participants.tsv"
    table_path = run_dir / "cohort_ff_table.csv"
    if not table_path.is_file():
        raise FileNotFoundError(f"cohort table {table_path} not found: give the output folder of a finished run")
    qc = exclude_failed_qc(
        pd.read_csv(table_path, dtype={"subject": str}), include_failed=include_failed_qc, source=str(table_path)
    )
    model = cohort_frame(qc.table, parts)
    truth = cohort_frame(pd.read_csv(dataset_dir / "ground_truth.csv", dtype={"subject": str}), parts)
    quart = pd.DataFrame(_quartile_rows(model, "model") + _quartile_rows(truth, "ground_truth"))
    eff = pd.DataFrame(_effect_rows(model, "model") + _effect_rows(truth, "ground_truth"))
    return quart, eff, qc


def _markdown(quart: pd.DataFrame, eff: pd.DataFrame, qc: QCExclusion) -> str:
    lines = [
        f"Model rows: {qc.summary()}.",
        "",
        "| muscle | statistic | paper (generating) | model cohort [95 % CI] | ground truth [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    for (m, s), g in quart.groupby(["muscle", "statistic"], sort=False):
        r = {row.source: row for row in g.itertuples()}
        cell = [
            f"{r[k].cohort:.2f} [{r[k].ci_low:.2f}, {r[k].ci_high:.2f}]{'' if r[k].paper_within_ci else ' *'}"
            for k in ("model", "ground_truth")
        ]
        lines.append(f"| {m} | {s} | {r['model'].paper:.1f} | {cell[0]} | {cell[1]} |")
    lines += [
        "",
        "| muscle | effect (ratio of FF) | generated | model estimate [95 % CI] | ground truth [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    for (m, e), g in eff.groupby(["muscle", "effect"], sort=False):
        r = {row.source: row for row in g.itertuples()}
        cell = [
            f"{r[k].estimated_ratio:.3f} [{r[k].ci_low:.3f}, {r[k].ci_high:.3f}]"
            f"{'' if r[k].generated_within_ci else ' *'}"
            for k in ("model", "ground_truth")
        ]
        lines.append(f"| {m} | {e} | {r['model'].generated_ratio:.3f} | {cell[0]} | {cell[1]} |")
    return "\n".join(lines) + "\n\n`*`: the generating value lies outside the 95 % interval.\n"


def run(dataset_dir: str, run_dir: str, out_dir: str, overwrite: bool = False, include_failed_qc: bool = False) -> str:
    """Write ``quartiles.csv``, ``effects.csv`` and ``recovery.md`` under ``out_dir``; return the Markdown.

    Args:
        dataset_dir: the phantom cohort (``participants.tsv``, ``ground_truth.csv``).
        run_dir: the inference run's output folder (``cohort_ff_table.csv``).
        out_dir: output folder.
        overwrite: replace earlier results.
        include_failed_qc: keep the model's rows whose ``qc_status`` is ``fail`` (left out by default, counted in
            ``recovery.md``).
    """
    out = Path(out_dir)
    quart, eff, qc = recovery_tables(dataset_dir, run_dir, include_failed_qc)
    text = _markdown(quart, eff, qc)
    atomic_write_text(out / "quartiles.csv", quart.to_csv(index=False), overwrite=overwrite)
    atomic_write_text(out / "effects.csv", eff.to_csv(index=False), overwrite=overwrite)
    atomic_write_text(out / "recovery.md", text, overwrite=overwrite)
    return text


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(run))
