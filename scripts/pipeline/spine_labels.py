"""The spine network's classes, on the input grid, named and written into the muscle label map (values 9-14).

Runs after ``InvertedArgmaxd`` has brought both the muscle probabilities and the spine probabilities
(:class:`scripts.pipeline.spine_network.SpineSegmentd`) back to the input grid as label maps, and before the
largest-component step. The bodies are named by counting up from the sacrum
(:func:`scripts.quantification.vertebra_naming.count_bodies_from_sacrum`); a muscle voxel is never overwritten (the
psoas lies against the bodies: where the two networks both claim a voxel the muscle network's label stands). The
naming record goes where the 15-output model's goes (``vertebra_naming``; the FF table's JSON ``levels.naming``).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.labels import NUM_CLASSES
from scripts.pipeline.keys import SPINE_KEY, VERTEBRA_NAMING_KEY
from scripts.pipeline.lowest_vertebra import StatedLowestVertebra
from scripts.quantification.vertebra_naming import count_bodies_from_sacrum

__all__ = ["MergeSpineLabelsd"]

logger = logging.getLogger(__name__)


class MergeSpineLabelsd(MapTransform):
    """Write the counted vertebral bodies and the sacrum into the muscle label map.

    Args:
        keys: the label key(s): ``(1, X, Y, Z)`` muscle labels 0-8 (MetaTensor with the input grid's affine).
        spine_key: ``(1, X, Y, Z)`` spine classes 0/1/2 on the same grid; removed after the merge. Entries without it
            (no spine network in this run) pass unchanged.
        min_piece_share: see :func:`~scripts.quantification.vertebra_naming.count_bodies_from_sacrum`.
        lowest_vertebra: the lowest lumbar body in the field of view as the user knows it (``"L1"`` ... ``"L5"``;
            inference.json's ``lowest_vertebra``), or a :class:`~scripts.pipeline.lowest_vertebra.StatedLowestVertebra`
            (per subject, from participants.tsv): the bodies are counted up from it where the sacrum cannot anchor
            them (a scan of L2-L5); None: from the sacrum only.
        allow_missing_keys: with True, missing label keys are skipped.

    Raises:
        ValueError: an unknown ``lowest_vertebra`` (at construction); the two maps are not on one grid, or the label
            map already holds vertebral values (a 15-output model: its own bodies would be mixed with the spine
            network's).
    """

    def __init__(
        self,
        keys: KeysCollection,
        spine_key: str = SPINE_KEY,
        min_piece_share: float = 0.1,
        lowest_vertebra: str | StatedLowestVertebra | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if not 0.0 <= min_piece_share < 1.0:
            raise ValueError(f"min_piece_share must be in [0, 1), got {min_piece_share}")
        self.stated = StatedLowestVertebra.of(lowest_vertebra)
        self.spine_key = spine_key
        self.min_piece_share = min_piece_share
        self.lowest_vertebra = self.stated.default

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.spine_key not in d:
            return d
        spine = d.pop(self.spine_key)
        for key in self.key_iterator(d):
            label = d[key]
            if tuple(label.shape) != tuple(spine.shape):
                raise ValueError(
                    f"{key!r} {tuple(label.shape)} and {self.spine_key!r} {tuple(spine.shape)} are not on one grid"
                )
            if float(label.max()) >= NUM_CLASSES:
                raise ValueError(
                    f"{key!r} already holds vertebral labels (value {int(label.max())}): a 15-output model needs no "
                    "spine network (vertebral_outputs false)"
                )
            affine = np.asarray(torch.as_tensor(label.affine).cpu().numpy(), dtype=np.float64)
            sp = np.rint(torch.as_tensor(spine).cpu().numpy()[0]).astype(np.uint8)
            lowest = self.stated.for_entry(d)
            vertebrae, record = count_bodies_from_sacrum(sp, affine, self.min_piece_share, lowest)
            lab = torch.as_tensor(label)
            vert = torch.as_tensor(vertebrae, dtype=lab.dtype, device=lab.device)[None]
            merged = label.clone()
            merged.copy_(torch.where(lab == 0, vert, lab))
            d[key] = merged
            d[VERTEBRA_NAMING_KEY] = {**record.to_meta(), "source": "spine network"}
            if record.status == "counted":
                logger.info("vertebral bodies from the spine network, %s", record.to_meta()["rule"])
            else:
                logger.info("vertebral bodies from the spine network %s: %s", record.status, "; ".join(record.reasons))
        return d
