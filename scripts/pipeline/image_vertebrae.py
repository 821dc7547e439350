"""Vertebral bodies from the FF map, named from the stated lowest body, where no network named any.

Runs after :class:`scripts.pipeline.fat_fraction_map.FatFractionMapd` (it needs the FF map) and before the
statistics, the levels and the verdict, which then see the bodies as they see a spine network's. It acts only when
the label map holds no named body (9-13: the spine network missed the bodies, named none, or is not installed) and a
lowest lumbar body is stated for the subject (inference.json ``lowest_vertebra`` or participants.tsv): the FF map
shows no sacrum to count from, so without a statement nothing is named
(:func:`scripts.quantification.image_vertebrae.vertebrae_from_image`). A muscle voxel is never overwritten. The
naming record (``vertebra_naming``; the FF JSON's ``levels.naming``) says ``source: "FF map"`` and keeps what the
spine network did under ``spine_network``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.grid import map_labels_to_grid
from scripts.label_values import present_values
from scripts.pipeline.keys import FF_KEY, IMAGE_SPINE_KEY, LABEL_ON_FF_GRID_KEY, SCAN_INFO_KEY, VERTEBRA_NAMING_KEY
from scripts.pipeline.label_map import label_and_affine
from scripts.pipeline.lowest_vertebra import StatedLowestVertebra
from scripts.quantification.image_vertebrae import IMAGE_SOURCE, vertebrae_from_image
from scripts.quantification.levels import SACRUM_VALUE

__all__ = ["VertebraeFromFFMapd"]

logger = logging.getLogger(__name__)

_BODY_VALUES = list(range(9, SACRUM_VALUE))


class VertebraeFromFFMapd(MapTransform):
    """Write the bodies found in the FF map and named from the stated lowest body into the label map (9-13).

    Args:
        keys: the label key: ``(1, X, Y, Z)`` MetaTensor on the input grid (muscles 1-8, maybe vertebral labels).
        lowest_vertebra: ``"L1"`` ... ``"L5"``, or a :class:`~scripts.pipeline.lowest_vertebra.StatedLowestVertebra`
            (per subject); None: nothing is named.
        enabled: False passes every entry through (inference.json: off with ``vertebral_outputs false``).
        allow_missing_keys: with True, missing label keys are skipped.
    """

    def __init__(
        self,
        keys: KeysCollection,
        lowest_vertebra: str | StatedLowestVertebra | None = None,
        enabled: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.stated = StatedLowestVertebra.of(lowest_vertebra)
        self.enabled = bool(enabled)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if not self.enabled or FF_KEY not in d:
            return d
        lowest = self.stated.for_entry(d)
        if lowest is None:
            return d
        ffr = d[FF_KEY]
        subject = json.loads(d[SCAN_INFO_KEY])["subject"] if SCAN_INFO_KEY in d else "subject"
        for key in self.key_iterator(d):
            label, label_affine = label_and_affine(d[key])
            if np.isin(label, _BODY_VALUES).any():
                continue  # a network named the bodies
            on_ff = d.get(LABEL_ON_FF_GRID_KEY)
            vertebrae, record, spine = vertebrae_from_image(ffr.ff * 100.0, ffr.affine, lowest)
            meta = {**record.to_meta(), "source": IMAGE_SOURCE}
            network = d.get(VERTEBRA_NAMING_KEY)
            if network is not None:
                meta["spine_network"] = network
            d[VERTEBRA_NAMING_KEY] = meta
            if record.status != "counted":
                if spine is not None:
                    d[IMAGE_SPINE_KEY] = spine  # the verdict judges the sides against these bodies, unnamed
                logger.info("%s: vertebral bodies from the FF map not named: %s", subject, "; ".join(record.reasons))
                continue
            if on_ff is not None:
                d[LABEL_ON_FF_GRID_KEY] = np.where(on_ff == 0, vertebrae, on_ff).astype(on_ff.dtype)
            mapped = map_labels_to_grid(vertebrae, ffr.affine, label.shape, label_affine)
            lab = torch.as_tensor(d[key])
            vert = torch.as_tensor(mapped, dtype=lab.dtype, device=lab.device)[None]
            merged = d[key].clone()
            merged.copy_(torch.where(lab == 0, vert, lab))
            d[key] = merged
            names = sorted({int(v) for v in present_values(vertebrae)} - {0})
            logger.info(
                "%s: vertebral bodies %s found in the FF map and %s",
                subject,
                ", ".join(f"L{v - 8}" for v in names),
                meta["rule"],
            )
        return d
