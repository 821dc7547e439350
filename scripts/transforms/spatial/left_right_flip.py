"""Random mirror along the patient's left-right axis (found from the affine), left/right label values swapped."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, ensure_tuple
from scripts.labels import LEFT_RIGHT_SWAP
from scripts.transforms.geometry import as_spatial_tensor, left_right_axis, ras_affine
from scripts.transforms.parameters import parse_probability

__all__ = ["RandLeftRightFlip", "RandLeftRightFlipd"]

logger = logging.getLogger(__name__)


def _swap_labels(label: torch.Tensor, swap: Mapping[int, int]) -> torch.Tensor:
    if label.shape[0] > 1:
        # One-hot / multi-channel label: channel c holds class c, so swapping classes permutes channels.
        perm = [swap.get(c, c) for c in range(label.shape[0])]
        return label[perm]
    if label.numel() == 0:
        return label
    values = label.long()
    size = int(max(values.max().item(), max(swap), max(swap.values()))) + 1
    lut = torch.arange(size, dtype=torch.long)
    for src, dst in swap.items():
        lut[src] = dst
    if values.min() < 0:
        raise ValueError(f"label values must be >= 0 for the left-right swap, got minimum {values.min().item()}")
    return lut[values].to(label.dtype)


class RandLeftRightFlip(RandomizableTransform):
    """Random mirror along the patient's left-right axis, with left/right label values swapped.

    The array axis to flip is the one closest to world x (from the affine; LPS or RAS, any permutation), so the
    anatomy is mirrored about the volume's mid-plane across the patient's left-right direction. The affine is kept:
    what was the left psoas becomes a right psoas at the mirrored position, so label values are swapped through
    ``label_swap`` (default ``LEFT_RIGHT_SWAP``) when the input is a label map.

    Args:
        prob: probability of flipping, in [0, 1].
        label_swap: value -> value map applied to label inputs (values absent from it are kept); for a
            multi-channel (one-hot) label the channels are permuted instead.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, prob: float = 0.5, label_swap: Mapping[int, int] | None = None) -> None:
        RandomizableTransform.__init__(self, parse_probability(prob))
        self.label_swap = dict(LEFT_RIGHT_SWAP if label_swap is None else label_swap)

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)

    def __call__(self, img: Any, is_label: bool = False, randomize: bool = True) -> torch.Tensor:
        """Flip ``img`` (C, X, Y, Z); ``is_label`` swaps left/right label values as well."""
        img_t = as_spatial_tensor(img, type(self).__name__)
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img_t
        axis = left_right_axis(ras_affine(img_t))
        out = torch.flip(img_t.as_tensor() if isinstance(img_t, MetaTensor) else img_t, dims=(axis + 1,))
        if is_label:
            out = _swap_labels(out, self.label_swap)
        logger.debug("RandLeftRightFlip: flipped array axis %d (label=%s)", axis, is_label)
        return convert_to_dst_type(out, img_t, dtype=img_t.dtype)[0]


class RandLeftRightFlipd(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandLeftRightFlip`: all keys flipped together, label keys swapped.

    Args:
        keys: keys to flip, e.g. ``["image", "label"]``.
        label_keys: the subset of ``keys`` holding label maps (their left/right values are swapped).
        prob: probability of flipping, in [0, 1].
        label_swap: value -> value map (default ``LEFT_RIGHT_SWAP``).
        allow_missing_keys: do not raise when a key is missing.
    """

    backend = RandLeftRightFlip.backend

    def __init__(
        self,
        keys: KeysCollection,
        label_keys: KeysCollection = ("label",),
        prob: float = 0.5,
        label_swap: Mapping[int, int] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, parse_probability(prob))
        self.label_keys = ensure_tuple(label_keys)
        missing = [k for k in self.label_keys if k not in self.keys]
        if missing:
            raise ValueError(
                f"label_keys must be a subset of keys {list(self.keys)}, not {list(self.label_keys)} "
                f"(missing {missing})"
            )
        self.flipper = RandLeftRightFlip(prob=1.0, label_swap=label_swap)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandLeftRightFlipd:
        super().set_random_state(seed, state)
        self.flipper.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            if self._do_transform:
                d[key] = self.flipper(d[key], is_label=key in self.label_keys, randomize=False)
            else:
                d[key] = as_spatial_tensor(d[key], type(self).__name__)
        return d
