"""Group comparisons of muscle FF in a cohort, laid out like the paper's normative tables.

Per muscle (the L/R mean by default): Mann-Whitney U between the sexes, Kruskal-Wallis across activity levels
with pairwise Mann-Whitney post-hoc tests (Holm-adjusted within each muscle), and an ordinary least-squares
model of FF on age, sex, activity and BMI (an ANCOVA with activity as an ordinal step). Effect sizes: the
rank-biserial correlation (Mann-Whitney), epsilon squared and eta squared (Kruskal-Wallis) and the regression
coefficients with 95 % confidence intervals. All tests are two-sided; the sex and activity tests of all muscles form
one family for a Holm adjustment (:func:`holm_across_table`).

Input: the long table that :func:`cohort_frame` makes from the run's ``cohort_ff_table.csv`` and a BIDS
``participants.tsv`` (participant_id, sex ``M``/``F``, age in years, activity level, optional bmi).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scripts.evaluation.agreement import holm_correction
from scripts.labels import MUSCLES

logger = logging.getLogger(__name__)

__all__ = [
    "ACTIVITY_ORDER",
    "cohort_frame",
    "sex_comparison",
    "activity_comparison",
    "covariate_regression",
    "paper_table",
    "RegressionFit",
    "ols",
    "kruskal_effect_sizes",
    "holm_across_table",
    "refresh_group_tests",
]

#: the GPPAQ-style activity levels, least to most active (the phantom's and the authors' code's classes)
ACTIVITY_ORDER: tuple[str, ...] = ("inactive", "moderately_inactive", "moderately_active", "active")


def cohort_frame(
    cohort_table: str | os.PathLike[str] | pd.DataFrame,
    participants: str | os.PathLike[str] | pd.DataFrame,
    value_column: str = "ff_mean_pct",
) -> pd.DataFrame:
    """One row per subject, muscle and side (``left``, ``right``, ``mean``) with FF and the participant columns.

    Args:
        cohort_table: the run's ``cohort_ff_table.csv`` (or its DataFrame).
        participants: ``participants.tsv`` (tab-separated) or its DataFrame; ``participant_id`` matches ``subject``.
        value_column: the FF column of the cohort table, copied to ``ff``.

    Raises:
        ValueError: a needed column is missing, or a subject of the table has no participant row.
    """
    table = (
        cohort_table if isinstance(cohort_table, pd.DataFrame) else pd.read_csv(cohort_table, dtype={"subject": str})
    )
    parts = (
        participants
        if isinstance(participants, pd.DataFrame)
        else pd.read_csv(participants, sep="\t", dtype={"participant_id": str})
    )
    for name, df, cols in (
        ("cohort table", table, ("subject", "muscle", "side", value_column)),
        ("participants", parts, ("participant_id", "sex")),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"{name} lacks column(s) {missing}")
    keep = [c for c in ("participant_id", "sex", "age", "activity", "bmi") if c in parts.columns]
    merged = (
        table[["subject", "muscle", "side", value_column]]
        .rename(columns={value_column: "ff"})
        .merge(parts[keep].rename(columns={"participant_id": "subject"}), on="subject", how="left", indicator=True)
    )
    orphans = sorted(merged.loc[merged["_merge"] == "left_only", "subject"].unique())
    if orphans:
        raise ValueError(f"subjects without a participants row: {orphans[:10]}{' ...' if len(orphans) > 10 else ''}")
    return merged.drop(columns="_merge")


def _values(df: pd.DataFrame, muscle: str, side: str) -> pd.DataFrame:
    return df[(df.muscle == muscle) & (df.side == side)].dropna(subset=["ff"])


def _median_iqr(x: pd.Series) -> tuple[float, float, float]:
    q = np.percentile(x.to_numpy(dtype=float), [25, 50, 75]) if len(x) else [np.nan] * 3
    return float(q[1]), float(q[0]), float(q[2])


def sex_comparison(df: pd.DataFrame, side: str = "mean", groups: tuple[str, str] = ("M", "F")) -> pd.DataFrame:
    """Mann-Whitney U test of FF between two sexes per muscle.

    Args:
        df: from :func:`cohort_frame`.
        side: ``"mean"`` (L/R mean), ``"left"`` or ``"right"``.
        groups: the two ``sex`` values compared, (a, b).

    Returns:
        Per muscle: n, median, Q1, Q3 per group, ``U`` (of group a), ``p``, and the rank-biserial correlation
        ``r_rb = 2 U / (n_a n_b) - 1`` (positive: group a tends higher).
    """
    rows = []
    for muscle in MUSCLES:
        sub = _values(df, muscle, side)
        a, b = (sub.loc[sub.sex == g, "ff"] for g in groups)
        row = {"muscle": muscle, "side": side, "test": "Mann-Whitney U"}
        for g, x in zip(groups, (a, b)):
            med, q1, q3 = _median_iqr(x)
            row.update({f"n_{g}": len(x), f"median_{g}": med, f"q1_{g}": q1, f"q3_{g}": q3})
        if len(a) and len(b):
            res = stats.mannwhitneyu(a, b, alternative="two-sided")
            row.update(
                U=float(res.statistic),
                p=float(res.pvalue),
                r_rank_biserial=2.0 * float(res.statistic) / (len(a) * len(b)) - 1.0,
            )
        else:
            row.update(U=np.nan, p=np.nan, r_rank_biserial=np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def kruskal_effect_sizes(h: float, n: int, k: int) -> dict[str, float]:
    """Effect sizes of a Kruskal-Wallis H from n observations in k groups (Tomczak & Tomczak 2014).

    ``epsilon2 = H / ((n^2 - 1) / (n + 1)) = H / (n - 1)`` (epsilon squared) and ``eta2_H = (H - k + 1) / (n - k)``
    (eta squared based on H). They are different quantities; before 0.13 this module called the second one epsilon2.
    """
    return {
        "epsilon2": h / ((n**2 - 1) / (n + 1)) if n > 1 else np.nan,
        "eta2_H": (h - k + 1) / (n - k) if n > k else np.nan,
    }


def holm_across_table(sex: pd.DataFrame, omnibus: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Holm adjustment over the whole group table: every muscle's sex test and activity test form one family.

    Returns copies of both tables with a ``p_holm_table`` column (NaN p-values stay NaN and do not count).
    """
    p = np.concatenate([sex.p.to_numpy(dtype=float), omnibus.p.to_numpy(dtype=float)])
    adjusted = holm_correction(p)
    return sex.assign(p_holm_table=adjusted[: len(sex)]), omnibus.assign(p_holm_table=adjusted[len(sex) :])


