"""Synthetic lumbar Dixon MRI phantom with exact ground truth (labels, voxel-wise FF, per-muscle mean FF).

Importable API::

    from scripts.phantom import Acquisition, generate_subject, write_subject, generate_cohort
    subj = generate_subject(seed=1, acquisition=Acquisition.preset("tiny"))
    subj.images["inphase"], subj.images["label"], subj.affine, subj.truth
    full = generate_subject(seed=1, acquisition=Acquisition.preset("tiny"), anatomy="complete")
    full.images["tissue"], full.images["vertebrae"]  # tissue ids (TISSUE_IDS) and vertebral labels 9-14

Command line: ``python -m scripts.phantom --help``.
"""

from __future__ import annotations

from scripts.phantom.acquisition import FOV_MM, PRESETS, Acquisition
from scripts.phantom.anatomy_complete import ANATOMIES
from scripts.phantom.cohort import generate_cohort, random_acquisition
from scripts.phantom.generate import IMAGE_KEYS, PhantomSubject, generate_subject, write_subject
from scripts.phantom.population import (
    ACTIVITY_LEVELS,
    EFFECTS,
    PAPER_REFERENCE,
    Participant,
    draw_muscle_ff,
    draw_participant,
)
from scripts.phantom.tissue_ids import TISSUE_IDS, VERTEBRA_LABELS

__all__ = [
    "Acquisition",
    "FOV_MM",
    "PRESETS",
    "IMAGE_KEYS",
    "PhantomSubject",
    "generate_subject",
    "write_subject",
    "generate_cohort",
    "random_acquisition",
    "ACTIVITY_LEVELS",
    "EFFECTS",
    "PAPER_REFERENCE",
    "Participant",
    "draw_participant",
    "draw_muscle_ff",
    "ANATOMIES",
    "TISSUE_IDS",
    "VERTEBRA_LABELS",
]
