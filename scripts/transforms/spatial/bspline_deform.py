"""Random cubic B-spline free-form deformation, control-point displacements in millimetres, folding checked.

The paper's "non-linear B-spline deformations" (BMC Medical Imaging 2026, doi 10.1186/s12880-026-02329-9).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from scripts.transforms.geometry import AXIS_NAMES, spacing_from_affine
from scripts.transforms.parameters import parse_triplet
from scripts.transforms.spatial.bspline import bspline_displacement_field
from scripts.transforms.spatial.folding import FOLDING_SAFE_FRACTION, bspline_folding_bound_mm
from scripts.transforms.spatial.random_warp import RandWarp, RandWarpd
from scripts.transforms.spatial.resample import index_grid

__all__ = ["RandBSplineDeform", "RandBSplineDeformd"]

logger = logging.getLogger(__name__)


class RandBSplineDeform(RandWarp):
    """Random cubic B-spline free-form deformation with control-point displacements in millimetres.

    A coarse grid of ``n0 x n1 x n2`` control points spans the image (``n - 3`` intervals over the extent, one
    point beyond each face, as SimpleITK's ``BSplineTransformInitializer``). Each control point gets a displacement
    :math:`c_a \\sim U(-D_a, D_a)` mm along array axis ``a``, drawn once per call; the dense field is the cubic
    B-spline interpolation of the grid (Rueckert et al. 1999, https://doi.org/10.1109/42.796284), and the image is
    sampled at ``x + u(x)`` (one resampling; linear for images, nearest for labels).

    Since the basis weights are non-negative and sum to 1, ``|u_a| <= D_a`` everywhere. The map cannot fold when
    every ``D_a`` is below ``0.4`` times the control-point spacing
    (:func:`~scripts.transforms.spatial.folding.bspline_folding_bound_mm`); that depends on the image extent, so
    it is checked per call and a ``RuntimeWarning`` names the offending axes.

    Args:
        num_control_points: control points per array axis, integers >= 4 (cubic B-splines need 4 per interval).
        max_displacement_mm: maximum control-point displacement per array axis in mm (>= 0).
        locked_borders: ``0``: all points free; ``1``: the outer layer (outside the image) is fixed at 0;
            ``2``: the layer on the image faces too, so the displacement at the faces is small (<= D/6).
            ``2`` with 4 control points on an axis would only give the identity and is rejected.
        prob: probability of applying the transform, in [0, 1].
        mode: ``"bilinear"`` or ``"nearest"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.

    Warning:
        Folding (negative Jacobian) tears labels apart. With the defaults (7, 7, 5 points: 4, 4, 2 intervals),
        ``(6, 6, 3)`` mm is folding-safe for an image extent of at least 60 x 60 x 15 mm; smaller patches warn.

    >>> t = RandBSplineDeform((7, 7, 5), (4.0, 4.0, 2.0), prob=1.0).set_random_state(0)
    >>> out = t(img)
    >>> u_mm = t.displacement_field_mm(img.shape[1:])  # (3, X, Y, Z) of the last draw

    See also: :class:`RandBSplineDeformd`, :func:`~scripts.transforms.spatial.folding.jacobian_determinant`,
    TorchIO ``RandomElasticDeformation``.
    """

    def __init__(
        self,
        num_control_points: int | Sequence[int] = (7, 7, 5),
        max_displacement_mm: float | Sequence[float] = (6.0, 6.0, 3.0),
        locked_borders: int = 2,
        prob: float = 0.1,
        mode: str = "bilinear",
        padding_mode: str = "border",
    ) -> None:
        super().__init__(prob, mode, padding_mode)
        self.num_control_points = parse_triplet(num_control_points, "num_control_points", minimum=4, integer=True)
        self.max_displacement_mm = parse_triplet(max_displacement_mm, "max_displacement_mm", minimum=0.0, unit="mm")
        if locked_borders not in (0, 1, 2) or isinstance(locked_borders, bool):
            raise ValueError(f"locked_borders must be 0, 1 or 2, not {locked_borders!r}")
        for axis, n in enumerate(self.num_control_points):
            if locked_borders == 2 and n == 4:
                raise ValueError(
                    f"num_control_points for axis {axis} must be > 4 when locked_borders is 2 (all 4 "
                    f"points would be locked, giving the identity), not {n}"
                )
        self.locked_borders = int(locked_borders)
        self.control_points_mm = np.zeros((3, *self.num_control_points))

    def _draw(self) -> None:
        d = np.asarray(self.max_displacement_mm).reshape(3, 1, 1, 1)
        c = self.R.uniform(-1.0, 1.0, size=(3, *self.num_control_points)) * d
        k = self.locked_borders
        if k:
            # Why: pinning the outer layers keeps the image faces (nearly) still, so no content enters from outside.
            c[:, :k] = c[:, -k:] = 0.0
            c[:, :, :k] = c[:, :, -k:] = 0.0
            c[:, :, :, :k] = c[:, :, :, -k:] = 0.0
        self.control_points_mm = c
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("RandBSplineDeform control points (mm, shape %s): %s", c.shape, c.round(3).tolist())

    def folding_bound_mm(self, spatial_shape: Sequence[int], spacing_mm: Sequence[float]) -> np.ndarray:
        """Folding-safe maximum displacement (mm per axis) for an image of this shape and spacing."""
        return bspline_folding_bound_mm(spatial_shape, spacing_mm, self.num_control_points)

    def displacement_field_mm(self, spatial_shape: Sequence[int]) -> torch.Tensor:
        """(3, X, Y, Z) dense displacement (mm along each array axis) of the last draw."""
        return bspline_displacement_field(self.control_points_mm, spatial_shape)

    def _coords(self, spatial_shape: tuple[int, ...], affine: np.ndarray, **kwargs: Any) -> torch.Tensor | None:
        spacing = spacing_from_affine(affine)
        bound = self.folding_bound_mm(spatial_shape, spacing)
        too_big = [
            f"{AXIS_NAMES[a]} ({self.max_displacement_mm[a]:g} > {bound[a]:.3g} mm)"
            for a in range(3)
            if self.max_displacement_mm[a] > bound[a]
        ]
        if too_big:
            warnings.warn(
                f"RandBSplineDeform: max_displacement_mm exceeds the folding-safe bound "
                f"({FOLDING_SAFE_FRACTION} x control-point spacing) for an image of shape "
                f"{tuple(spatial_shape)} and spacing {tuple(np.round(spacing, 3))} mm on axes "
                f"{', '.join(too_big)}; the deformation may fold.",
                RuntimeWarning,
                stacklevel=4,
            )
        if not np.any(self.control_points_mm):
            return None
        u_vox = self.displacement_field_mm(spatial_shape) / torch.as_tensor(spacing, dtype=torch.float32).view(
            3, 1, 1, 1
        )
        return index_grid(spatial_shape) + u_vox


class RandBSplineDeformd(RandWarpd):
    """Dictionary version of :class:`RandBSplineDeform`: one draw, image and label warped by the same field.

    Args:
        keys: keys to warp, e.g. ``["image", "label"]``.
        num_control_points, max_displacement_mm, locked_borders: see :class:`RandBSplineDeform`.
        prob: probability of applying the transform, in [0, 1].
        mode: one mode or one per key; default ``("bilinear", "nearest")``.
        padding_mode: one padding mode or one per key.
        allow_missing_keys: do not raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_control_points: int | Sequence[int] = (7, 7, 5),
        max_displacement_mm: float | Sequence[float] = (6.0, 6.0, 3.0),
        locked_borders: int = 2,
        prob: float = 0.1,
        mode: str | Sequence[str] = ("bilinear", "nearest"),
        padding_mode: str | Sequence[str] = "border",
        allow_missing_keys: bool = False,
    ) -> None:
        warper = RandBSplineDeform(num_control_points, max_displacement_mm, locked_borders, prob=1.0)
        super().__init__(keys, warper, prob, mode, padding_mode, allow_missing_keys)