def refresh_group_tests(groups_dir: str | os.PathLike[str]) -> str:
    """Recompute the effect sizes and the table-wide Holm p of a finished group comparison from its CSVs alone.

    Rewrites ``activity_tests.csv`` (``epsilon2`` as H / (n - 1), ``eta2_H``; n and k from its ``n_<level>``
    columns) and ``sex_tests.csv`` with ``p_holm_table``, for a study whose per-subject table is not at hand.

    Example:
        ``python -m scripts.normative.group_comparison --groups_dir docs/studies/normative_reproduction/groups``
    """
    folder = os.fspath(groups_dir)
    sex = pd.read_csv(os.path.join(folder, "sex_tests.csv"))
    omni = pd.read_csv(os.path.join(folder, "activity_tests.csv"))
    counts = omni[[c for c in omni.columns if c.startswith("n_")]]
    sizes = [
        kruskal_effect_sizes(float(h), int(row.sum()), int((row > 0).sum()))
        for h, (_, row) in zip(omni.H, counts.iterrows())
    ]
    omni = omni.assign(epsilon2=[s["epsilon2"] for s in sizes], eta2_H=[s["eta2_H"] for s in sizes])
    sex, omni = holm_across_table(
        sex.drop(columns="p_holm_table", errors="ignore"), omni.drop(columns="p_holm_table", errors="ignore")
    )
    sex.to_csv(os.path.join(folder, "sex_tests.csv"), index=False)
    omni.to_csv(os.path.join(folder, "activity_tests.csv"), index=False)
    return folder


