"""Normative cohort study from a finished cohort run: build a reference, compare groups, draw the figures.

Commands (``python -m scripts.normative.cohort_study <command> --help``)::

    # reference percentiles (overall, by sex, age band, activity; age centile curves when n allows); with
    # --per_level true also per vertebral level from eval/cohort_ff_levels.csv (a 15-output model's run)
    python -m scripts.normative.cohort_study build_reference --cohort_table eval/cohort_ff_table.csv \\
        --participants data/participants.tsv --output my_reference.json [--per_level true]
    # group comparisons, paper-style table and plots
    python -m scripts.normative.cohort_study compare_groups --cohort_table eval/cohort_ff_table.csv \\
        --participants data/participants.tsv --out_dir eval/groups

The reference file is what ``inference.json`` takes as ``--reference_file`` in place of the paper's. Both commands
leave out the rows whose quality verdict is ``fail`` (a muscle side, or an L/R mean row) and say how many, per muscle,
in the reference's ``source`` block and in the group outputs; ``--include_failed_qc true`` keeps them
(:mod:`scripts.normative.qc_exclusion`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scripts.io.atomic import atomic_write_text
from scripts.labels import MUSCLES
from scripts.normative.building import build_reference as _build_reference
from scripts.normative.centiles import fit_age_centiles
from scripts.normative.group_comparison import (
    ACTIVITY_ORDER,
    activity_comparison,
    cohort_frame,
    covariate_regression,
    holm_across_table,
    paper_table,
    sex_comparison,
)
from scripts.normative.level_building import build_level_strata, level_summary
from scripts.normative.qc_exclusion import QCExclusion, exclude_failed_qc
from scripts.normative.reference_file import save_reference
from scripts.normative.schema import validate_reference

__all__ = ["build_reference", "compare_groups"]


def _qc_checked(cohort_table: str | os.PathLike[str], include_failed_qc: bool) -> QCExclusion:
    """The run's cohort table with the ``fail`` rows withheld (unless ``include_failed_qc``), and the counts."""
    path = Path(cohort_table)
    if not path.is_file():
        raise FileNotFoundError(f"cohort table {path} not found: give the cohort_ff_table.csv of a finished run")
    table = pd.read_csv(path, dtype={"subject": str})
    return exclude_failed_qc(table, include_failed=include_failed_qc, source=str(path))


def _require_usable_values(table: pd.DataFrame, qc: QCExclusion, cohort_table: str | os.PathLike[str]) -> None:
    """Refuse, in words, a cohort whose every muscle lacks a usable FF once the quality rule has run.

    Without this the reference schema would only say that it has no strata.
    """
    # the reference is built from each subject's L/R mean (the paper's statistic)
    means = table[table["side"].astype(str) == "mean"]
    usable = np.isfinite(pd.to_numeric(means["ff_mean_pct"], errors="coerce"))
    if usable.any():
        return
    withheld = (
        f"{qc.excluded_total} row(s) were left out because their qc_status is 'fail'"
        if qc.excluded_total
        else "no row was left out by the quality rule"
    )
    raise ValueError(
        f"{cohort_table}: no subject has a usable L/R-mean FF for any muscle: {withheld}, and the others have no FF "
        "value (status too_small, missing or no_valid_ff). Look at the QC pictures of the run "
        "(<output_dir>/<subject>/<subject>_qc_axial.png) before building a reference from it; "
        "--include_failed_qc true builds from the failed rows anyway."
    )


def _level_rows(
    cohort_table: str | os.PathLike[str], level_table: str | None, include_failed_qc: bool
) -> tuple[pd.DataFrame, QCExclusion, Path]:
    """The run's per-level rows with each side's verdict applied (``fail`` withheld unless asked), and the file."""
    path = Path(level_table) if level_table else Path(cohort_table).with_name("cohort_ff_levels.csv")
    if not path.is_file():
        raise FileNotFoundError(
            f"per-level table {path} not found: a run writes cohort_ff_levels.csv only with the vertebral context "
            "(a spine network, models/spine_model.pt or --spine_ckpt_path, or a 15-output model with --num_classes "
            "15); give it with --level_table"
        )
    levels = pd.read_csv(path, dtype={"subject": str})
    if "qc_status" not in levels.columns:
        # a per-level file written before the levels carried the verdict: take each side's from the cohort table
        sides = pd.read_csv(cohort_table, dtype={"subject": str})
        if "qc_status" in sides.columns:
            keys = ["subject", "muscle", "side"]
            levels = levels.merge(sides[[*keys, "qc_status"]], on=keys, how="left")
    return levels, exclude_failed_qc(levels, include_failed=include_failed_qc, source=str(path)), path


def _with_participants(levels: pd.DataFrame, participants: str) -> pd.DataFrame:
    """The per-level rows with the participant columns (sex, age, activity, bmi) of their subject."""
    parts = pd.read_csv(participants, sep="\t", dtype={"participant_id": str})
    frame = cohort_frame(levels, parts).rename(columns={"ff": "ff_mean_pct"})
    if len(frame) != len(levels):
        raise ValueError(f"{participants}: a participant_id appears more than once")
    # cohort_frame keeps the row order (a left merge), so the level columns line up
    return frame.assign(**{c: levels[c].to_numpy() for c in ("level", "level_status", "boundary_rule")})


