"""Pipeline-level check of the normative reproduction: the model's FF against the truth, subject by subject.

:mod:`scripts.studies.reproduce_normative` compares cohort summaries with the generating values; the generator's own
target FFs reproduce those on their own, so that comparison tests the generator more than the pipeline. This module
pairs every subject's model FF with its ground-truth FF and asks what the pipeline changes:

- ``subject_pairs.csv``: one row per subject, muscle and side (left, right, L/R mean) with ``ff_model``,
  ``ff_truth``, ``error_pp`` (model - truth), sex, age and activity; ``excluded.csv``: every pair left out, with why
  (no model FF: the muscle was not segmented or the subject failed; no truth);
- per-muscle agreement (:func:`scripts.evaluation.ff_agreement_stats.agreement_by_muscle`: both sides as repeated
measures of
  the subject, cluster-robust intervals, Bland & Altman 2007 limits);
- the regression of the error (L/R mean) on sex, age and activity per muscle (one row per subject, so classical
  OLS): a segmentation error that depends on the group would distort the group effects;
- the same regression with the label's relative volume error added (``volume_error_regression.csv``): if the sex
  term shrinks once the volume error is in the model, the group-dependent FF error comes from where the labels'
  borders lie (a label grown into the surrounding fat reads fattier), not from the FF inside a correct label;
- the group tests (Mann-Whitney by sex, Kruskal-Wallis by activity, Holm over the table) on the model's FF and on
  the truth's, side by side.

The model's rows whose quality verdict is ``fail`` are left out, as reference building does
(:mod:`scripts.normative.qc_exclusion`; ``--include_failed_qc true`` keeps them): ``excluded.csv`` names them
("left out by the quality verdict") and ``pipeline_check.md`` gives the counts.

Usage::

    python -m scripts.studies.normative_pipeline --dataset_dir /data/normative173 \\
        --cohort_table /data/normative173_requant/cohort_ff_table.csv \\
        --out_dir docs/studies/normative_reproduction/pipeline
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scripts.evaluation.ff_agreement_stats import agreement_by_muscle
from scripts.io.atomic import atomic_write_text
from scripts.labels import MUSCLES
from scripts.normative.group_comparison import (
    activity_comparison,
    cohort_frame,
    covariate_regression,
    holm_across_table,
    sex_comparison,
)
from scripts.normative.qc_exclusion import QCExclusion, exclude_failed_qc

__all__ = ["subject_pairs", "error_regression", "volume_error_regression", "group_tests_side_by_side", "run"]

QC_REASON = "left out by the quality verdict (qc_status fail)"


def subject_pairs(model: pd.DataFrame, truth: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pair the model's and the truth's FF per subject, muscle and side; list what cannot be paired and why.

    Args:
        model, truth: long frames of :func:`scripts.normative.group_comparison.cohort_frame` (subject, muscle, side, ff,
        sex,
            age, activity).

    Returns:
        ``(pairs, excluded)``: ``pairs`` with ff_model, ff_truth, error_pp and the covariates; ``excluded`` with
        subject, muscle, side and ``reason``.
    """
    keys = ["subject", "muscle", "side"]
    covariates = [c for c in ("sex", "age", "activity") if c in truth.columns]
    merged = (
        truth[keys + ["ff"] + covariates]
        .rename(columns={"ff": "ff_truth"})
        .merge(model[keys + ["ff"]].rename(columns={"ff": "ff_model"}), on=keys, how="outer", indicator=True)
    )
    reason = np.select(
        [
            merged["_merge"] == "right_only",
            merged["_merge"] == "left_only",
            merged.ff_model.isna(),
            merged.ff_truth.isna(),
        ],
        [
            "no ground truth for this subject and muscle",
            "subject or muscle absent from the cohort table (run failed)",
            "no model FF (muscle not segmented)",
            "no ground-truth FF",
        ],
        default="",
    )
    merged = merged.drop(columns="_merge").assign(reason=reason)
    excluded = merged.loc[merged.reason != "", keys + ["reason"]].reset_index(drop=True)
    pairs = merged[merged.reason == ""].drop(columns="reason").reset_index(drop=True)
    pairs["error_pp"] = pairs.ff_model - pairs.ff_truth
    return pairs, excluded


