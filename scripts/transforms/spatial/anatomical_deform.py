"""Random deformations sampled from the training subjects' anatomical variability (a PCA model).

The model is built by :mod:`scripts.transforms.anatomical_variability` and stored as
:class:`scripts.transforms.variability_model.AnatomicalVariabilityModel`; its fields are world RAS millimetres.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.utils import convert_to_tensor
from scripts.transforms.geometry import ras_affine
from scripts.transforms.parameters import is_number
from scripts.transforms.spatial.random_warp import RandWarp, RandWarpd
from scripts.transforms.spatial.resample import index_grid, warp
from scripts.transforms.variability_model import AnatomicalVariabilityModel

__all__ = ["RandAnatomicalDeform", "RandAnatomicalDeformd"]

logger = logging.getLogger(__name__)


def _foreground_centroid_mm(label: Any, affine: np.ndarray) -> np.ndarray | None:
    lab = convert_to_tensor(label, track_meta=False)
    idx = torch.nonzero(lab.reshape(-1, *lab.shape[-3:]).amax(0) > 0).to(torch.float64)
    if idx.shape[0] == 0:
        return None
    return affine[:3, :3] @ idx.mean(0).numpy() + affine[:3, 3]


class RandAnatomicalDeform(RandWarp):
    """Random deformation drawn from a PCA model of the inter-subject anatomical variability.

    The model (:class:`scripts.transforms.variability_model.AnatomicalVariabilityModel`) holds the principal modes
    :math:`e_k` (world RAS mm) and variances :math:`\\lambda_k` of the non-linear displacement fields that
    register the training subjects onto a reference. A call draws :math:`b_k \\sim N(0, 1)` clipped to
    ``[-max_std, max_std]`` and uses :math:`u = s \\sum_k b_k \\sqrt{\\lambda_k} e_k` (``s`` = ``scale``). The model
    frame is placed so that its reference centroid falls on ``center_mm`` (the label's foreground centroid in the
    dictionary version, else the image centre); the field is resampled trilinearly to the image grid through the
    affines (physical mm, any orientation), and the image is sampled once at ``x + u(x)``.

    Args:
        model: the model, or the path of its ``.npz`` file (see ``AnatomicalVariabilityModel.save``); ``None`` or
            ``""``: no model, the transform returns its input unchanged (an optional step in a configuration).
        scale: multiplies the sampled field (>= 0); 1 reproduces the training set's variability.
        max_std: coefficients are clipped to +/- this many standard deviations (> 0).
        num_components: use only the first k modes (None: all).
        prob: probability of applying the transform, in [0, 1].
        mode: ``"bilinear"`` or ``"nearest"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.

    See also: :func:`scripts.transforms.anatomical_variability.build_variability_model`, :class:`RandAnatomicalDeformd`.
    """

    def __init__(
        self,
        model: AnatomicalVariabilityModel | str | Path | None,
        scale: float = 1.0,
        max_std: float = 3.0,
        num_components: int | None = None,
        prob: float = 0.1,
        mode: str = "bilinear",
        padding_mode: str = "border",
    ) -> None:
        super().__init__(prob, mode, padding_mode)
        if isinstance(model, str) and not model:
            # Why: train.json names the model file as an option; without one the transform passes data through.
            model = None
        if isinstance(model, (str, Path)):
            model = AnatomicalVariabilityModel.load(model)
        if model is not None and not isinstance(model, AnatomicalVariabilityModel):
            raise TypeError(f"model must be an AnatomicalVariabilityModel or a path to one, not {type(model).__name__}")
        if not is_number(scale) or scale < 0:
            raise ValueError(f"scale must be a number >= 0, not {scale!r}")
        if not is_number(max_std) or max_std <= 0:
            raise ValueError(f"max_std must be a number > 0, not {max_std!r}")
        k_all = 0 if model is None else model.num_components
        if (
            model is not None
            and num_components is not None
            and (not isinstance(num_components, int) or not 1 <= num_components <= k_all)
        ):
            raise ValueError(f"num_components must be None or an integer in [1, {k_all}], not {num_components!r}")
        self.model = model
        self.scale = float(scale)
        self.max_std = float(max_std)
        self.num_components = k_all if num_components is None else num_components
        self.coefficients = np.zeros(self.num_components)
        self._model_field: torch.Tensor | None = None

    def _draw(self) -> None:
        b = self.R.standard_normal(self.num_components)
        self.coefficients = np.clip(b, -self.max_std, self.max_std)
        self._model_field = None
        logger.debug("RandAnatomicalDeform coefficients (std units): %s", self.coefficients.round(4).tolist())

    def model_field_mm(self) -> torch.Tensor:
        """(3, Xm, Ym, Zm) field of the last draw on the model grid, world RAS mm, already times ``scale``."""
        if self._model_field is None:
            coeffs = np.zeros(self.model.num_components)
            coeffs[: self.num_components] = self.coefficients * self.scale
            self._model_field = torch.as_tensor(self.model.field_mm(coeffs), dtype=torch.float32)
        return self._model_field

    def displacement_field_world_mm(
        self, spatial_shape: Sequence[int], affine: Any, center_mm: Sequence[float] | None = None
    ) -> torch.Tensor:
        """(3, X, Y, Z) displacement of the last draw at each voxel of the given grid, in world RAS mm.

        Args:
            spatial_shape: (X, Y, Z) of the target image.
            affine: (4, 4) voxel -> RAS world (mm) of the target image.
            center_mm: world point (RAS mm) on which the model's reference centroid is placed; default the
                centre of the target grid.
        """
        a = np.asarray(affine, dtype=np.float64)
        shape = tuple(int(n) for n in spatial_shape)
        if center_mm is None:
            center_mm = a[:3, :3] @ ((np.asarray(shape) - 1.0) / 2.0) + a[:3, 3]
        # target voxel -> world -> model world (translate centroid onto centroid) -> model voxel, as one affine.
        to_model = np.linalg.inv(self.model.affine)
        shift = np.asarray(self.model.center_mm) - np.asarray(center_mm, dtype=np.float64)
        m = to_model[:3, :3] @ a[:3, :3]
        t = to_model[:3, :3] @ (a[:3, 3] + shift) + to_model[:3, 3]
        idx = index_grid(shape, torch.float64)
        model_vox = torch.einsum("ab,bxyz->axyz", torch.as_tensor(m), idx) + torch.as_tensor(t).view(3, 1, 1, 1)
        # Why "border": the model box may be smaller than the image; extending its edge values keeps u continuous.
        return warp(self.model_field_mm(), model_vox.to(torch.float32), "bilinear", "border")

    def _coords(self, spatial_shape: tuple[int, ...], affine: np.ndarray, **kwargs: Any) -> torch.Tensor | None:
        if self.model is None or self.scale == 0 or not np.any(self.coefficients):
            return None
        u_world = self.displacement_field_world_mm(spatial_shape, affine, kwargs.get("center_mm"))
        inv = torch.as_tensor(np.linalg.inv(affine[:3, :3]), dtype=torch.float32)
        return index_grid(spatial_shape) + torch.einsum("ab,bxyz->axyz", inv, u_world)

    def __call__(
        self,
        img: Any,
        mode: str | None = None,
        padding_mode: str | None = None,
        randomize: bool = True,
        center_mm: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """Warp ``img``; ``center_mm`` (RAS mm) positions the model (default: the image centre)."""
        kwargs = {} if center_mm is None else {"center_mm": tuple(float(v) for v in center_mm)}
        return super().__call__(img, mode=mode, padding_mode=padding_mode, randomize=randomize, **kwargs)


class RandAnatomicalDeformd(RandWarpd):
    """Dictionary version of :class:`RandAnatomicalDeform`; the model is centred on the label's foreground.

    Args:
        keys: keys to warp, e.g. ``["image", "label"]``.
        model: the model or the path of its ``.npz`` file.
        scale, max_std, num_components: see :class:`RandAnatomicalDeform`.
        label_key: key whose foreground (> 0) centroid positions the model; ``None`` or an empty label: the
            image centre.
        prob: probability of applying the transform, in [0, 1].
        mode: one mode or one per key; default ``("bilinear", "nearest")``.
        padding_mode: one padding mode or one per key.
        allow_missing_keys: do not raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        model: AnatomicalVariabilityModel | str | Path | None,
        scale: float = 1.0,
        max_std: float = 3.0,
        num_components: int | None = None,
        label_key: str | None = "label",
        prob: float = 0.1,
        mode: str | Sequence[str] = ("bilinear", "nearest"),
        padding_mode: str | Sequence[str] = "border",
        allow_missing_keys: bool = False,
    ) -> None:
        warper = RandAnatomicalDeform(model, scale, max_std, num_components, prob=1.0)
        super().__init__(keys, warper, prob, mode, padding_mode, allow_missing_keys)
        self.label_key = label_key

    def _call_kwargs(self, d: Mapping[Hashable, Any]) -> dict[str, Any]:
        if self.label_key is None or self.label_key not in d:
            return {}
        label = d[self.label_key]
        centre = _foreground_centroid_mm(label, ras_affine(label))
        return {} if centre is None else {"center_mm": tuple(float(v) for v in centre)}
