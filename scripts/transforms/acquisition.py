"""Augmentations that imitate other acquisitions than the training scans: other contrasts and shorter coverage.

Why: a network trained on in-phase images alone found almost nothing on real single-contrast lumbar scans (a
fat-bright image whose muscle is nearly black, 20 slices of 4.4 mm; docs/studies/real_scans.md). Histogram
remapping of the in-phase image cannot produce those, because in-phase muscle and fat differ by a fixed ratio.
A Dixon set can: any weighted sum of its water and fat images is a physically possible contrast (fat image,
water image, T1/T2-weighted-like fat-bright images, in-phase), and their difference magnitude is the opposed-phase
image with its dark fat-water boundaries. Short fields of view (a scan of 20 slices, a body cut by the in-plane
field of view) are imitated by blanking everything outside a random slab, as sliding-window inference does by
zero-padding a small image.

- :class:`RandDixonContrast` / :class:`RandDixonContrastd`: the network image replaced by a random water/fat mix;
- :class:`RandFieldOfView` / :class:`RandFieldOfViewd`: everything outside a random slab along one patient axis
  set to zero in the images and to background in the labels;
- :class:`RandSurfaceCoil` / :class:`RandSurfaceCoild`: the receive profile of a posterior (and sometimes an
  anterior) surface coil, signal falling with depth into the body. Real lumbar scans show it strongly: on the
  MuscleMap sample the anterior subcutaneous fat is about a fifth as bright as the posterior, and the psoas is
  four times darker than the multifidus, far beyond the smooth bias fields of ``intensity_augmentations``.

Conventions as in :mod:`scripts.transforms.augmentation`: channel-first ``(C, X, Y, Z)`` inputs, the MetaTensor
``affine``
maps voxels to RAS mm, randomness drawn once per call in ``randomize()``, dictionary versions apply one draw to
every key.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import RandomizableTransform
from monai.utils import convert_to_dst_type, ensure_tuple
from scripts.transforms.augmentation import (
    _as_spatial_tensor,
    _parse_probability,
    _parse_range,
    _parse_world_axes,
    _RandIntensityd,
    _ras_affine,
    array_axis_of_world_axis,
    spacing_from_affine,
)

__all__ = [
    "DIXON_CONTRASTS",
    "RandDixonContrast",
    "RandDixonContrastd",
    "RandFieldOfView",
    "RandFieldOfViewd",
    "RandSurfaceCoil",
    "RandSurfaceCoild",
]

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
        RandomizableTransform.__init__(self, _parse_probability(prob))
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
        w = _as_spatial_tensor(water, type(self).__name__)
        f = _as_spatial_tensor(fat, type(self).__name__)
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


class RandDixonContrastd(_RandIntensityd):
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
        RandomizableTransform.__init__(self, _parse_probability(prob))
        axes = _parse_world_axes(world_axes)
        low, high = _parse_range(extent_range, "extent_range", minimum=0.0)
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
        img_t = _as_spatial_tensor(img, type(self).__name__)
        axis = array_axis_of_world_axis(_ras_affine(img_t), self.world_axis)
        n = int(img_t.shape[1 + axis])
        length = max(1, min(n, int(round(self.fraction * n))))
        start = int(round(self.position * (n - length)))
        return axis, start, start + length

    def __call__(self, img: Any, is_label: bool = False, randomize: bool = True) -> torch.Tensor:
        """Replace ``img`` (C, X, Y, Z) outside the slab: by ``fill`` (labels 0) or by the slab's edge slices."""
        img_t = _as_spatial_tensor(img, type(self).__name__)
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


class RandFieldOfViewd(_RandIntensityd):
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


