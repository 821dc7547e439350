"""Who the phantom subjects are: participants (sex, age, activity, BMI) and their muscle fat fractions.

The FF model is log-normal with fixed effects chosen so that a large cohort reproduces the paper's per-muscle
medians and IQRs (BMC Medical Imaging 2026, 173 healthy adults; L/R mean, whole muscle, percent):

==========================  ======  ============
muscle                      median  IQR
==========================  ======  ============
erector_spinae_multifidus   21.8    17.4 - 26.9
quadratus_lumborum          18.0    14.9 - 22.2
psoas                       13.4    10.5 - 16.3
iliacus                     11.6     9.5 - 13.8
==========================  ======  ============

``log FF = log(median_m) + b_sex * (female - 0.5) + b_age * (age - 45) / 10 + b_act * (activity - 1.5) + u + e_m``
with a subject effect ``u`` shared by all muscles (fatty people are fatty everywhere), a muscle-specific term
``e_m`` and a small side term. Effect sizes (``EFFECTS``): women +20 % (Crawford 2016, Si 2023 report 15-30 %),
+7 % per decade of age, -9 % per step of the four activity classes (inactive, moderately inactive, moderately
active, active: the GPPAQ index of the authors' code). The residual SD is what is left of the paper's IQR once
these covariates (sex 50/50, age uniform 20-70, activity uniform) are accounted for, so the marginal distribution
matches the paper. Centring the covariates makes the cohort median equal the paper's median.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scripts.labels import MUSCLES, SIDES

__all__ = ["PAPER_REFERENCE", "EFFECTS", "ACTIVITY_LEVELS", "Participant", "draw_participant", "draw_muscle_ff"]

#: muscle -> (Q1, median, Q3) FF in percent, the paper's normative cohort.
PAPER_REFERENCE: dict[str, tuple[float, float, float]] = {
    "erector_spinae_multifidus": (17.4, 21.8, 26.9),
    "quadratus_lumborum": (14.9, 18.0, 22.2),
    "psoas": (10.5, 13.4, 16.3),
    "iliacus": (9.5, 11.6, 13.8),
}
ACTIVITY_LEVELS: tuple[str, ...] = ("inactive", "moderately_inactive", "moderately_active", "active")
#: log-scale fixed effects (see module docstring).
EFFECTS: dict[str, float] = {"female": np.log(1.20), "per_decade": np.log(1.07), "per_activity_step": np.log(0.91)}
_SUBJECT_SHARE = 0.6  # share of the residual log-variance common to all muscles of a subject
_SIDE_SD = 0.05  # log-SD of left/right differences


def _covariate_variance() -> float:
    # sex ~ Bernoulli(0.5): var 0.25; (age-45)/10 with age ~ U(20, 70): var 50^2/12/100; activity ~ U{0..3}: 1.25
    return (
        EFFECTS["female"] ** 2 * 0.25
        + EFFECTS["per_decade"] ** 2 * (50.0**2 / 12 / 100)
        + EFFECTS["per_activity_step"] ** 2 * 1.25
    )


def residual_sd(muscle: str) -> float:
    """Residual log-SD that makes the marginal log-IQR equal the paper's for ``muscle``."""
    q1, _, q3 = PAPER_REFERENCE[muscle]
    total = np.log(q3 / q1) / (2 * 0.6744897501960817)
    # the side term is averaged over two sides in the L/R mean, so it adds _SIDE_SD^2 / 2
    return float(np.sqrt(max(total**2 - _covariate_variance() - _SIDE_SD**2 / 2, 1e-4)))


@dataclass
class Participant:
    """One row of participants.tsv."""

    participant_id: str
    sex: str
    age: int
    activity: str
    bmi: float


def draw_participant(participant_id: str, rng: np.random.Generator) -> Participant:
    """Draw sex (50/50), age (uniform 20-70), activity class (uniform over four) and BMI (sex- and age-dependent)."""
    sex = "F" if rng.random() < 0.5 else "M"
    age = int(rng.integers(20, 71))
    activity = ACTIVITY_LEVELS[int(rng.integers(0, 4))]
    bmi = float(
        np.clip(
            rng.normal(
                24.0 + 0.05 * (age - 45) + (0.8 if sex == "M" else 0.0) - 0.6 * ACTIVITY_LEVELS.index(activity), 3.2
            ),
            17.5,
            38.0,
        )
    )
    return Participant(participant_id, sex, age, activity, round(bmi, 1))


def draw_muscle_ff(p: Participant, rng: np.random.Generator) -> dict[tuple[str, str], float]:
    """Target mean FF (fraction 0-1) per (muscle, side) for participant ``p``."""
    lin = (
        EFFECTS["female"] * ((p.sex == "F") - 0.5)
        + EFFECTS["per_decade"] * (p.age - 45) / 10.0
        + EFFECTS["per_activity_step"] * (ACTIVITY_LEVELS.index(p.activity) - 1.5)
    )
    z_subject = rng.standard_normal()
    out: dict[tuple[str, str], float] = {}
    for m in MUSCLES:
        sd = residual_sd(m)
        u = np.sqrt(_SUBJECT_SHARE) * sd * z_subject + np.sqrt(1 - _SUBJECT_SHARE) * sd * rng.standard_normal()
        centre = np.log(PAPER_REFERENCE[m][1] / 100.0) + lin + u
        for s in SIDES:
            out[(m, s)] = float(np.clip(np.exp(centre + _SIDE_SD * rng.standard_normal()), 0.02, 0.75))
    return out