def activity_comparison(
    df: pd.DataFrame, side: str = "mean", levels: Sequence[str] = ACTIVITY_ORDER
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Kruskal-Wallis test of FF across activity levels per muscle, with pairwise post-hoc tests.

    Args:
        df: from :func:`cohort_frame`.
        side: ``"mean"``, ``"left"`` or ``"right"``.
        levels: activity levels in order; levels absent from the data are left out.

    Returns:
        ``(omnibus, pairwise)``. ``omnibus``: per muscle, n/median/Q1/Q3 per level, ``H``, ``p`` and the effect
        sizes of :func:`kruskal_effect_sizes` (``epsilon2``, ``eta2_H``). ``pairwise``: per muscle and pair of
        levels, Mann-Whitney ``U``,
        ``p``, ``p_holm`` (Holm over the pairs of that muscle) and the rank-biserial correlation.
    """
    omni, pairs = [], []
    for muscle in MUSCLES:
        sub = _values(df, muscle, side)
        present = [lv for lv in levels if (sub.activity == lv).any()]
        groups = [sub.loc[sub.activity == lv, "ff"] for lv in present]
        row = {"muscle": muscle, "side": side, "test": "Kruskal-Wallis"}
        for lv, x in zip(present, groups):
            med, q1, q3 = _median_iqr(x)
            row.update({f"n_{lv}": len(x), f"median_{lv}": med, f"q1_{lv}": q1, f"q3_{lv}": q3})
        if len(groups) >= 2:
            res = stats.kruskal(*groups)
            n, k = sum(len(g) for g in groups), len(groups)
            row.update(H=float(res.statistic), p=float(res.pvalue), **kruskal_effect_sizes(float(res.statistic), n, k))
        else:
            row.update(H=np.nan, p=np.nan, epsilon2=np.nan, eta2_H=np.nan)
        omni.append(row)
        muscle_pairs = []
        for (la, xa), (lb, xb) in itertools.combinations(zip(present, groups), 2):
            res = stats.mannwhitneyu(xa, xb, alternative="two-sided")
            muscle_pairs.append(
                {
                    "muscle": muscle,
                    "side": side,
                    "level_a": la,
                    "level_b": lb,
                    "n_a": len(xa),
                    "n_b": len(xb),
                    "U": float(res.statistic),
                    "p": float(res.pvalue),
                    "r_rank_biserial": 2.0 * float(res.statistic) / (len(xa) * len(xb)) - 1.0,
                }
            )
        if muscle_pairs:
            adjusted = holm_correction([r["p"] for r in muscle_pairs])
            for r, p in zip(muscle_pairs, adjusted):
                r["p_holm"] = float(p)
        pairs.extend(muscle_pairs)
    return pd.DataFrame(omni), pd.DataFrame(pairs)


@dataclass
class RegressionFit:
    """Ordinary least squares fit ``y = X b + e``.

    Attributes:
        names: column names of X (``intercept`` first).
        coef: estimates b.
        se: standard errors (classical, homoscedastic).
        t: b / se.
        p: two-sided p-values from Student's t with ``dof`` degrees of freedom.
        ci_low, ci_high: 95 % confidence limits.
        r2: coefficient of determination.
        n: observations used.
        dof: residual degrees of freedom, n - columns.
    """

    names: list[str]
    coef: np.ndarray
    se: np.ndarray
    t: np.ndarray
    p: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    r2: float
    n: int
    dof: int


def ols(design: np.ndarray, y: np.ndarray, names: Sequence[str]) -> RegressionFit:
    """Least squares with classical standard errors.

    Args:
        design: ``(n, k)`` design matrix including the intercept column.
        y: ``(n,)`` response.
        names: k column names.

    Raises:
        ValueError: fewer observations than columns plus one, or a rank-deficient design.
    """
    design = np.asarray(design, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, k = design.shape
    if n <= k:
        raise ValueError(f"regression needs more observations ({n}) than coefficients ({k})")
    if np.linalg.matrix_rank(design) < k:
        raise ValueError(f"regression design is rank deficient (columns {list(names)}): a covariate has no spread")
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = n - k
    sigma2 = float(resid @ resid) / dof
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(design.T @ design)))
    t = coef / se
    p = 2.0 * stats.t.sf(np.abs(t), dof)
    q = stats.t.ppf(0.975, dof)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return RegressionFit(
        list(names),
        coef,
        se,
        t,
        p,
        coef - q * se,
        coef + q * se,
        1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else np.nan,
        n,
        dof,
    )


def _coded_covariates(sub: pd.DataFrame, covariates: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """Add the coded covariates present in ``sub`` (age per decade, female = 1, activity step, BMI per unit).

    Returns:
        ``sub`` with the coded columns added, and their names in the order of the design matrix.
    """
    cols: list[str] = []
    if "age" in covariates and "age" in sub and sub.age.notna().any():
        sub["age_per_decade"] = sub.age.astype(float) / 10.0
        cols.append("age_per_decade")
    if "sex" in covariates and "sex" in sub and sub.sex.notna().any():
        sub["female"] = (sub.sex.astype(str).str.upper() == "F").astype(float)
        sub.loc[sub.sex.isna(), "female"] = np.nan
        cols.append("female")
    if "activity" in covariates and "activity" in sub and sub.activity.notna().any():
        sub["activity_step"] = sub.activity.map({lv: i for i, lv in enumerate(ACTIVITY_ORDER)})
        cols.append("activity_step")
    if "bmi" in covariates and "bmi" in sub and sub.bmi.notna().any():
        sub["bmi_per_unit"] = sub.bmi.astype(float)
        cols.append("bmi_per_unit")
    return sub, cols


def covariate_regression(
    df: pd.DataFrame,
    side: str = "mean",
    covariates: Sequence[str] = ("age", "sex", "activity", "bmi"),
    log_ff: bool = False,
    extra: Sequence[str] = (),
) -> pd.DataFrame:
    """FF regressed on age (per decade), sex (female = 1), activity (ordinal step 0-3) and BMI, per muscle.

    Covariates absent from the data (or all NaN) are dropped; subjects with a missing value in a used covariate
    are left out. With ``log_ff`` the response is ln(FF) and ``exp(coef)`` reads as a ratio (e.g. women / men).

    Args:
        df: from :func:`cohort_frame`.
        side: ``"mean"``, ``"left"`` or ``"right"``.
        covariates: subset of ``("age", "sex", "activity", "bmi")``.
        log_ff: regress ln(FF) instead of FF (percent).
        extra: numeric columns of ``df`` added to the design as they are (e.g. a label's volume error).

    Returns:
        One row per muscle and term: coefficient, SE, t, p, 95 % CI, R^2 and n of the fit.
    """
    rows = []
    for muscle in MUSCLES:
        sub, cols = _coded_covariates(_values(df, muscle, side).copy(), covariates)
        cols = cols + list(extra)
        used = sub.dropna(subset=cols + ["ff"])
        if log_ff:
            used = used[used.ff > 0]
        y = np.log(used.ff.to_numpy(float)) if log_ff else used.ff.to_numpy(float)
        design = np.column_stack([np.ones(len(used))] + [used[c].to_numpy(float) for c in cols])
        names = ["intercept"] + cols
        try:
            fit = ols(design, y, names)
        except ValueError as err:
            # a small or uniform cohort (a pilot, a test run): the other muscles' fits and the group tests still stand
            logger.warning("%s (%s): regression not estimable: %s", muscle, side, err)
            missing = dict.fromkeys(("coef", "se", "t", "p", "ci_low", "ci_high", "r2"), np.nan)
            rows += [
                {
                    "muscle": muscle,
                    "side": side,
                    "response": "ln_ff" if log_ff else "ff_pct",
                    "term": name,
                    **missing,
                    "n": len(used),
                    "note": f"not estimable: {err}",
                }
                for name in names
            ]
            continue
        for i, name in enumerate(fit.names):
            rows.append(
                {
                    "muscle": muscle,
                    "side": side,
                    "response": "ln_ff" if log_ff else "ff_pct",
                    "term": name,
                    "coef": fit.coef[i],
                    "se": fit.se[i],
                    "t": fit.t[i],
                    "p": fit.p[i],
                    "ci_low": fit.ci_low[i],
                    "ci_high": fit.ci_high[i],
                    "r2": fit.r2,
                    "n": fit.n,
                    "note": "",
                }
            )
    return pd.DataFrame(rows)


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def paper_table(df: pd.DataFrame, side: str = "mean", levels: Sequence[str] = ACTIVITY_ORDER) -> str:
    """Markdown table: median (Q1-Q3) FF per muscle, overall, by sex and by activity level, with p-values.

    Args:
        df: from :func:`cohort_frame`.
        side: ``"mean"``, ``"left"`` or ``"right"``.
        levels: activity levels in order.
    """
    sex, act = holm_across_table(sex_comparison(df, side), activity_comparison(df, side, levels)[0])
    sex, act = sex.set_index("muscle"), act.set_index("muscle")
    present = [lv for lv in levels if f"median_{lv}" in act.columns]
    head = (
        ["muscle", "n", "all", "men", "women", "p (sex) (Holm)"]
        + [lv.replace("_", " ") for lv in present]
        + ["p (activity) (Holm)"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for muscle in MUSCLES:
        x = _values(df, muscle, side).ff
        med, q1, q3 = _median_iqr(x)
        cell = [muscle.replace("_", " "), str(len(x)), f"{med:.1f} ({q1:.1f}-{q3:.1f})"]
        for g in ("M", "F"):
            cell.append(
                f"{sex.at[muscle, f'median_{g}']:.1f} ({sex.at[muscle, f'q1_{g}']:.1f}-{sex.at[muscle, f'q3_{g}']:.1f})"
            )
        cell.append(f"{_fmt_p(sex.at[muscle, 'p'])} ({_fmt_p(sex.at[muscle, 'p_holm_table'])})")
        for lv in present:
            cell.append(
                f"{act.at[muscle, f'median_{lv}']:.1f} ({act.at[muscle, f'q1_{lv}']:.1f}-"
                f"{act.at[muscle, f'q3_{lv}']:.1f})"
            )
        cell.append(f"{_fmt_p(act.at[muscle, 'p'])} ({_fmt_p(act.at[muscle, 'p_holm_table'])})")
        lines.append("| " + " | ".join(cell) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import fire

    fire.Fire(refresh_group_tests)
