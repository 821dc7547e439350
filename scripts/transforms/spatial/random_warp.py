"""Base classes of the random spatial warps: draw in ``randomize``, sampling positions, one resampling.

Subclasses implement ``_draw`` (all randomness from ``self.R``) and ``_coords`` (the ``(3, X, Y, Z)`` voxel
positions where each output voxel samples the input, or ``None`` for the identity). The dictionary base decides
``prob`` once, draws once and warps every key with its own interpolation mode.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type
from scripts.transforms.geometry import as_spatial_tensor, ras_affine
from scripts.transforms.parameters import parse_mode, parse_padding_mode, parse_per_key, parse_probability
from scripts.transforms.spatial.resample import output_dtype, warp

__all__ = ["RandWarp", "RandWarpd"]


class RandWarp(RandomizableTransform):
    """Base class: draws parameters in ``randomize``, turns them into voxel sampling positions, resamples once."""

    backend = [TransformBackends.TORCH]

    def __init__(self, prob: float, mode: str, padding_mode: str) -> None:
        RandomizableTransform.__init__(self, parse_probability(prob))
        self.mode = parse_mode(mode)
        self.padding_mode = parse_padding_mode(padding_mode)
        self._drawn = False
        self._draw_id = 0
        self._cache: tuple[Any, torch.Tensor | None] | None = None

    def _draw(self) -> None:
        raise NotImplementedError

    def _coords(self, spatial_shape: tuple[int, ...], affine: np.ndarray, **kwargs: Any) -> torch.Tensor | None:
        """(3, X, Y, Z) sampling positions in voxels, or None for the identity."""
        raise NotImplementedError

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        self._draw()
        self._drawn = True
        self._draw_id += 1

    def _cached_coords(self, spatial_shape: tuple[int, ...], affine: np.ndarray, **kwargs: Any) -> torch.Tensor | None:
        # Why: the dictionary wrapper applies one draw to image and label; the field is computed once for both.
        key = (self._draw_id, spatial_shape, affine.tobytes(), tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._coords(spatial_shape, affine, **kwargs))
        return self._cache[1]

    def __call__(
        self, img: Any, mode: str | None = None, padding_mode: str | None = None, randomize: bool = True, **kwargs: Any
    ) -> torch.Tensor:
        """Warp ``img`` (C, X, Y, Z); ``randomize=False`` reuses the previous draw (for several keys)."""
        img_t = as_spatial_tensor(img, type(self).__name__)
        mode = self.mode if mode is None else parse_mode(mode)
        padding_mode = self.padding_mode if padding_mode is None else parse_padding_mode(padding_mode)
        out_dtype = output_dtype(img_t.dtype, mode)
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img_t.to(out_dtype) if img_t.dtype != out_dtype else img_t
        if not self._drawn:
            raise RuntimeError(
                f"{type(self).__name__}: no parameters drawn yet; call randomize() before applying with randomize=False"
            )
        coords = self._cached_coords(tuple(int(n) for n in img_t.shape[1:]), ras_affine(img_t), **kwargs)
        if coords is None:
            out = img_t.as_tensor().clone() if isinstance(img_t, MetaTensor) else img_t.clone()
        else:
            out = warp(img_t, coords, mode, padding_mode)
        if randomize:
            self._cache = None  # a self-contained call: nothing will reuse this draw's (3, X, Y, Z) grid
        return convert_to_dst_type(out, img_t, dtype=out_dtype)[0]


class RandWarpd(RandomizableTransform, MapTransform):
    """Dictionary wrapper: decides ``prob``, draws once, warps every key with its own mode (one resampling)."""

    backend = RandWarp.backend

    def __init__(
        self,
        keys: KeysCollection,
        warper: RandWarp,
        prob: float,
        mode: Any,
        padding_mode: Any,
        allow_missing_keys: bool,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, parse_probability(prob))
        self.warper = warper
        self.mode = parse_per_key(mode, len(self.keys), "mode", parse_mode)
        self.padding_mode = parse_per_key(padding_mode, len(self.keys), "padding_mode", parse_padding_mode)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandWarpd:
        super().set_random_state(seed, state)
        self.warper.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        self.warper.randomize(None)

    def _call_kwargs(self, d: Mapping[Hashable, Any]) -> dict[str, Any]:
        return {}

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        kwargs = self._call_kwargs(d) if self._do_transform else {}
        for key, mode, padding_mode in self.key_iterator(d, self.mode, self.padding_mode):
            if self._do_transform:
                d[key] = self.warper(d[key], mode=mode, padding_mode=padding_mode, randomize=False, **kwargs)
            else:
                img_t = as_spatial_tensor(d[key], type(self).__name__)
                out_dtype = output_dtype(img_t.dtype, mode)
                d[key] = img_t.to(out_dtype) if img_t.dtype != out_dtype else img_t
        self.warper._cache = None  # the sampling grid is (3, X, Y, Z) floats; do not hold it between samples
        return d