class RandSurfaceCoil(RandomizableTransform):
    """Multiply the image by a surface-coil receive profile along the patient's antero-posterior axis.

    The body is found as the voxels above ``body_threshold`` times the image's 99th percentile; its posterior and
    anterior edges are the outermost planes (perpendicular to world y, mapped to an array axis through the
    affine) where it covers at least 2 % of the largest plane. With depth ``d`` (mm) from the posterior edge the
    gain is ``floor + (1 - floor) exp(-d / decay)``; with probability ``anterior_prob`` an anterior coil adds
    ``weight exp(-d_front / decay_front)``, ``d_front`` the depth from the anterior edge. The profile is scaled so
    that its maximum is 1, so apply it before intensity normalisation. Shape, affine and labels are unchanged.

    Args:
        prob: probability of applying, in [0, 1].
        decay_range_mm: (low, high) e-folding depth of the posterior coil, mm (> 0). 80 mm darkens the psoas
            (about 110 mm deep) to a quarter of the back muscles, as on the MuscleMap sample.
        floor_range: (low, high) share of the gain that does not fall with depth, in [0, 1).
        anterior_prob: probability of an anterior coil as well, in [0, 1].
        anterior_weight_range: (low, high) peak gain of the anterior coil relative to the posterior one (>= 0).
        body_threshold: fraction of the 99th percentile above which a voxel counts as body, in (0, 1).
    """

    def __init__(
        self,
        prob: float = 0.3,
        decay_range_mm: Sequence[float] = (60.0, 250.0),
        floor_range: Sequence[float] = (0.0, 0.3),
        anterior_prob: float = 0.3,
        anterior_weight_range: Sequence[float] = (0.2, 1.0),
        body_threshold: float = 0.1,
    ) -> None:
        RandomizableTransform.__init__(self, _parse_probability(prob))
        self.decay_range = _parse_range(decay_range_mm, "decay_range_mm", minimum=0.0)
        if self.decay_range[0] <= 0:
            raise ValueError(f"decay_range_mm must be > 0 mm, not {decay_range_mm!r}")
        self.floor_range = _parse_range(floor_range, "floor_range", minimum=0.0)
        if self.floor_range[1] >= 1:
            raise ValueError(f"floor_range must lie in [0, 1), not {floor_range!r}")
        self.anterior_prob = _parse_probability(anterior_prob, "anterior_prob")
        self.anterior_weight_range = _parse_range(anterior_weight_range, "anterior_weight_range", minimum=0.0)
        if not 0 < body_threshold < 1:
            raise ValueError(f"body_threshold must lie in (0, 1), not {body_threshold!r}")
        self.body_threshold = float(body_threshold)
        self.decay_mm, self.floor = self.decay_range[1], self.floor_range[1]
        self.anterior_weight, self.anterior_decay_mm = 0.0, self.decay_range[1]

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        self.decay_mm = float(self.R.uniform(*self.decay_range))
        self.floor = float(self.R.uniform(*self.floor_range))
        front = self.R.uniform() < self.anterior_prob
        self.anterior_weight = float(self.R.uniform(*self.anterior_weight_range)) if front else 0.0
        self.anterior_decay_mm = float(self.R.uniform(*self.decay_range))

    def profile(self, img: Any) -> tuple[int, np.ndarray]:
        """(array axis, gain per index along it) of the last draw for ``img`` (C, X, Y, Z); gain max is 1."""
        img_t = _as_spatial_tensor(img, type(self).__name__)
        affine = _ras_affine(img_t)
        axis = array_axis_of_world_axis(affine, 1)
        step = float(spacing_from_affine(affine)[axis])
        # +1 when a higher index lies more anterior (RAS +y)
        direction = 1.0 if affine[1, axis] >= 0 else -1.0
        first = (img_t[0].as_tensor() if isinstance(img_t, MetaTensor) else img_t[0]).float()
        top = float(torch.quantile(first.flatten()[:: max(1, first.numel() // 1_000_000)], 0.99))
        body = (first > self.body_threshold * top) if top > 0 else torch.zeros_like(first, dtype=torch.bool)
        cover = body.sum(dim=tuple(a for a in range(3) if a != axis)).cpu().numpy().astype(np.float64)
        n = cover.size
        inside = np.nonzero(cover >= 0.02 * cover.max())[0] if cover.max() > 0 else np.array([0, n - 1])
        y = direction * step * np.arange(n)
        y_post, y_front = (y[inside[0]], y[inside[-1]]) if direction > 0 else (y[inside[-1]], y[inside[0]])
        depth = np.clip(y - y_post, 0.0, None)
        gain = self.floor + (1.0 - self.floor) * np.exp(-depth / self.decay_mm)
        if self.anterior_weight > 0:
            gain = gain + self.anterior_weight * np.exp(-np.clip(y_front - y, 0.0, None) / self.anterior_decay_mm)
        return axis, gain / gain.max()

    def __call__(self, img: Any, randomize: bool = True, profile: tuple[int, np.ndarray] | None = None) -> torch.Tensor:
        """Apply the coil profile to ``img`` (C, X, Y, Z); ``profile`` (from :meth:`profile`) reuses one."""
        img_t = _as_spatial_tensor(img, type(self).__name__)
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img_t
        axis, gain = profile if profile is not None else self.profile(img_t)
        shape = [1, 1, 1, 1]
        shape[1 + axis] = -1
        g = torch.as_tensor(gain, dtype=torch.float32, device=img_t.device).reshape(shape)
        return img_t.float() * g


class RandSurfaceCoild(_RandIntensityd):
    """Dictionary version of :class:`RandSurfaceCoil`: one profile, found on the first key present, for all keys
    (e.g. the network image and the water and fat images it is built from).

    Args:
        keys: image keys (not labels).
        prob, decay_range_mm, floor_range, anterior_prob, anterior_weight_range, body_threshold: see
            :class:`RandSurfaceCoil`.
        allow_missing_keys: do not raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.3,
        decay_range_mm: Sequence[float] = (60.0, 250.0),
        floor_range: Sequence[float] = (0.0, 0.3),
        anterior_prob: float = 0.3,
        anterior_weight_range: Sequence[float] = (0.2, 1.0),
        body_threshold: float = 0.1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys,
            prob,
            RandSurfaceCoil(1.0, decay_range_mm, floor_range, anterior_prob, anterior_weight_range, body_threshold),
            allow_missing_keys,
        )

    @property
    def coil(self) -> RandSurfaceCoil:
        """The array transform holding the last draw."""
        return self.inner

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        profile = None
        for key in self.key_iterator(d):
            if not self._do_transform:
                img_t = _as_spatial_tensor(d[key], type(self).__name__)
                d[key] = img_t if img_t.dtype.is_floating_point else img_t.to(torch.float32)
                continue
            if profile is None:
                profile = self.inner.profile(d[key])
            d[key] = self.inner(d[key], randomize=False, profile=profile)
        return d