def error_regression(pairs: pd.DataFrame, side: str = "mean", extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """Per muscle: OLS of the error (model - truth, pp) on age (per decade), sex (female = 1) and activity step.

    One value per subject (the ``side`` rows), so the rows are independent and classical OLS applies. ``extra``:
    further numeric columns of ``pairs`` in the design (see :func:`volume_error_regression`).
    """
    frame = pairs.rename(columns={"error_pp": "ff"}).drop(columns=["ff_model", "ff_truth"])
    return covariate_regression(frame, side=side, covariates=("age", "sex", "activity"), log_ff=False, extra=extra)


def group_tests_side_by_side(model: pd.DataFrame, truth: pd.DataFrame, side: str = "mean") -> pd.DataFrame:
    """Sex and activity tests per muscle on the model's FF and on the truth's, Holm over each source's table.

    Both frames are restricted to the subject-muscle pairs present in both, so the two columns test the same
    subjects.
    """
    keys = ["subject", "muscle", "side"]
    both = model.dropna(subset=["ff"])[keys].merge(truth.dropna(subset=["ff"])[keys], on=keys)
    rows = []
    for source, frame in (("model", model), ("ground_truth", truth)):
        frame = frame.merge(both, on=keys)
        sex, omni = holm_across_table(sex_comparison(frame, side), activity_comparison(frame, side)[0])
        for test, table, effect in (("sex", sex, "r_rank_biserial"), ("activity", omni, "epsilon2")):
            for _, r in table.iterrows():
                rows.append(
                    {
                        "source": source,
                        "test": test,
                        "muscle": r.muscle,
                        "p": r.p,
                        "p_holm_table": r.p_holm_table,
                        "effect_size": r[effect],
                        "effect_name": effect,
                    }
                )
    long = pd.DataFrame(rows)
    return long.pivot_table(
        index=["test", "muscle"], columns="source", values=["p", "p_holm_table", "effect_size"]
    ).reset_index()


def volume_error_regression(pairs: pd.DataFrame, model_table: pd.DataFrame, truth_table: pd.DataFrame) -> pd.DataFrame:
    """Per muscle: OLS of the error (model - truth, pp; L/R mean) on sex, age, activity and the relative volume error.

    Args:
        pairs: :func:`subject_pairs` output.
        model_table, truth_table: the cohort table and ``ground_truth.csv`` (``subject``, ``muscle``, ``side``,
            ``volume_ml``); their ``mean`` rows hold both sides' volume.

    Returns:
        One row per muscle and term (``intercept``, ``age_per_decade``, ``female``, ``activity_step``,
        ``volume_error_pct`` = 100 x (model / truth volume - 1)): coefficient, CI, p, R^2 and n. Empty when a table has
        no ``volume_ml``.
    """
    if "volume_ml" not in model_table or "volume_ml" not in truth_table:
        return pd.DataFrame()
    keys = ["subject", "muscle"]

    def volumes(table: pd.DataFrame) -> pd.DataFrame:
        rows = table[table.side.astype(str).isin(["mean", "lr_mean"])]
        return rows.assign(subject=rows.subject.astype(str))[keys + ["volume_ml"]]

    vol = volumes(model_table).merge(volumes(truth_table), on=keys, suffixes=("_model", "_truth"))
    vol = vol[pd.to_numeric(vol.volume_ml_truth, errors="coerce") > 0]
    frame = pairs[pairs.side == "mean"].merge(vol, on=keys)
    frame = frame.assign(volume_error_pct=100.0 * (frame.volume_ml_model.astype(float) / frame.volume_ml_truth - 1.0))
    return error_regression(frame.drop(columns=["volume_ml_model", "volume_ml_truth"]), extra=("volume_error_pct",))


def _markdown(
    agreement: pd.DataFrame,
    errors: pd.DataFrame,
    volume_errors: pd.DataFrame,
    groups: pd.DataFrame,
    excluded: pd.DataFrame,
    n_subjects: int,
    qc: QCExclusion,
) -> str:
    lines = [
        f"# Normative cohort: the pipeline's FF against the truth ({n_subjects} subjects)",
        "",
        f"Model rows: {qc.summary()}.",
        "",
        "## Agreement per muscle (model − truth, pp; both sides, clustered by subject)",
        "",
        "| muscle | n (subjects) | slope [95 % CI] | identity R² | bias [95 % CI] | LoA (repeated measures) | "
        "proportional bias slope, p |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in agreement[agreement.side == "both"].iterrows():
        lines.append(
            f"| {r.muscle} | {int(r.n)} ({int(r.subjects)}) | {r.slope:.3f} [{r.slope_ci_lower:.3f}, "
            f"{r.slope_ci_upper:.3f}] | {r.r2_identity:.3f} | {r.bias_pp:+.2f} [{r.bias_ci_lower_pp:+.2f}, "
            f"{r.bias_ci_upper_pp:+.2f}] | {r.loa_lower_pp:+.2f} to {r.loa_upper_pp:+.2f} | "
            f"{r.prop_slope:+.3f}, {r.p_prop_cluster:.2g} |"
        )
    lines += [
        "",
        "## Does the error depend on the group? (error on sex, age, activity; L/R mean, OLS)",
        "",
        "| muscle | term | coefficient (pp) [95 % CI] | p |",
        "|---|---|---|---|",
    ]
    for _, r in errors[errors.term != "intercept"].iterrows():
        lines.append(f"| {r.muscle} | {r.term} | {r.coef:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] | {r.p:.2g} |")
    if len(volume_errors):
        lines += [
            "",
            "## Is it where the borders lie? (the same regression with the label's volume error added)",
            "",
            "volume_error_pct = 100 x (model / truth volume − 1), both sides together. A sex term that shrinks here",
            "comes from the labels' size, not from the FF inside a correct label.",
            "",
            "| muscle | term | coefficient (pp) [95 % CI] | p | R² |",
            "|---|---|---|---|---|",
        ]
        for _, r in volume_errors[volume_errors.term.isin(["female", "volume_error_pct"])].iterrows():
            lines.append(
                f"| {r.muscle} | {r.term} | {r.coef:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] | {r.p:.2g} | "
                f"{r.r2:.2f} |"
            )
    lines += [
        "",
        "## Group tests on the model's FF and on the truth's (same subjects; Holm over each table)",
        "",
        "| test | muscle | p model (Holm) | p truth (Holm) | effect model | effect truth |",
        "|" + "---|" * 6,
    ]
    for _, r in groups.iterrows():
        lines.append(
            f"| {r[('test', '')]} | {r[('muscle', '')]} | {r[('p', 'model')]:.2g} "
            f"({r[('p_holm_table', 'model')]:.2g}) | {r[('p', 'ground_truth')]:.2g} "
            f"({r[('p_holm_table', 'ground_truth')]:.2g}) | {r[('effect_size', 'model')]:.3f} | "
            f"{r[('effect_size', 'ground_truth')]:.3f} |"
        )
    lines += ["", f"## Excluded pairs: {len(excluded)}", ""]
    if len(excluded):
        counts = excluded.groupby(["muscle", "side", "reason"]).size().reset_index(name="n")
        lines += ["| muscle | side | reason | n |", "|---|---|---|---|"]
        lines += [f"| {r.muscle} | {r.side} | {r.reason} | {r.n} |" for r in counts.itertuples()]
    return "\n".join(lines) + "\n"


def _qc_checked(cohort_table: str, include_failed_qc: bool) -> tuple[QCExclusion, pd.DataFrame]:
    """The cohort table after the quality rule, and the (subject, muscle, side) keys it withheld."""
    path = Path(cohort_table)
    if not path.is_file():
        raise FileNotFoundError(f"cohort table {path} not found: give the cohort_ff_table.csv of a finished run")
    table = pd.read_csv(path, dtype={"subject": str})
    qc = exclude_failed_qc(table, include_failed=include_failed_qc, source=str(path))
    withheld = np.isfinite(pd.to_numeric(table["ff_mean_pct"], errors="coerce")) & qc.table["ff_mean_pct"].isna()
    keys = qc.table.loc[withheld, ["subject", "muscle", "side"]].copy()
    keys["side"] = keys["side"].astype(str).replace({"lr_mean": "mean"})
    return qc, keys


def run(
    dataset_dir: str, cohort_table: str, out_dir: str, overwrite: bool = False, include_failed_qc: bool = False
) -> str:
    """Write the pipeline-level check (tables and ``pipeline_check.md``) under ``out_dir``; returns the Markdown.

    Args:
        dataset_dir: the phantom cohort (``participants.tsv``, ``ground_truth.csv``).
        cohort_table: the run's ``cohort_ff_table.csv`` (the model's FF per subject, muscle and side).
        out_dir: output folder.
        overwrite: replace earlier results.
        include_failed_qc: keep the model's rows whose ``qc_status`` is ``fail`` (left out by default; the rows
            left out are listed in ``excluded.csv`` and counted in ``pipeline_check.md``).
    """
    parts = Path(dataset_dir) / "participants.tsv"
    qc, withheld = _qc_checked(cohort_table, include_failed_qc)
    model = cohort_frame(qc.table, parts)
    truth_table = pd.read_csv(Path(dataset_dir) / "ground_truth.csv", dtype={"subject": str})
    truth = cohort_frame(truth_table, parts)
    pairs, excluded = subject_pairs(model, truth)
    by_qc = excluded.merge(withheld.assign(_qc=True), on=["subject", "muscle", "side"], how="left")["_qc"]
    excluded.loc[by_qc.fillna(False).to_numpy(bool), "reason"] = QC_REASON
    sides = (
        pairs[pairs.side != "mean"]
        .assign(method="model")
        .rename(columns={"ff_truth": "ff_ref_pct", "ff_model": "ff_method_pct"})
    )
    agreement = agreement_by_muscle(sides, ["model"], "ff_method_pct", MUSCLES)
    errors = error_regression(pairs)
    volume_errors = volume_error_regression(pairs, qc.table, truth_table)
    groups = group_tests_side_by_side(model, truth)
    out = Path(out_dir)
    for name, frame in (
        ("subject_pairs.csv", pairs),
        ("excluded.csv", excluded),
        ("agreement_by_muscle.csv", agreement),
        ("error_regression.csv", errors),
        ("volume_error_regression.csv", volume_errors),
        ("group_tests_model_vs_truth.csv", groups),
    ):
        atomic_write_text(out / name, frame.to_csv(index=False), overwrite=overwrite)
    text = _markdown(agreement, errors, volume_errors, groups, excluded, int(pairs.subject.nunique()), qc)
    atomic_write_text(out / "pipeline_check.md", text, overwrite=overwrite)
    return text


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(run))
