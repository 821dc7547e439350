"""Thick-slice simulation along one patient axis: area downsampling, then linear upsampling back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type
from scripts.transforms.dictionary import RandSharedDrawd
from scripts.transforms.geometry import array_axis_of_world_axis, as_spatial_tensor, ras_affine
from scripts.transforms.parameters import parse_probability, parse_range, parse_world_axes

__all__ = ["RandLowResolutionAxis", "RandLowResolutionAxisd"]


class RandLowResolutionAxis(RandomizableTransform):
    """Simulate a thicker slice (lower resolution) along one patient axis: downsample, then upsample back.

    One world axis is picked from ``world_axes`` (mapped to the array axis through the affine) and a factor
    :math:`f \\sim U(f_{min}, f_{max})`; the image is averaged down to ``round(n / f)`` samples along that axis
    (area interpolation, i.e. partial-volume averaging like a thick slice) and interpolated back to ``n``
    (linear). Shape, affine and metadata are unchanged. Use on images only.

    Args:
        prob: probability of applying, in [0, 1].
        factor_range: (low, high) downsampling factor, low >= 1 (2.0 turns 2.6 mm slices into ~5.2 mm).
        world_axes: candidate patient axes, 0 = x (left-right), 1 = y (anterior-posterior), 2 = z (superior-inf.).
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        prob: float = 0.1,
        factor_range: float | Sequence[float] = (1.0, 3.0),
        world_axes: int | Sequence[int] = (0, 1, 2),
    ) -> None:
        RandomizableTransform.__init__(self, parse_probability(prob))
        self.factor_range = parse_range(factor_range, "factor_range", minimum=1.0)
        axes = parse_world_axes(world_axes)
        self.world_axes = axes
        self.world_axis = axes[0]
        self.factor = 1.0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        self.world_axis = self.world_axes[self.R.randint(len(self.world_axes))]
        self.factor = float(self.R.uniform(*self.factor_range))

    def __call__(self, img: Any, randomize: bool = True) -> torch.Tensor:
        """Degrade ``img`` (C, X, Y, Z) along the drawn axis."""
        img_t = as_spatial_tensor(img, type(self).__name__)
        img_t = img_t.to(torch.float32) if not img_t.dtype.is_floating_point else img_t
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img_t
        axis = array_axis_of_world_axis(ras_affine(img_t), self.world_axis)
        size = list(img_t.shape[1:])
        low = max(1, int(round(size[axis] / self.factor)))
        if low == size[axis]:
            return img_t
        down_size = list(size)
        down_size[axis] = low
        x = (img_t.as_tensor() if isinstance(img_t, MetaTensor) else img_t).unsqueeze(0)
        x = F.interpolate(
            F.interpolate(x, size=down_size, mode="area"), size=size, mode="trilinear", align_corners=False
        )[0]
        return convert_to_dst_type(x, img_t, dtype=img_t.dtype)[0]


class RandLowResolutionAxisd(RandSharedDrawd):
    """Dictionary version of :class:`RandLowResolutionAxis` (one draw for all keys; use on images only)."""

    backend = RandLowResolutionAxis.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.1,
        factor_range: float | Sequence[float] = (1.0, 3.0),
        world_axes: int | Sequence[int] = (0, 1, 2),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob, RandLowResolutionAxis(1.0, factor_range, world_axes), allow_missing_keys)
