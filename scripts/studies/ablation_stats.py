"""Contrasts between ablation arms with training runs as the unit, and equivalence against a declared margin.

One training run per arm says nothing about how much an arm's score moves with the training seed, so a Wilcoxon
over the test subjects of one run compares two particular models, not two augmentation schemes. With R replicate
training runs per arm (seeds, and optionally several draws of the training scans; replicate r of every arm shares
its seed and its draw), the unit is the replicate: the per-replicate difference between two arms (mean over the
test subjects) is one observation, and a t-test over the R differences (R - 1 df) carries the training variance.

"No difference" is claimed only by equivalence (two one-sided tests, TOST): the 90 % interval of the difference lies
inside the margin declared in :data:`EQUIVALENCE_MARGINS` before the runs. With a single replicate the function
falls back to the paired test over the test subjects of that one run and says so (``unit`` = ``subjects (one
training run)``): a statement about two models, not about two schemes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scripts.evaluation.agreement import holm_correction, paired_wilcoxon

__all__ = ["CONTRASTS", "EQUIVALENCE_MARGINS", "equivalence_test", "contrast_table"]

#: (arm, reference arm): every arm against no augmentation, and the paper's contrast (B-spline added to rotations)
CONTRASTS: tuple[tuple[str, str], ...] = (
    ("rotations", "none"),
    ("rotations+bspline", "none"),
    ("rotations+bspline+anatomical", "none"),
    ("rotations+bspline", "rotations"),
    ("rotations+bspline+anatomical", "rotations+bspline"),
)
#: equivalence margins, declared before the multi-seed runs: differences smaller than these do not matter here
#: (Dice 0.02 is about the spread between training seeds of one arm reported for small 3D U-Nets; 2 mm is one voxel
#: of the 2x2x4 mm working grid in-plane; 0.03 is 3 % of the muscle volume)
EQUIVALENCE_MARGINS: dict[str, float] = {"dice": 0.02, "hd95_mm": 2.0, "rvd": 0.03}


def equivalence_test(differences: Sequence[float], margin: float, alpha: float = 0.05) -> dict[str, float]:
    """t-based difference test and TOST equivalence of independent differences (one per replicate or subject).

    Returns mean, the (1 - alpha) interval (``ci_lower``/``ci_upper``, for the difference test), the (1 - 2 alpha)
    interval (``ci90_lower``/``ci90_upper``), ``p_difference`` (two-sided t, mean = 0) and ``p_equivalence``
    (the larger of the two one-sided p-values of mean <= -margin and mean >= +margin; below alpha means equivalent).
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    n = d.size
    if n < 2:
        raise ValueError(f"need at least 2 differences, got {n}")
    mean, se, df = float(d.mean()), float(d.std(ddof=1) / math.sqrt(n)), n - 1
    if se == 0:
        inside = abs(mean) < margin
        return dict(
            mean=mean,
            ci_lower=mean,
            ci_upper=mean,
            ci90_lower=mean,
            ci90_upper=mean,
            p_difference=1.0 if mean == 0 else 0.0,
            p_equivalence=0.0 if inside else 1.0,
            n=n,
        )
    t95, t90 = stats.t.ppf(1 - alpha / 2, df), stats.t.ppf(1 - alpha, df)
    p_lower = float(stats.t.sf((mean + margin) / se, df))  # H0: mean <= -margin
    p_upper = float(stats.t.cdf((mean - margin) / se, df))  # H0: mean >= +margin
    return dict(
        mean=mean,
        ci_lower=mean - t95 * se,
        ci_upper=mean + t95 * se,
        ci90_lower=mean - t90 * se,
        ci90_upper=mean + t90 * se,
        p_difference=float(2 * stats.t.sf(abs(mean) / se, df)),
        p_equivalence=max(p_lower, p_upper),
        n=n,
    )


def _replicate_keys(metrics: pd.DataFrame) -> list[str]:
    return [c for c in ("draw", "seed") if c in metrics.columns]


def _one_contrast(
    means: pd.DataFrame, arm: str, ref: str, muscle: str, metric: str, margin: float
) -> dict[str, Any] | None:
    keys = _replicate_keys(means)
    part = means[means.muscle == muscle]
    a = part[part.arm == arm].set_index(keys + ["subject"])[metric].astype(float)
    b = part[part.arm == ref].set_index(keys + ["subject"])[metric].astype(float)
    pair = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    pair = pair[np.isfinite(pair).all(axis=1)]
    if len(pair) < 3:
        return None
    # RVD is signed: closeness to 0 is what an arm should improve
    if metric == "rvd":
        pair = pair.abs()
    diff = pair.a - pair.b
    replicates = diff.groupby(level=keys).mean() if keys else pd.Series([diff.mean()])
    row: dict[str, Any] = {
        "arm": arm,
        "reference": ref,
        "muscle": muscle,
        "metric": metric,
        "margin": margin,
        "replicates": int(replicates.size),
        "subjects": int(pair.index.get_level_values("subject").nunique()),
    }
    if replicates.size >= 3:
        row.update(unit="training runs", **equivalence_test(replicates.to_numpy(), margin))
    else:
        # one run per arm: subjects are the unit (mean over the replicates, if two), training variance unknown
        per_subject = diff.groupby(level="subject").mean()
        row.update(
            unit="subjects (one training run)" if replicates.size == 1 else "subjects (two training runs)",
            **equivalence_test(per_subject.to_numpy(), margin),
        )
        sub = pair.groupby(level="subject").mean()
        row["p_difference"] = paired_wilcoxon(sub.a.to_numpy(), sub.b.to_numpy()).p
    return row


def contrast_table(
    metrics: pd.DataFrame,
    contrasts: Sequence[tuple[str, str]] = CONTRASTS,
    margins: Mapping[str, float] = EQUIVALENCE_MARGINS,
) -> pd.DataFrame:
    """Every contrast, muscle (L/R mean rows) and metric: difference, intervals, difference and equivalence tests.

    Args:
        metrics: long table (``arm``, ``subject``, ``muscle``, ``side``, metric columns; ``seed`` and/or ``draw``
            for replicate training runs).
        contrasts: (arm, reference) pairs; pairs with an arm absent from ``metrics`` are skipped.
        margins: equivalence margin per metric column.

    Returns:
        one row per contrast, muscle and metric: ``unit`` (what the test's observations are), ``replicates``,
        ``subjects``, ``mean`` (arm - reference; |RVD| for RVD), ``ci_lower/upper`` (95 %), ``ci90_lower/upper``,
        ``p_difference`` with ``p_difference_holm`` (Holm over the whole table), ``p_equivalence`` (TOST) with
        ``p_equivalence_holm``, and ``verdict``: ``different`` (Holm p < 0.05), ``equivalent`` (TOST Holm p < 0.05),
        else ``inconclusive``.
    """
    means = metrics[metrics.side == "mean"]
    arms = set(means.arm)
    rows = []
    for arm, ref in contrasts:
        if arm not in arms or ref not in arms:
            continue
        for muscle in dict.fromkeys(means.muscle):
            for metric, margin in margins.items():
                if metric in means.columns:
                    row = _one_contrast(means, arm, ref, muscle, metric, margin)
                    if row is not None:
                        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["p_difference_holm"] = holm_correction(table.p_difference.to_numpy(dtype=float))
    table["p_equivalence_holm"] = holm_correction(table.p_equivalence.to_numpy(dtype=float))
    table["verdict"] = np.where(
        table.p_difference_holm < 0.05,
        "different",
        np.where(table.p_equivalence_holm < 0.05, "equivalent", "inconclusive"),
    )
    return table
