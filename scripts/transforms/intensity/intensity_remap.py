"""Random piecewise-linear intensity remapping: monotonic, inverted or non-monotonic contrast."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor
from scripts.transforms.dictionary import RandSharedDrawd
from scripts.transforms.parameters import parse_probability

__all__ = ["RandIntensityRemap", "RandIntensityRemapd"]

logger = logging.getLogger(__name__)


class RandIntensityRemap(RandomizableTransform):
    """Random piecewise-linear remapping of intensities, optionally inverted or non-monotonic.

    Knots are evenly spaced over each channel's intensity range [min, max]; their output levels (in [0, 1]) are
    drawn per call and scaled back to the channel's range, so the range is kept. (Evenly spaced rather than at
    quantiles: with a large dark background, quantile knots crowd into the noise floor and amplify it.) With
    probability ``invert_prob`` the curve decreases (contrast inversion: bright becomes dark, the background
    too), with ``non_monotonic_prob`` the levels are unordered, otherwise it is a random monotonic remap.
    Why: the network should not rely on in-phase contrast alone, so that it copes with water, fat-suppressed or
    other vendors' images (docs/design.md: "randomised contrast").

    Args:
        prob: probability of remapping, in [0, 1].
        num_control_points: number of knots (integer >= 3).
        invert_prob: probability that the curve is inverted (in [0, 1]).
        non_monotonic_prob: probability that the curve is non-monotonic (in [0, 1]; sum with invert_prob <= 1).
        dtype: output dtype (default float32).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        prob: float = 0.1,
        num_control_points: int = 6,
        invert_prob: float = 0.2,
        non_monotonic_prob: float = 0.1,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        RandomizableTransform.__init__(self, parse_probability(prob))
        if not isinstance(num_control_points, int) or isinstance(num_control_points, bool) or num_control_points < 3:
            raise ValueError(f"num_control_points must be an integer >= 3, not {num_control_points!r}")
        self.invert_prob = parse_probability(invert_prob, "invert_prob")
        self.non_monotonic_prob = parse_probability(non_monotonic_prob, "non_monotonic_prob")
        if self.invert_prob + self.non_monotonic_prob > 1.0:
            raise ValueError(f"invert_prob + non_monotonic_prob must be <= 1, not {invert_prob} + {non_monotonic_prob}")
        self.num_control_points = num_control_points
        self.dtype = dtype
        self.levels: np.ndarray | None = None
        self.kind = "monotonic"

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        k = self.num_control_points
        u = self.R.rand()
        inner = np.sort(self.R.uniform(0.0, 1.0, k - 2))
        levels = np.concatenate([[0.0], inner, [1.0]])
        if u < self.invert_prob:
            self.kind, levels = "inverted", 1.0 - levels
        elif u < self.invert_prob + self.non_monotonic_prob:
            self.kind, levels = "non_monotonic", self.R.uniform(0.0, 1.0, k)
        else:
            self.kind = "monotonic"
        self.levels = levels
        logger.debug("RandIntensityRemap draw: kind=%s levels=%s", self.kind, levels.round(4).tolist())

    def _remap_channel(self, v: np.ndarray) -> np.ndarray:
        lo, hi = float(v.min()), float(v.max())
        if hi <= lo:
            return v
        knots = np.linspace(lo, hi, self.num_control_points)
        return (lo + (hi - lo) * np.interp(v, knots, np.asarray(self.levels))).astype(v.dtype, copy=False)

    def __call__(self, img: Any, randomize: bool = True) -> torch.Tensor:
        """Remap ``img`` (C, ...) channel by channel; the affine and metadata are kept."""
        img_t = convert_to_tensor(img, track_meta=get_track_meta(), dtype=self.dtype)
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img_t
        if self.levels is None:
            raise RuntimeError("RandIntensityRemap: no parameters drawn yet; call randomize() first")
        arr = (img_t.as_tensor() if isinstance(img_t, MetaTensor) else img_t).detach().cpu().numpy()
        out = np.stack([self._remap_channel(c) for c in arr]) if arr.shape[0] else arr
        return convert_to_dst_type(out, img_t, dtype=self.dtype)[0]


class RandIntensityRemapd(RandSharedDrawd):
    """Dictionary version of :class:`RandIntensityRemap` (one draw for all keys; use on images only)."""

    backend = RandIntensityRemap.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.1,
        num_control_points: int = 6,
        invert_prob: float = 0.2,
        non_monotonic_prob: float = 0.1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys, prob, RandIntensityRemap(1.0, num_control_points, invert_prob, non_monotonic_prob), allow_missing_keys
        )
