"""The dictionary wrapper shared by the intensity and acquisition transforms: one draw for every key.

An array transform built with ``prob=1`` (the "inner" transform) holds the parameters; the wrapper decides
``prob`` once per call, draws the inner parameters once, and applies that one draw to every key, so the water,
fat and network images of one sample always see the same contrast, coil or slab.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from scripts.transforms.geometry import as_spatial_tensor
from scripts.transforms.parameters import parse_probability

__all__ = ["RandSharedDrawd"]


class RandSharedDrawd(RandomizableTransform, MapTransform):
    """One draw of an inner intensity transform (built with ``prob=1``) applied to every key, or none at all.

    Subclasses build ``self.inner``; keys not transformed are still returned as float tensors so the output type
    does not depend on the draw.
    """

    def __init__(
        self, keys: KeysCollection, prob: float, inner: RandomizableTransform, allow_missing_keys: bool = False
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, parse_probability(prob))
        self.inner = inner

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandSharedDrawd:
        super().set_random_state(seed, state)
        self.inner.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if self._do_transform:
            self.inner.randomize(None)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            if self._do_transform:
                d[key] = self.inner(d[key], randomize=False)
            else:
                img_t = as_spatial_tensor(d[key], type(self).__name__)
                d[key] = img_t if img_t.dtype.is_floating_point else img_t.to(torch.float32)
        return d