def build_reference(
    cohort_table: str,
    participants: str,
    output: str,
    min_n: int = 20,
    reference_id: str = "user_reference",
    version: str = "1.0.0",
    description: str = "",
    healthy: bool = True,
    overwrite: bool = False,
    include_failed_qc: bool = False,
    per_level: bool = False,
    level_table: str | None = None,
    include_uncertain_levels: bool = False,
) -> str:
    """Build a normative reference from a cohort run and write it as a versioned JSON file.

    Rows whose ``qc_status`` is ``fail`` are left out (that muscle side, or that subject's L/R mean), so each
    muscle's n in the reference drops by the rows withheld; the counts per muscle and side and the rule are written
    to the reference's ``source`` block (``qc_excluded``, ``qc_rule``). A table without the column is used as is,
    with a warning.

    With ``per_level`` the reference also gets per-level strata (``vertebral_levels``,
    :func:`scripts.normative.level_building.build_level_strata`) from the run's ``cohort_ff_levels.csv``: the same
    percentiles per vertebral level, muscle and side, the same QC rule per muscle side, and the levels whose
    ``level_status`` is not ``ok`` left out (counted per level) unless ``include_uncertain_levels``.

    Args:
        cohort_table: the run's ``cohort_ff_table.csv``.
        participants: BIDS ``participants.tsv`` with participant_id, sex, age, activity (optional bmi).
        output: the reference JSON to write (never overwritten with other content unless ``overwrite``).
        min_n: strata with fewer subjects are flagged ``small_stratum``.
        reference_id: name of the reference.
        version: version of its values.
        description: free text (citation or cohort description).
        healthy: whether the cohort is healthy (recorded in the population summary).
        overwrite: replace an existing, different file.
        include_failed_qc: keep the ``fail`` rows (``true``/``false``, ``yes``/``no``, ``1``/``0``).
        per_level: also build per-level strata from the per-level table.
        level_table: the run's ``cohort_ff_levels.csv`` (default: beside ``cohort_table``).
        include_uncertain_levels: keep the levels whose ``level_status`` is ``uncertain``.

    Returns:
        A summary: the file, n, strata, what the quality rule left out and, per level, the subjects used and the
        uncertain levels left out.
    """
    qc = _qc_checked(cohort_table, include_failed_qc)
    table = cohort_frame(qc.table, participants).rename(columns={"ff": "ff_mean_pct"})
    _require_usable_values(table, qc, cohort_table)
    options = {"min_n": min_n, "reference_id": reference_id, "version": version, "description": description}
    ref = _build_reference(
        table,
        **options,
        population={"healthy": bool(healthy)},
        source={"cohort_table": Path(cohort_table).name, **qc.provenance()},
    )
    lines = [qc.summary()]
    if per_level:
        _, level_qc, level_path = _level_rows(cohort_table, level_table, include_failed_qc)
        block = build_level_strata(
            _with_participants(level_qc.table, participants),
            include_uncertain=include_uncertain_levels,
            source=str(level_path),
            **options,
        )
        ref["vertebral_levels"] = {**block, "level_table": level_path.name, **level_qc.provenance()}
        validate_reference(ref, f"build_reference({reference_id!r})")
        lines += [level_summary(block), f"per level: {level_qc.summary()}"]
    path = save_reference(ref, output, overwrite=overwrite)
    small = sum(1 for s in ref["strata"] if s.get("small_stratum"))
    head = f"wrote {path}: n = {ref['n']}, {len(ref['strata'])} strata ({small} flagged small, n < {min_n})"
    return "\n".join([head, *lines])


