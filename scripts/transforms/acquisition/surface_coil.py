"""A surface-coil receive profile: signal falling with depth from the posterior (and sometimes anterior) coil."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import RandomizableTransform
from scripts.transforms.dictionary import RandSharedDrawd
from scripts.transforms.geometry import array_axis_of_world_axis, as_spatial_tensor, ras_affine, spacing_from_affine
from scripts.transforms.parameters import parse_probability, parse_range

__all__ = ["RandSurfaceCoil", "RandSurfaceCoild"]


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
        RandomizableTransform.__init__(self, parse_probability(prob))
        self.decay_range = parse_range(decay_range_mm, "decay_range_mm", minimum=0.0)
        if self.decay_range[0] <= 0:
            raise ValueError(f"decay_range_mm must be > 0 mm, not {decay_range_mm!r}")
        self.floor_range = parse_range(floor_range, "floor_range", minimum=0.0)
        if self.floor_range[1] >= 1:
            raise ValueError(f"floor_range must lie in [0, 1), not {floor_range!r}")
        self.anterior_prob = parse_probability(anterior_prob, "anterior_prob")
        self.anterior_weight_range = parse_range(anterior_weight_range, "anterior_weight_range", minimum=0.0)
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
        img_t = as_spatial_tensor(img, type(self).__name__)
        affine = ras_affine(img_t)
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
        img_t = as_spatial_tensor(img, type(self).__name__)
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img_t
        axis, gain = profile if profile is not None else self.profile(img_t)
        shape = [1, 1, 1, 1]
        shape[1 + axis] = -1
        g = torch.as_tensor(gain, dtype=torch.float32, device=img_t.device).reshape(shape)
        return img_t.float() * g


class RandSurfaceCoild(RandSharedDrawd):
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
                img_t = as_spatial_tensor(d[key], type(self).__name__)
                d[key] = img_t if img_t.dtype.is_floating_point else img_t.to(torch.float32)
                continue
            if profile is None:
                profile = self.inner.profile(d[key])
            d[key] = self.inner(d[key], randomize=False, profile=profile)
        return d
