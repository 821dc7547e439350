"""Shared cases of the normative tests: the paper's quartiles, a synthetic cohort, a hand-made reference."""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scripts.labels import MUSCLES
from scripts.normative.building import build_reference

#: The paper's median (IQR), FF % (BMC Med Imaging 2026, abstract).
PAPER = {
    "erector_spinae_multifidus": (17.4, 21.8, 26.9),
    "quadratus_lumborum": (14.9, 18.0, 22.2),
    "psoas": (10.5, 13.4, 16.3),
    "iliacus": (9.5, 11.6, 13.8),
}
#: Log-normal quartile fit: largest |fitted - published| quartile over the 4 muscles is 0.396 FF points (psoas Q3).
LOGNORMAL_QUARTILE_TOL_PCT = 0.5


def cohort_table(n: int = 160, seed: int = 7) -> pd.DataFrame:
    """Long cohort table (left/right rows only): FF rises with age, women higher, right-skewed noise."""
    rng = np.random.default_rng(seed)
    subjects = [f"S{i:03d}" for i in range(n)]
    sex = rng.choice(["F", "M"], n)
    age = rng.uniform(20, 70, n).round(1)
    activity = rng.choice(["sedentary", "active"], n, p=[0.8, 0.2])
    base = {"psoas": 8.0, "iliacus": 7.0, "quadratus_lumborum": 11.0, "erector_spinae_multifidus": 13.0}
    rows = []
    for i, s in enumerate(subjects):
        for muscle in MUSCLES:
            mean = (base[muscle] + 0.12 * age[i] + (2.0 if sex[i] == "F" else 0.0)) * math.exp(rng.normal(0, 0.2))
            for side, delta in (("left", -0.3), ("right", 0.3)):
                rows.append(
                    {
                        "subject": s,
                        "muscle": muscle,
                        "side": side,
                        "ff_mean_pct": mean + delta,
                        "sex": sex[i],
                        "age": age[i],
                        "activity": activity[i],
                        "bmi": 24.0,
                    }
                )
    return pd.DataFrame(rows)


@functools.cache
def built_reference() -> dict[str, Any]:
    """The reference built from :func:`cohort_table`, once per session (several test modules share it)."""
    # Curves only on the pooled stratum (n = 160 >= 150) keep the tests fast.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_reference(
            cohort_table(),
            min_n=20,
            reference_id="test_cohort",
            version="0.1.0",
            description="synthetic test cohort",
            age_centile_min_n=150,
        )


def find_stratum(ref: dict[str, Any], sex: str = "all", age_band: str = "all", activity: str = "all") -> dict[str, Any]:
    for s in ref["strata"]:
        if (s["sex"], s["age_band"], s["activity"]) == (sex, age_band, activity):
            return s
    raise KeyError((sex, age_band, activity))


def mini_reference(**extra_strata: Any) -> dict[str, Any]:
    """Hand-made reference: pooled, female, male, female 30-39, small 'active' stratum."""

    def muscles(shift: float) -> dict[str, Any]:
        return {m: {"p25": q1 + shift, "p50": md + shift, "p75": q3 + shift} for m, (q1, md, q3) in PAPER.items()}

    return {
        "format_version": "1.0",
        "reference_id": "mini",
        "version": "1",
        "source": {"citation": "test", "doi": None},
        "n": 100,
        "population": {"healthy": True, "age_range_years": [20, 70]},
        "ff_definition": {"statistic": "mean F/(F+W)", "is_pdff": False},
        "side": "lr_mean",
        "strata": [
            {"sex": "all", "age_band": "all", "activity": "all", "n": 100, "muscles": muscles(0.0)},
            {"sex": "female", "age_band": "all", "activity": "all", "n": 50, "muscles": muscles(1.0)},
            {"sex": "male", "age_band": "all", "activity": "all", "n": 50, "muscles": muscles(-1.0)},
            {"sex": "female", "age_band": "30-39", "activity": "all", "n": 25, "muscles": muscles(2.0)},
            {
                "sex": "all",
                "age_band": "all",
                "activity": "active",
                "n": 8,
                "small_stratum": True,
                "muscles": muscles(-3.0),
            },
        ],
    }
