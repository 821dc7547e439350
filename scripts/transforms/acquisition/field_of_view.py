"""A shorter or tighter field of view: a random slab along one patient axis kept, the rest filled or replicated."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import RandomizableTransform
from monai.utils import ensure_tuple
from scripts.transforms.dictionary import RandSharedDrawd
from scripts.transforms.geometry import array_axis_of_world_axis, as_spatial_tensor, ras_affine
from scripts.transforms.parameters import parse_probability, parse_range, parse_world_axes

__all__ = ["RandFieldOfView", "RandFieldOfViewd"]


class RandFieldOfView(RandomizableTransform):
    """Keep a random slab along one patient axis and replace the rest (a shorter or tighter field of view).

    A world axis is drawn from ``world_axes`` (0 = x left-right, 1 = y posterior-anterior, 2 = z inferior-superior;
    mapped to the array axis through the affine), the slab's length as a fraction of the image's extent along it
    from ``extent_range`` and its position uniformly. Shape and affine are unchanged. What lies outside the slab
    is what sliding-window inference shows beyond the end of a short scan, chosen by ``outside``:

    - ``"fill"``: image voxels become ``fill``, label voxels background (0): a network cannot see muscle where there
      is no image (zero padding);
    - ``"replicate"``: image and label repeat the slab's first and last slices outwards, what inference with
      ``sw_padding_mode`` "replicate" (the bundle's default) shows around a scan shorter than its window; the
      label repeats with the image so that the image and its label stay consistent.

    Args:
        prob: probability of applying, in [0, 1].
        world_axes: candidate patient axes, drawn with equal probability (repeat an axis to favour it).
        extent_range: (low, high) slab length as a fraction of the extent, 0 < low <= high <= 1.
        fill: image value outside the slab when ``outside`` is "fill".
        outside: "fill" or "replicate" (see above).
    """

    def __init__(
        self,
        prob: float = 0.2,
        world_axes: int | Sequence[int] = (2,),
        extent_range: Sequence[float] = (0.3, 0.8),
        fill: float = 0.0,
        outside: str = "fill",
    ) -> None:
        RandomizableTransform.__init__(self, parse_probability(prob))
        axes = parse_world_axes(world_axes)
        low, high = parse_range(extent_range, "extent_range", minimum=0.0)
        if low <= 0 or high > 1:
            raise ValueError(f"extent_range must satisfy 0 < low <= high <= 1, not {extent_range!r}")
        if outside not in ("fill", "replicate"):
            raise ValueError(f"outside must be 'fill' or 'replicate', not {outside!r}")
        self.world_axes = axes
        self.extent_range = (low, high)
        self.fill = float(fill)
        self.outside = outside
        self.world_axis = axes[0]
        self.fraction = 1.0
        self.position = 0.0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        self.world_axis = self.world_axes[self.R.randint(len(self.world_axes))]
        self.fraction = float(self.R.uniform(*self.extent_range))
        self.position = float(self.R.uniform())

    def slab(self, img: Any) -> tuple[int, int, int]:
        """(array axis, first index, stop index) of the kept slab of the last draw on ``img`` (C, X, Y, Z)."""
        img_t = as_spatial_tensor(img, type(self).__name__)
        axis = array_axis_of_world_axis(ras_affine(img_t), self.world_axis)
        n = int(img_t.shape[1 + axis])
        length = max(1, min(n, int(round(self.fraction * n))))
        start = int(round(self.position * (n - length)))
        return axis, start, start + length

    def __call__(self, img: Any, is_label: bool = False, randomize: bool = True) -> torch.Tensor:
        """Replace ``img`` (C, X, Y, Z) outside the slab: by ``fill`` (labels 0) or by the slab's edge slices."""
        img_t = as_spatial_tensor(img, type(self).__name__)
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img_t
        axis, start, stop = self.slab(img_t)
        if self.outside == "replicate":
            source = torch.arange(img_t.shape[1 + axis], device=img_t.device).clamp(start, stop - 1)
            return img_t.index_select(1 + axis, source)
        out = img_t.clone()
        value = 0 if is_label else self.fill
        index: list[Any] = [slice(None)] * out.ndim
        index[1 + axis] = slice(0, start)
        out[tuple(index)] = value
        index[1 + axis] = slice(stop, None)
        out[tuple(index)] = value
        return out


class RandFieldOfViewd(RandSharedDrawd):
    """Dictionary version of :class:`RandFieldOfView`: one slab for all keys.

    Args:
        keys: image and label keys.
        label_keys: which of ``keys`` are labels (set to 0 outside the slab).
        prob, world_axes, extent_range, fill, outside: see :class:`RandFieldOfView`.
        allow_missing_keys: do not raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_keys: KeysCollection = ("label",),
        prob: float = 0.2,
        world_axes: int | Sequence[int] = (2,),
        extent_range: Sequence[float] = (0.3, 0.8),
        fill: float = 0.0,
        outside: str = "fill",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob, RandFieldOfView(1.0, world_axes, extent_range, fill, outside), allow_missing_keys)
        self.label_keys = set(ensure_tuple(label_keys))

    @property
    def blanker(self) -> RandFieldOfView:
        """The array transform holding the last draw (axis, extent, position)."""
        return self.inner

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            if self._do_transform:
                d[key] = self.inner(d[key], is_label=key in self.label_keys, randomize=False)
        return d
