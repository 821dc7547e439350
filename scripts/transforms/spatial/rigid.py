"""Random small rotation, scaling and translation in the physical frame (degrees and millimetres).

The paper this bundle reproduces (BMC Medical Imaging 2026, doi 10.1186/s12880-026-02329-9) trained with
"small rigid rotations"; MONAI's ``RandAffine`` rotates voxel indices, which shears anisotropic voxels, so the
rotation here is built in millimetres.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from scripts.transforms.geometry import spacing_from_affine
from scripts.transforms.parameters import parse_triplet
from scripts.transforms.spatial.random_warp import RandWarp, RandWarpd
from scripts.transforms.spatial.resample import index_grid

__all__ = ["RandRigid", "RandRigidd"]

logger = logging.getLogger(__name__)


def _rotation_matrix(angles_rad: Sequence[float]) -> np.ndarray:
    """R = Rz @ Ry @ Rx for rotations about array axes 0, 1, 2 (right-handed)."""
    ax, ay, az = angles_rad
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


class RandRigid(RandWarp):
    """Random small rotation, scaling and translation about the image centre, in millimetres and degrees.

    The transform is built in the physical frame ``p = diag(spacing_mm) @ index`` and converted to voxels, so a
    rotation stays a rotation on anisotropic voxels (e.g. 1.1 x 1.1 x 2.6 mm); MONAI's ``RandAffine`` rotates
    voxel indices, which shears such images. The backward map is

    .. math:: p_{in} = R\\,S\\,(p - c) + c + t,\\quad \\theta_a \\sim U(-r_a, r_a),\\ s_a \\sim 1 + U(-k_a, k_a),
        \\ t_a \\sim U(-d_a, d_a)

    with ``c`` the image centre. Image and label are resampled once from the same draw.

    Args:
        rotate_range_deg: maximum rotation about array axes 0, 1, 2 in degrees (number or 3 numbers, each in
            [0, 180)). Defaults to ``(5, 5, 10)``: small tilts and a larger in-plane (axial) rotation.
        scale_range: maximum relative scaling per axis, each in [0, 1); 0.05 means factors in [0.95, 1.05].
        translate_range_mm: maximum translation per axis in mm (>= 0).
        isotropic_scale: if True one scale factor (drawn with ``scale_range[0]``) is used for all axes.
        prob: probability of applying the transform, in [0, 1].
        mode: ``"bilinear"`` or ``"nearest"`` (use nearest for labels).
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"`` for samples outside the input.

    >>> t = RandRigid(rotate_range_deg=10, translate_range_mm=5, prob=1.0).set_random_state(0)
    >>> out = t(img)  # img: MetaTensor (1, X, Y, Z) with affine

    See also: :class:`RandRigidd`, :class:`RandBSplineDeform`.
    """

    def __init__(
        self,
        rotate_range_deg: float | Sequence[float] = (5.0, 5.0, 10.0),
        scale_range: float | Sequence[float] = 0.05,
        translate_range_mm: float | Sequence[float] = 5.0,
        isotropic_scale: bool = False,
        prob: float = 0.1,
        mode: str = "bilinear",
        padding_mode: str = "border",
    ) -> None:
        super().__init__(prob, mode, padding_mode)
        self.rotate_range_deg = parse_triplet(
            rotate_range_deg, "rotate_range_deg", minimum=0.0, below=180.0, unit="degrees"
        )
        self.scale_range = parse_triplet(scale_range, "scale_range", minimum=0.0, below=1.0)
        self.translate_range_mm = parse_triplet(translate_range_mm, "translate_range_mm", minimum=0.0, unit="mm")
        self.isotropic_scale = bool(isotropic_scale)
        self.angles_deg = np.zeros(3)
        self.scales = np.ones(3)
        self.translation_mm = np.zeros(3)

    def _draw(self) -> None:
        r = np.asarray(self.rotate_range_deg)
        self.angles_deg = self.R.uniform(-r, r)
        k = np.asarray(self.scale_range)
        self.scales = (
            np.full(3, 1.0 + self.R.uniform(-k[0], k[0])) if self.isotropic_scale else 1.0 + self.R.uniform(-k, k)
        )
        d = np.asarray(self.translate_range_mm)
        self.translation_mm = self.R.uniform(-d, d)
        logger.debug(
            "RandRigid draw: angles_deg=%s scales=%s translation_mm=%s",
            self.angles_deg,
            self.scales,
            self.translation_mm,
        )

    def physical_matrix(self) -> np.ndarray:
        """The last draw's 3x3 linear part ``R @ diag(scales)`` (physical frame, dimensionless)."""
        return _rotation_matrix(np.deg2rad(self.angles_deg)) @ np.diag(self.scales)

    def _coords(self, spatial_shape: tuple[int, ...], affine: np.ndarray, **kwargs: Any) -> torch.Tensor | None:
        if np.allclose(self.angles_deg, 0) and np.allclose(self.scales, 1) and np.allclose(self.translation_mm, 0):
            return None
        spacing = spacing_from_affine(affine)
        centre = spacing * (np.asarray(spatial_shape, dtype=np.float64) - 1.0) / 2.0
        lin = self.physical_matrix()
        # index_in = S^-1 (L (S i - c) + c + t) = (S^-1 L S) i + S^-1 (c - L c + t)
        m_vox = np.diag(1.0 / spacing) @ lin @ np.diag(spacing)
        t_vox = (centre - lin @ centre + self.translation_mm) / spacing
        idx = index_grid(spatial_shape, torch.float64)
        coords = torch.einsum("ab,bxyz->axyz", torch.as_tensor(m_vox), idx) + torch.as_tensor(t_vox).view(3, 1, 1, 1)
        return coords.to(torch.float32)


class RandRigidd(RandWarpd):
    """Dictionary version of :class:`RandRigid`: one draw, every key resampled once with its own ``mode``.

    Args:
        keys: keys to warp, e.g. ``["image", "label"]``.
        rotate_range_deg, scale_range, translate_range_mm, isotropic_scale: see :class:`RandRigid`.
        prob: probability of applying the transform, in [0, 1].
        mode: one mode or one per key; default ``("bilinear", "nearest")`` for image and label.
        padding_mode: one padding mode or one per key.
        allow_missing_keys: do not raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        rotate_range_deg: float | Sequence[float] = (5.0, 5.0, 10.0),
        scale_range: float | Sequence[float] = 0.05,
        translate_range_mm: float | Sequence[float] = 5.0,
        isotropic_scale: bool = False,
        prob: float = 0.1,
        mode: str | Sequence[str] = ("bilinear", "nearest"),
        padding_mode: str | Sequence[str] = "border",
        allow_missing_keys: bool = False,
    ) -> None:
        warper = RandRigid(rotate_range_deg, scale_range, translate_range_mm, isotropic_scale, prob=1.0)
        super().__init__(keys, warper, prob, mode, padding_mode, allow_missing_keys)
