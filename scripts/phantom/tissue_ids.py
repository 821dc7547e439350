"""Tissue ids of the anatomy-complete phantom: one integer per drawn structure, and the vertebral label map.

The ``complete`` anatomy (``generate_subject(..., anatomy="complete")``) writes, next to the 0-8 target label map,
a tissue-id map (``<subject>_tissue.nii.gz``) holding the id of the structure that dominates each voxel, and a
vertebral label map (``<subject>_vertebrae.nii.gz``) with docs/design.md's values 9-14. The ids are chosen so that:

- 1-8 are the target muscles with the bundle's label values (``scripts.labels``): every labelled voxel carries its
  muscle's id, so ``tissue[label > 0] == label[label > 0]``;
- 9-14 are the vertebral bodies L1-L5 and the sacrum with docs/design.md's vertebral-context values, so the vertebral
  label map is the tissue map restricted to 9-14;
- unlabelled structures use 15 and above; paired ones have a left and a right id (left = patient left, negative
  RAS x).

The table is repeated in docs/guides/phantom.md ("Anatomy-complete phantom"); change both together.
"""

from __future__ import annotations

import numpy as np
from scripts.labels import LABELS, VERTEBRAL_LABELS

__all__ = ["TISSUE_IDS", "TISSUE_NAMES", "VERTEBRA_LABELS", "tissue_id", "vertebral_labels"]

_UNLABELLED: dict[int, str] = {
    15: "vertebral_body_T12",
    16: "vertebral_body_T11",
    17: "intervertebral_disc",
    18: "pedicle",
    19: "lamina",
    20: "spinous_process",
    21: "transverse_process",
    22: "articular_process",
    23: "spinal_canal_csf",
    24: "epidural_fat",
    25: "iliac_bone",
    26: "femoral_head",
    27: "rib",
    30: "skin",
    31: "subcutaneous_fat",
    32: "extraperitoneal_fat",
    33: "muscle_fascia",
    34: "perirenal_fat",
    35: "renal_sinus_fat",
    40: "rectus_abdominis_left",
    41: "rectus_abdominis_right",
    42: "external_oblique_left",
    43: "external_oblique_right",
    44: "internal_oblique_left",
    45: "internal_oblique_right",
    46: "transversus_abdominis_left",
    47: "transversus_abdominis_right",
    48: "latissimus_dorsi_left",
    49: "latissimus_dorsi_right",
    50: "serratus_posterior_inferior_left",
    51: "serratus_posterior_inferior_right",
    52: "diaphragm_crus_left",
    53: "diaphragm_crus_right",
    54: "gluteus_maximus_left",
    55: "gluteus_maximus_right",
    56: "gluteus_medius_left",
    57: "gluteus_medius_right",
    58: "diaphragm",
    60: "aorta",
    61: "inferior_vena_cava",
    62: "common_iliac_artery_left",
    63: "common_iliac_artery_right",
    64: "common_iliac_vein_left",
    65: "common_iliac_vein_right",
    70: "kidney_left",
    71: "kidney_right",
    72: "liver",
    73: "spleen",
    74: "lung_left",
    75: "lung_right",
    80: "bowel_wall",
    81: "bowel_fluid",
    82: "bowel_gas",
    83: "bowel_fatty_content",
    84: "mesenteric_fat",
}

#: docs/design.md's vertebral-context values (never change them; the one table is scripts.labels).
VERTEBRA_LABELS: dict[int, str] = dict(VERTEBRAL_LABELS)

#: id -> structure name (0 background, 1-8 target muscles, 9-14 vertebral context, 15+ unlabelled tissue).
TISSUE_IDS: dict[int, str] = {**LABELS, **VERTEBRA_LABELS, **_UNLABELLED}
#: structure name -> id.
TISSUE_NAMES: dict[str, int] = {v: k for k, v in TISSUE_IDS.items()}


def tissue_id(name: str) -> int:
    """Id of structure ``name`` (a key of ``TISSUE_NAMES``); raises KeyError naming the unknown structure."""
    try:
        return TISSUE_NAMES[name]
    except KeyError:
        raise KeyError(f"unknown phantom structure {name!r}; see scripts.phantom.tissue_ids.TISSUE_IDS") from None


def vertebral_labels(tissue: np.ndarray) -> np.ndarray:
    """The vertebral label map (uint8, same shape): 9-13 vertebral bodies L1-L5, 14 sacrum, 0 elsewhere."""
    return np.where((tissue >= 9) & (tissue <= 14), tissue, 0).astype(np.uint8)