def _box_plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [lv for lv in ACTIVITY_ORDER if (df.activity == lv).any()]
    fig, axes = plt.subplots(1, len(MUSCLES), figsize=(4 * len(MUSCLES), 4), sharey=True)
    colours = {"M": "#4477aa", "F": "#cc6677"}
    for ax, muscle in zip(axes, MUSCLES):
        sub = df[(df.muscle == muscle) & (df.side == "mean")]
        pos, data, cols = [], [], []
        for i, lv in enumerate(levels):
            for j, sex in enumerate(("M", "F")):
                x = sub[(sub.activity == lv) & (sub.sex == sex)].ff.dropna()
                if len(x):
                    pos.append(i * 3 + j)
                    data.append(x.to_numpy())
                    cols.append(colours[sex])
        ax.set_title(muscle.replace("_", " "))
        if not data:  # no subject with a valid FF for this muscle (e.g. a pilot run): an empty panel says so
            ax.text(0.5, 0.5, "no valid FF", ha="center", va="center", transform=ax.transAxes)
            continue
        parts = ax.boxplot(data, positions=pos, widths=0.8, patch_artist=True, showfliers=True)
        for patch, c in zip(parts["boxes"], cols):
            patch.set_facecolor(c)
            patch.set_alpha(0.6)
        ax.set_xticks([i * 3 + 0.5 for i in range(len(levels))])
        ax.set_xticklabels([lv.replace("moderately_", "mod. ") for lv in levels], rotation=30, ha="right")
    axes[0].set_ylabel("FF, L/R mean (%)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.6) for c in colours.values()]
    axes[-1].legend(handles, ["men", "women"], loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _age_plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MUSCLES), figsize=(4 * len(MUSCLES), 3.6), sharey=True)
    for ax, muscle in zip(axes, MUSCLES):
        sub = df[(df.muscle == muscle) & (df.side == "mean")].dropna(subset=["ff", "age"])
        for sex, c in (("M", "#4477aa"), ("F", "#cc6677")):
            s = sub[sub.sex == sex]
            ax.scatter(s.age, s.ff, s=8, color=c, alpha=0.6, label="men" if sex == "M" else "women")
        if len(sub) >= 30:
            curves = fit_age_centiles(sub.age.to_numpy(float), sub.ff.to_numpy(float), centiles=(10, 25, 50, 75, 90))
            ages = np.linspace(sub.age.min(), sub.age.max(), 50)
            values = curves(ages)
            for k, q in enumerate(curves.centiles):
                ax.plot(ages, values[:, k], color="k", lw=1.6 if q == 50 else 0.8, ls="-" if q == 50 else "--")
        ax.set_title(muscle.replace("_", " "))
        ax.set_xlabel("age (years)")
    axes[0].set_ylabel("FF, L/R mean (%)")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _with_qc_column(frame: pd.DataFrame, qc: QCExclusion, side: str) -> pd.DataFrame:
    """``frame`` (one row per muscle) with ``qc_excluded_rows``: rows of ``side`` withheld for that muscle."""
    counts = {m: qc.excluded.get(m, {}).get(side, 0) for m in MUSCLES}
    return frame.assign(qc_excluded_rows=frame["muscle"].map(counts).fillna(0).astype(int))


def compare_groups(
    cohort_table: str,
    participants: str,
    out_dir: str,
    side: str = "mean",
    plots: bool = True,
    overwrite: bool = False,
    include_failed_qc: bool = False,
) -> str:
    """Group comparisons of a cohort run: tests, regression, the paper-style table and plots.

    Writes ``sex_tests.csv``, ``activity_tests.csv``, ``activity_pairwise.csv``, ``regression.csv`` (FF in
    percent), ``regression_log.csv`` (ln FF: exp(coef) is a ratio), ``table.md`` and, with ``plots``,
    ``ff_by_sex_activity.png`` and ``ff_vs_age.png`` under ``out_dir``. Rows whose ``qc_status`` is ``fail`` are
    left out of every test, table and plot; ``sex_tests.csv`` and ``activity_tests.csv`` say how many per muscle
    (``qc_excluded_rows``), ``table.md`` in a note, ``summary.json`` per muscle and side (``qc_excluded``).

    Args:
        cohort_table: the run's ``cohort_ff_table.csv``.
        participants: BIDS ``participants.tsv``.
        out_dir: output folder; existing files with other content are not replaced unless ``overwrite``.
        side: ``"mean"`` (L/R mean), ``"left"`` or ``"right"``.
        plots: draw the figures.
        overwrite: replace earlier results.
        include_failed_qc: keep the ``fail`` rows (``true``/``false``, ``yes``/``no``, ``1``/``0``).

    Returns:
        The Markdown table.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    qc = _qc_checked(cohort_table, include_failed_qc)
    df = cohort_frame(qc.table, participants)
    omni, pairs = activity_comparison(df, side)
    sex, omni = holm_across_table(sex_comparison(df, side), omni)
    sex, omni = _with_qc_column(sex, qc, side), _with_qc_column(omni, qc, side)
    reg = covariate_regression(df, side)
    reg_log = covariate_regression(df, side, log_ff=True)
    table = paper_table(df, side)
    n = df[df.side == side].subject.nunique()
    text = (
        f"# FF by group ({side} side), n = {n}\n\nMedian (Q1-Q3) FF in percent; p: Mann-Whitney U (sex), "
        "Kruskal-Wallis (activity); in parentheses Holm-adjusted over the table's sex and activity tests."
        f"\n\n{table}\n{qc.summary(side)}; rule: {qc.provenance()['qc_rule']}.\n"
    )
    for name, frame in (
        ("sex_tests.csv", sex),
        ("activity_tests.csv", omni),
        ("activity_pairwise.csv", pairs),
        ("regression.csv", reg),
        ("regression_log.csv", reg_log),
    ):
        atomic_write_text(out / name, frame.to_csv(index=False), overwrite=overwrite)
    atomic_write_text(out / "table.md", text, overwrite=overwrite)
    atomic_write_text(
        out / "summary.json",
        json.dumps({"n": int(n), "side": side, **qc.provenance()}, indent=2) + "\n",
        overwrite=overwrite,
    )
    if plots:
        _box_plot(df, out / "ff_by_sex_activity.png")
        _age_plot(df, out / "ff_vs_age.png")
    return text


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire({"build_reference": typed_cli(build_reference), "compare_groups": typed_cli(compare_groups)})
