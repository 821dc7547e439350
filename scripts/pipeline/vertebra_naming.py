"""The label map's vertebral bodies named by counting up from the sacrum (a 15-output model's label map)."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from scripts.labels import VERTEBRAL_LABELS
from scripts.pipeline.keys import VERTEBRA_NAMING_KEY
from scripts.pipeline.lowest_vertebra import StatedLowestVertebra
from scripts.quantification.vertebra_naming import NamingResult, name_bodies_from_sacrum

__all__ = ["NameVertebraeFromSacrum", "NameVertebraeFromSacrumd"]

logger = logging.getLogger(__name__)


class NameVertebraeFromSacrum(Transform):
    """Array version: a ``(1, X, Y, Z)`` label MetaTensor (with its affine) in, the renamed one out.

    :func:`scripts.quantification.vertebra_naming.name_bodies_from_sacrum` on the label map; a map without vertebral
    body labels (the 9-output model) is returned as it is, without a copy. The record of the last call is
    ``last_result``.

    Args:
        min_piece_share: a body piece under this share of the largest is a speck.
        lowest_vertebra: the lowest lumbar body in the field of view as the user knows it (``"L1"`` ... ``"L5"``),
            the anchor where the sacrum cannot be one; None: the sacrum only.
    """

    backend = ["torch", "numpy"]

    def __init__(self, min_piece_share: float = 0.1, lowest_vertebra: str | None = None) -> None:
        if not 0.0 <= min_piece_share < 1.0:
            raise ValueError(f"min_piece_share must be in [0, 1), got {min_piece_share}")
        self.min_piece_share = min_piece_share
        self.lowest_vertebra = StatedLowestVertebra(lowest_vertebra).default
        self.last_result: NamingResult | None = None

    def __call__(self, img: Any, lowest_vertebra: str | None = None) -> Any:
        """``lowest_vertebra``: this image's stated lowest body, in place of the one given at construction."""
        if img.ndim != 4 or img.shape[0] != 1:
            raise ValueError(f"expected a (1, X, Y, Z) label map, got shape {tuple(img.shape)}")
        self.last_result = None
        if float(img.max()) < min(VERTEBRAL_LABELS):
            return img
        arr = np.rint(img.detach().cpu().numpy()[0]).astype(np.int16)
        affine = np.asarray(img.affine.detach().cpu().numpy(), dtype=np.float64)
        lowest = lowest_vertebra or self.lowest_vertebra
        out, self.last_result = name_bodies_from_sacrum(arr, affine, self.min_piece_share, lowest)
        if self.last_result.status != "renamed":
            return img
        renamed = img.clone()
        renamed[0] = torch.as_tensor(out, dtype=img.dtype)
        return renamed


class NameVertebraeFromSacrumd(MapTransform):
    """Dictionary version of :class:`NameVertebraeFromSacrum`; runs before the largest-component step (two bodies
    given one name are two pieces of one label until renamed). Adds ``vertebra_naming`` (the record) when the map
    holds vertebral bodies; the per-level step puts it into the FF table's JSON (``levels.naming``)."""

    backend = NameVertebraeFromSacrum.backend

    def __init__(
        self,
        keys: KeysCollection,
        min_piece_share: float = 0.1,
        lowest_vertebra: str | StatedLowestVertebra | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.stated = StatedLowestVertebra.of(lowest_vertebra)
        self.t = NameVertebraeFromSacrum(min_piece_share, self.stated.default)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.t(d[key], self.stated.for_entry(d))
            result = self.t.last_result
            if result is not None:
                d[VERTEBRA_NAMING_KEY] = result.to_meta()
                if result.renamed:
                    logger.info("vertebral bodies %s: %s", result.to_meta()["rule"], ", ".join(result.renamed))
        return d
