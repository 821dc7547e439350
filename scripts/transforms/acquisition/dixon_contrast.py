"""Random image contrast synthesised from a Dixon water and fat pair (any weighted sum, or opposed phase)."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import RandomizableTransform
from monai.utils import convert_to_dst_type, ensure_tuple
from scripts.transforms.dictionary import RandSharedDrawd
from scripts.transforms.geometry import as_spatial_tensor
from scripts.transforms.parameters import parse_probability

__all__ = ["DIXON_CONTRASTS", "RandDixonContrast", "RandDixonContrastd"]

logger = logging.getLogger(__name__)


#: contrast kind -> (range of the water weight, range of the fat weight) of ``w_water * W + w_fat * F``;
#: ``"opposed"`` is ``|W - F|`` (2-point Dixon opposed-phase magnitude). Muscle/fat signal ratios for muscle FF
#: 0.1-0.2 (pure fat = 1): fat 0.1-0.2, fat_bright 0.2-0.7 (T1- or fast-spin-echo T2-weighted look),
#: in_phase about 1 (the training default), water 3-15 (fat dark).
DIXON_CONTRASTS: dict[str, tuple[tuple[float, float], tuple[float, float]] | None] = {
    "fat": ((0.0, 0.1), (1.0, 1.0)),
    "fat_bright": ((0.1, 0.7), (1.0, 1.0)),
    "in_phase": ((0.8, 1.25), (1.0, 1.0)),
    "water": ((1.0, 1.0), (0.0, 0.3)),
    "opposed": None,
}


class RandDixonContrast(RandomizableTransform):
    """Random image contrast synthesised from a Dixon water and fat pair.

    One kind is drawn from ``kinds`` (see :data:`DIXON_CONTRASTS`) and its weights uniformly from the kind's
    ranges; the output is ``w_water * water + w_fat * fat`` or, for ``"opposed"``, ``|water - fat|``. Water and
    fat must be magnitude images on the same scale (as a Dixon reconstruction writes them); the output is on that
    scale too, so normalise intensities afterwards (e.g. ``ScaleIntensityRangePercentilesd``).

    Args:
        prob: probability of synthesising a contrast, in [0, 1]; otherwise ``__call__`` returns ``None`` and the
            caller keeps its image.
        kinds: contrast kinds to draw from, with equal probability (names of :data:`DIXON_CONTRASTS`).
    """

    def __init__(self, prob: float = 0.5, kinds: Sequence[str] = tuple(DIXON_CONTRASTS)) -> None:
        RandomizableTransform.__init__(self, parse_probability(prob))
        kinds = tuple(ensure_tuple(kinds))
        unknown = [k for k in kinds if k not in DIXON_CONTRASTS]
        if not kinds or unknown:
            raise ValueError(f"kinds must be a non-empty subset of {sorted(DIXON_CONTRASTS)}, not {kinds!r}")
        self.kinds = kinds
        self.kind = kinds[0]
        self.weights = (1.0, 1.0)

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        self.kind = self.kinds[self.R.randint(len(self.kinds))]
        ranges = DIXON_CONTRASTS[self.kind]
        if ranges is not None:
            self.weights = (float(self.R.uniform(*ranges[0])), float(self.R.uniform(*ranges[1])))
        logger.debug("RandDixonContrast draw: kind=%s weights=%s", self.kind, self.weights)

    def __call__(self, water: Any, fat: Any, randomize: bool = True) -> torch.Tensor | None:
        """Mix ``water`` and ``fat`` (C, X, Y, Z), same shape; ``None`` when this call does not transform.

        The result carries the water image's metadata (affine) and is float32.
        """
        w = as_spatial_tensor(water, type(self).__name__)
        f = as_spatial_tensor(fat, type(self).__name__)
        if w.shape != f.shape:
            raise ValueError(f"RandDixonContrast: water {tuple(w.shape)} and fat {tuple(f.shape)} differ in shape")
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return None
        wa = (w.as_tensor() if isinstance(w, MetaTensor) else w).to(torch.float32)
        fa = (f.as_tensor() if isinstance(f, MetaTensor) else f).to(torch.float32)
        out = (wa - fa).abs() if self.kind == "opposed" else self.weights[0] * wa + self.weights[1] * fa
        return convert_to_dst_type(out, w, dtype=torch.float32)[0]


class RandDixonContrastd(RandSharedDrawd):
    """Dictionary version of :class:`RandDixonContrast`: replaces ``keys`` (the network image) by a water/fat mix.

    When the water or the fat key is missing (a datalist with one image per subject), the image is left as it is,
    so the same training configuration serves single-contrast datalists.

    Args:
        keys: the image key(s) to replace (normally one, e.g. ``"image"``).
        water_key: key of the water image, same grid as the image.
        fat_key: key of the fat image.
        prob: probability of replacing, in [0, 1].
        kinds: contrast kinds to draw from (see :data:`DIXON_CONTRASTS`).
    """

    def __init__(
        self,
        keys: KeysCollection,
        water_key: str = "water",
        fat_key: str = "fat",
        prob: float = 0.5,
        kinds: Sequence[str] = tuple(DIXON_CONTRASTS),
    ) -> None:
        super().__init__(keys, prob, RandDixonContrast(1.0, kinds), allow_missing_keys=True)
        self.water_key, self.fat_key = water_key, fat_key

    @property
    def mixer(self) -> RandDixonContrast:
        """The array transform holding the last draw (kind and weights)."""
        return self.inner

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform or self.water_key not in d or self.fat_key not in d:
            return d
        mixed = self.inner(d[self.water_key], d[self.fat_key], randomize=False)
        for key in self.key_iterator(d):
            d[key] = mixed.clone()
        return d
