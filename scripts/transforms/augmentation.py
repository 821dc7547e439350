"""Training augmentations for lumbar muscle segmentation on Dixon MRI, in physical units.

The paper this bundle reproduces (BMC Medical Imaging 2026, doi 10.1186/s12880-026-02329-9) trained its U-Net
on 26 scans with "small rigid rotations plus non-linear B-spline deformations that mimic real anatomical
variability". This module provides those, plus what docs/design.md asks for transfer to unseen scanners:

- :class:`RandRigid` / :class:`RandRigidd`: small rotation (degrees), scaling and translation (mm), applied in
  the physical frame so that anisotropic voxels are not sheared (MONAI's ``RandAffine`` rotates voxel indices).
- :class:`RandBSplineDeform` / :class:`RandBSplineDeformd`: random cubic B-spline free-form deformation
  (Rueckert et al. 1999), control-point displacements in mm, folding-safe bound checked.
- :class:`RandAnatomicalDeform` / :class:`RandAnatomicalDeformd`: deformations sampled from a PCA model of the
  inter-subject variability of the training labels (built by :mod:`scripts.transforms.anatomical_variability`).
- :class:`RandLeftRightFlip` / :class:`RandLeftRightFlipd`: mirror along the patient's left-right axis, found
  from the affine, with left/right label values swapped (``LEFT_RIGHT_SWAP``).
- :class:`RandIntensityRemap` / :class:`RandIntensityRemapd` and :class:`RandLowResolutionAxis` /
  :class:`RandLowResolutionAxisd`: contrast remapping (incl. inversion) and thick-slice simulation, the two
  pieces MONAI lacks; :func:`intensity_augmentations` returns the full configured intensity list.

Conventions shared by every transform here:

- input: channel-first ``(C, X, Y, Z)`` array/tensor/MetaTensor; the MetaTensor ``affine`` maps voxel indices to
  RAS world mm (a plain array or tensor is taken as 1 mm isotropic, identity affine);
- output: MetaTensor with the input's metadata and affine unchanged (the content moves, not the grid);
- spatial transforms resample every key once, from one draw: image ``"bilinear"``, label ``"nearest"`` (label
  values and dtype kept: the output labels are a subset of the input labels);
- all randomness comes from ``self.R`` inside ``randomize()``; ``set_random_state`` reseeds inner transforms.

Warning:
    The spatial transforms operate on the array axes in the physical (mm) frame ``diag(spacing) @ index``. In this
    bundle's pipeline the images are oriented to RAS first (``Orientationd(axcodes="RAS")``), so array axes 0, 1,
    2 are the patient's x (left -> right), y (posterior -> anterior) and z (inferior -> superior).
    The left-right flip does not rely on this: it finds the world-x axis from the affine.
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import (
    MapTransform,
    RandAdjustContrastd,
    RandBiasFieldd,
    RandGaussianSmoothd,
    RandomizableTransform,
    RandRicianNoised,
)
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor, ensure_tuple, ensure_tuple_rep
from scripts.labels import LEFT_RIGHT_SWAP
from scripts.transforms.variability_model import AnatomicalVariabilityModel

__all__ = [
    "FOLDING_SAFE_FRACTION",
    "spacing_from_affine",
    "array_axis_of_world_axis",
    "left_right_axis",
    "warp",
    "cubic_bspline_kernel",
    "bspline_displacement_field",
    "bspline_folding_bound_mm",
    "jacobian_determinant",
    "RandRigid",
    "RandRigidd",
    "RandBSplineDeform",
    "RandBSplineDeformd",
    "RandAnatomicalDeform",
    "RandAnatomicalDeformd",
    "RandLeftRightFlip",
    "RandLeftRightFlipd",
    "RandIntensityRemap",
    "RandIntensityRemapd",
    "RandLowResolutionAxis",
    "RandLowResolutionAxisd",
    "intensity_augmentations",
]

logger = logging.getLogger(__name__)

#: Fraction of the control-point spacing below which a cubic B-spline free-form deformation is guaranteed
#: injective (no folding) in 3D: the sufficient condition of Choi & Lee (2000), |c| < spacing / K with
#: K ~= 2.48, rounded down to 0.4 as in Rueckert et al. (2006), "Diffeomorphic registration using B-splines".
FOLDING_SAFE_FRACTION: float = 0.4

_INTERP_MODES: dict[str, str] = {
    "bilinear": "bilinear",
    "linear": "bilinear",
    "trilinear": "bilinear",
    "nearest": "nearest",
}
_PADDING_MODES: tuple[str, ...] = ("zeros", "border", "reflection")
_AXIS_NAMES: tuple[str, ...] = ("x", "y", "z")


# ----------------------------------------------------------------------------------------------------------------
# Argument parsing (TorchIO style: name the parameter, the axis, the rule and the value received)
# ----------------------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _parse_probability(prob: Any, name: str = "prob") -> float:
    if not _is_number(prob):
        raise TypeError(f"{name} must be a number in [0, 1], not {prob!r} ({type(prob).__name__})")
    if not 0.0 <= float(prob) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], not {prob!r}")
    return float(prob)


def _parse_triplet(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    below: float | None = None,
    integer: bool = False,
    unit: str = "",
) -> tuple[float, float, float]:
    """A scalar or a 3-sequence (one per array axis) -> a checked triplet; ``minimum`` inclusive, ``below`` not."""
    values = (value,) * 3 if _is_number(value) else tuple(value) if isinstance(value, Sequence) else None
    if values is None or len(values) != 3:
        raise ValueError(f"{name} must be a number or a sequence of 3 numbers (one per axis), not {value!r}")
    unit_txt = f" {unit}" if unit else ""
    for axis, v in enumerate(values):
        kind = "an integer" if integer else "a number"
        if not _is_number(v) or (integer and float(v) != int(v)):
            raise ValueError(f"{name} for axis {axis} must be {kind}, not {v!r}")
        if minimum is not None and v < minimum:
            raise ValueError(f"{name} for axis {axis} must be {kind} >= {minimum}{unit_txt}, not {v!r}")
        if below is not None and v >= below:
            raise ValueError(f"{name} for axis {axis} must be {kind} < {below}{unit_txt}, not {v!r}")
    if integer:
        return tuple(int(v) for v in values)  # type: ignore[return-value]
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def _parse_range(value: Any, name: str, *, minimum: float | None = None) -> tuple[float, float]:
    """A ``(low, high)`` pair with ``low <= high`` (a scalar ``v`` means ``(v, v)``)."""
    pair = (value, value) if _is_number(value) else tuple(value) if isinstance(value, Sequence) else None
    if pair is None or len(pair) != 2 or not all(_is_number(v) for v in pair):
        raise ValueError(f"{name} must be a number or a (low, high) pair of numbers, not {value!r}")
    low, high = float(pair[0]), float(pair[1])
    if low > high:
        raise ValueError(f"{name} must satisfy low <= high, not {value!r}")
    if minimum is not None and low < minimum:
        raise ValueError(f"{name} must have low >= {minimum}, not {value!r}")
    return low, high


def _parse_mode(mode: Any, name: str = "mode") -> str:
    if not isinstance(mode, str):
        raise TypeError(f"{name} must be a string in {sorted(_INTERP_MODES)}, not {mode!r}")
    if mode.lower() not in _INTERP_MODES:
        raise ValueError(f"{name} must be one of {sorted(_INTERP_MODES)}, not {mode!r}")
    return _INTERP_MODES[mode.lower()]


def _parse_padding_mode(padding_mode: Any, name: str = "padding_mode") -> str:
    if not isinstance(padding_mode, str):
        raise TypeError(f"{name} must be a string in {list(_PADDING_MODES)}, not {padding_mode!r}")
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"{name} must be one of {list(_PADDING_MODES)}, not {padding_mode!r}")
    return padding_mode


def _parse_world_axes(world_axes: Any) -> tuple[int, ...]:
    axes = tuple(ensure_tuple(world_axes))
    if not axes or any(isinstance(a, bool) or a not in (0, 1, 2) for a in axes):
        raise ValueError(f"world_axes must be a non-empty sequence of 0, 1, 2, not {world_axes!r}")
    return axes


def _parse_per_key(value: Any, n_keys: int, name: str, parser: Any) -> tuple[str, ...]:
    values = ensure_tuple_rep(value, n_keys) if isinstance(value, str) else tuple(value)
    if len(values) != n_keys:
        raise ValueError(f"{name} must be one value or one per key ({n_keys}), not {value!r}")
    return tuple(parser(v, name) for v in values)


# ----------------------------------------------------------------------------------------------------------------
# Geometry helpers
# ----------------------------------------------------------------------------------------------------------------


def _as_spatial_tensor(img: Any, owner: str) -> torch.Tensor:
    """Convert to a (Meta)Tensor and check the ``(C, X, Y, Z)`` layout."""
    img_t = convert_to_tensor(img, track_meta=get_track_meta())
    if img_t.ndim != 4:
        raise ValueError(
            f"{owner} expects a channel-first 3D image of shape (C, X, Y, Z), got shape {tuple(img_t.shape)}"
        )
    if isinstance(img_t, MetaTensor) and img_t.pending_operations:
        # Why: these transforms read the affine to get mm; pending lazy resampling would make it stale.
        warnings.warn(
            f"{owner}: the input has pending lazy operations; they are not applied first, so the affine "
            "used for mm conversion may not match the array.",
            RuntimeWarning,
            stacklevel=3,
        )
    return img_t


def _ras_affine(img: Any) -> np.ndarray:
    """The voxel -> RAS world (mm) affine of ``img`` as a float64 (4, 4) array; identity for non-MetaTensors."""
    if not isinstance(img, MetaTensor):
        return np.eye(4)
    affine = np.asarray(
        img.affine.detach().cpu().numpy() if torch.is_tensor(img.affine) else img.affine, dtype=np.float64
    )
    if affine.shape != (4, 4):
        raise ValueError(f"expected a (4, 4) affine for a 3D image, got shape {affine.shape}")
    if str(img.meta.get("space", "RAS")).upper() == "LPS":
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    return affine


def spacing_from_affine(affine: Any) -> np.ndarray:
    """Voxel size in mm along each array axis: the norms of the affine's first three columns.

    Args:
        affine: (4, 4) voxel -> world (mm) matrix (array or tensor).

    Returns:
        (3,) float64 array of spacings in mm.
    """
    a = np.asarray(affine.detach().cpu().numpy() if torch.is_tensor(affine) else affine, dtype=np.float64)
    return np.linalg.norm(a[:3, :3], axis=0)


def array_axis_of_world_axis(affine: Any, world_axis: int) -> int:
    """The array axis whose direction is closest to world axis ``world_axis`` (0 = x, 1 = y, 2 = z).

    Args:
        affine: (4, 4) voxel -> world (mm) matrix; LPS or RAS gives the same answer (only |cosines| count).
        world_axis: 0, 1 or 2.

    Returns:
        The array (spatial) axis index, 0-2. Warns (RuntimeWarning) when the best axis is more than ~25 degrees
        off the world axis (oblique acquisition): the result is then only approximately along the world axis.
    """
    if world_axis not in (0, 1, 2):
        raise ValueError(f"world_axis must be 0, 1 or 2, not {world_axis!r}")
    a = np.asarray(affine.detach().cpu().numpy() if torch.is_tensor(affine) else affine, dtype=np.float64)
    cosines = np.abs(a[world_axis, :3]) / np.maximum(np.linalg.norm(a[:3, :3], axis=0), 1e-12)
    axis = int(np.argmax(cosines))
    if cosines[axis] < 0.9:
        warnings.warn(
            f"array axis {axis} is oblique to world axis {_AXIS_NAMES[world_axis]} (cosine "
            f"{cosines[axis]:.2f}); operations along it are only approximately along that world axis.",
            RuntimeWarning,
            stacklevel=2,
        )
    return axis


def left_right_axis(affine: Any) -> int:
    """The array axis along the patient's left-right direction (world x), from the affine; never assumed 0."""
    return array_axis_of_world_axis(affine, 0)


def _index_grid(spatial_shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(3, X, Y, Z) tensor of voxel indices."""
    axes = [torch.arange(int(n), dtype=dtype) for n in spatial_shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)


def warp(
    img: torch.Tensor, coords_vox: torch.Tensor, mode: str = "bilinear", padding_mode: str = "border"
) -> torch.Tensor:
    """Resample a channel-first image at given voxel positions (one interpolation, torch ``grid_sample``).

    Args:
        img: (C, X, Y, Z) tensor (any real or integer dtype; it is interpolated in float32/float64).
        coords_vox: (3, X', Y', Z') positions in ``img``'s voxel indices (axis order 0, 1, 2) where each output
            voxel samples the input (a backward, "pull" mapping).
        mode: ``"bilinear"`` (trilinear in 3D) or ``"nearest"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``: values for positions outside the input.

    Returns:
        (C, X', Y', Z') tensor with ``img``'s dtype (integer labels are rounded back, so nearest keeps values).
    """
    mode, padding_mode = _parse_mode(mode), _parse_padding_mode(padding_mode)
    src = img.as_tensor() if isinstance(img, MetaTensor) else img
    work_dtype = src.dtype if src.dtype in (torch.float32, torch.float64) else torch.float32
    grid = coords_vox.to(device=src.device, dtype=work_dtype)
    sizes = torch.tensor(src.shape[1:], dtype=work_dtype, device=src.device).view(3, 1, 1, 1)
    # align_corners=True: -1 and +1 are the centres of the first and last voxels, so index i -> 2 i / (n - 1) - 1.
    norm = torch.where(sizes > 1, 2.0 * grid / (sizes - 1).clamp(min=1) - 1.0, torch.zeros_like(grid))
    # grid_sample's last dimension is ordered (W, H, D) = (Z, Y, X) for a (N, C, D=X, H=Y, W=Z) input.
    norm = norm.flip(0).permute(1, 2, 3, 0).unsqueeze(0)
    out = F.grid_sample(
        src.to(work_dtype).unsqueeze(0), norm, mode=mode, padding_mode=padding_mode, align_corners=True
    )[0]
    if not src.dtype.is_floating_point:
        out = out.round()
    return out.to(src.dtype)


def _output_dtype(dtype: torch.dtype, mode: str) -> torch.dtype:
    # Why: a linearly interpolated integer image would be truncated; labels (nearest) keep their dtype.
    if mode == "bilinear" and not dtype.is_floating_point:
        return torch.float32
    return dtype


# ----------------------------------------------------------------------------------------------------------------
# B-spline maths (own implementation: separable evaluation of the uniform cubic B-spline basis)
# ----------------------------------------------------------------------------------------------------------------


def cubic_bspline_kernel(s: torch.Tensor) -> torch.Tensor:
    """Centred uniform cubic B-spline :math:`\\beta_3(s)` (support ``|s| < 2``, sums to 1 over integer shifts)."""
    a = s.abs()
    inner = (4.0 - 6.0 * a**2 + 3.0 * a**3) / 6.0
    outer = (2.0 - a).clamp(min=0.0) ** 3 / 6.0
    return torch.where(a < 1.0, inner, outer)


def _bspline_basis_matrix(num_voxels: int, num_control_points: int) -> torch.Tensor:
    """(num_voxels, num_control_points) weights; control point k sits at k - 1 grid spacings from voxel 0.

    The grid has ``n - 3`` intervals over the image extent: points 1 and n - 2 lie on the first and last voxel
    centres, points 0 and n - 1 one spacing outside, so every voxel has its 4 supporting points.
    """
    t = torch.linspace(0.0, float(num_control_points - 3), int(num_voxels), dtype=torch.float64) + 1.0
    if num_voxels == 1:
        t = torch.ones(1, dtype=torch.float64) * 1.5
    s = t[:, None] - torch.arange(num_control_points, dtype=torch.float64)[None, :]
    return cubic_bspline_kernel(s)


def bspline_displacement_field(control_points_mm: Any, spatial_shape: Sequence[int]) -> torch.Tensor:
    """Dense displacement field of a cubic B-spline free-form deformation spanning the image.

    Args:
        control_points_mm: (3, n0, n1, n2) control-point displacements in mm, component ``a`` along array axis
            ``a``; each ``n >= 4``. The coarse grid spans the image extent with ``n - 3`` intervals per axis and
            one extra point beyond each face (see :func:`bspline_folding_bound_mm`).
        spatial_shape: (X, Y, Z) of the image.

    Returns:
        (3, X, Y, Z) float32 displacement in mm along each array axis. Because the basis weights are
        non-negative and sum to 1, ``|u_a| <= max |c_a|`` everywhere.
    """
    c = torch.as_tensor(np.asarray(control_points_mm), dtype=torch.float32)
    if c.ndim != 4 or c.shape[0] != 3:
        raise ValueError(f"control_points_mm must have shape (3, n0, n1, n2), got {tuple(c.shape)}")
    wx, wy, wz = (_bspline_basis_matrix(n, m).to(torch.float32) for n, m in zip(spatial_shape, c.shape[1:]))
    # Separable evaluation: contract one axis at a time (cost ~ 3 X Y Z n instead of 3 X Y Z n^3).
    u = torch.einsum("aijk,xi->axjk", c, wx)
    u = torch.einsum("axjk,yj->axyk", u, wy)
    return torch.einsum("axyk,zk->axyz", u, wz)


def bspline_folding_bound_mm(
    spatial_shape: Sequence[int], spacing_mm: Sequence[float], num_control_points: Sequence[int]
) -> np.ndarray:
    """Largest control-point displacement (mm, per axis) that cannot fold the image.

    The control-point spacing is ``extent / (n - 3)`` with ``extent = (size - 1) * spacing``; the bound is
    ``FOLDING_SAFE_FRACTION * control-point spacing`` (Choi & Lee 2000; Rueckert et al. 2006).

    >>> bspline_folding_bound_mm((32, 32, 16), (1.1, 1.1, 2.6), (6, 6, 4))  # 0.4 * (34.1/3, 34.1/3, 39/1)
    array([ 4.54666667,  4.54666667, 15.6       ])

    Args:
        spatial_shape: (X, Y, Z) voxels.
        spacing_mm: (3,) voxel size in mm.
        num_control_points: (3,) control points per axis (>= 4).

    Returns:
        (3,) float64 array in mm.
    """
    size = np.asarray(spatial_shape, dtype=np.float64)
    extent = np.maximum(size - 1.0, 1.0) * np.asarray(spacing_mm, dtype=np.float64)
    return FOLDING_SAFE_FRACTION * extent / (np.asarray(num_control_points, dtype=np.float64) - 3.0)


def jacobian_determinant(displacement_mm: Any, spacing_mm: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Voxel-wise Jacobian determinant of the map ``x -> x + u(x)``; ``<= 0`` means folding.

    Args:
        displacement_mm: (3, X, Y, Z) displacement in mm, component ``a`` along array axis ``a``.
        spacing_mm: (3,) voxel size in mm along the array axes (derivatives are taken per mm).

    Returns:
        (X, Y, Z) float64 array, ``det(I + du/dx)`` by central differences (one-sided at the faces).
    """
    u = np.asarray(
        displacement_mm.detach().cpu().numpy() if torch.is_tensor(displacement_mm) else displacement_mm,
        dtype=np.float64,
    )
    if u.ndim != 4 or u.shape[0] != 3:
        raise ValueError(f"displacement_mm must have shape (3, X, Y, Z), got {u.shape}")
    spacing = [float(s) for s in spacing_mm]
    jac = np.empty(u.shape[1:] + (3, 3))
    for a in range(3):
        grads = np.gradient(u[a], *spacing) if min(u.shape[1:]) > 1 else [np.zeros(u.shape[1:])] * 3
        for b in range(3):
            jac[..., a, b] = grads[b] + (1.0 if a == b else 0.0)
    return np.linalg.det(jac)


# ----------------------------------------------------------------------------------------------------------------
# Shared machinery of the random spatial warps
# ----------------------------------------------------------------------------------------------------------------


class _RandWarp(RandomizableTransform):
    """Base class: draws parameters in ``randomize``, turns them into voxel sampling positions, resamples once."""

    backend = [TransformBackends.TORCH]

    def __init__(self, prob: float, mode: str, padding_mode: str) -> None:
        RandomizableTransform.__init__(self, _parse_probability(prob))
        self.mode = _parse_mode(mode)
        self.padding_mode = _parse_padding_mode(padding_mode)
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
        img_t = _as_spatial_tensor(img, type(self).__name__)
        mode = self.mode if mode is None else _parse_mode(mode)
        padding_mode = self.padding_mode if padding_mode is None else _parse_padding_mode(padding_mode)
        out_dtype = _output_dtype(img_t.dtype, mode)
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img_t.to(out_dtype) if img_t.dtype != out_dtype else img_t
        if not self._drawn:
            raise RuntimeError(
                f"{type(self).__name__}: no parameters drawn yet; call randomize() before applying with randomize=False"
            )
        coords = self._cached_coords(tuple(int(n) for n in img_t.shape[1:]), _ras_affine(img_t), **kwargs)
        if coords is None:
            out = img_t.as_tensor().clone() if isinstance(img_t, MetaTensor) else img_t.clone()
        else:
            out = warp(img_t, coords, mode, padding_mode)
        if randomize:
            self._cache = None  # a self-contained call: nothing will reuse this draw's (3, X, Y, Z) grid
        return convert_to_dst_type(out, img_t, dtype=out_dtype)[0]


class _RandWarpd(RandomizableTransform, MapTransform):
    """Dictionary wrapper: decides ``prob``, draws once, warps every key with its own mode (one resampling)."""

    backend = _RandWarp.backend

    def __init__(
        self,
        keys: KeysCollection,
        warper: _RandWarp,
        prob: float,
        mode: Any,
        padding_mode: Any,
        allow_missing_keys: bool,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, _parse_probability(prob))
        self.warper = warper
        self.mode = _parse_per_key(mode, len(self.keys), "mode", _parse_mode)
        self.padding_mode = _parse_per_key(padding_mode, len(self.keys), "padding_mode", _parse_padding_mode)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> _RandWarpd:
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
                img_t = _as_spatial_tensor(d[key], type(self).__name__)
                out_dtype = _output_dtype(img_t.dtype, mode)
                d[key] = img_t.to(out_dtype) if img_t.dtype != out_dtype else img_t
        self.warper._cache = None  # the sampling grid is (3, X, Y, Z) floats; do not hold it between samples
        return d


# ----------------------------------------------------------------------------------------------------------------
# 1. Rigid (+ small scaling) in the physical frame
# ----------------------------------------------------------------------------------------------------------------


def _rotation_matrix(angles_rad: Sequence[float]) -> np.ndarray:
    """R = Rz @ Ry @ Rx for rotations about array axes 0, 1, 2 (right-handed)."""
    ax, ay, az = angles_rad
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


class RandRigid(_RandWarp):
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
        self.rotate_range_deg = _parse_triplet(
            rotate_range_deg, "rotate_range_deg", minimum=0.0, below=180.0, unit="degrees"
        )
        self.scale_range = _parse_triplet(scale_range, "scale_range", minimum=0.0, below=1.0)
        self.translate_range_mm = _parse_triplet(translate_range_mm, "translate_range_mm", minimum=0.0, unit="mm")
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
        idx = _index_grid(spatial_shape, torch.float64)
        coords = torch.einsum("ab,bxyz->axyz", torch.as_tensor(m_vox), idx) + torch.as_tensor(t_vox).view(3, 1, 1, 1)
        return coords.to(torch.float32)


class RandRigidd(_RandWarpd):
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


# ----------------------------------------------------------------------------------------------------------------
# 2. Random cubic B-spline free-form deformation
# ----------------------------------------------------------------------------------------------------------------


class RandBSplineDeform(_RandWarp):
    """Random cubic B-spline free-form deformation with control-point displacements in millimetres.

    A coarse grid of ``n0 x n1 x n2`` control points spans the image (``n - 3`` intervals over the extent, one
    point beyond each face, as SimpleITK's ``BSplineTransformInitializer``). Each control point gets a displacement
    :math:`c_a \\sim U(-D_a, D_a)` mm along array axis ``a``, drawn once per call; the dense field is the cubic
    B-spline interpolation of the grid (Rueckert et al. 1999, https://doi.org/10.1109/42.796284), and the image is
    sampled at ``x + u(x)`` (one resampling; linear for images, nearest for labels).

    Since the basis weights are non-negative and sum to 1, ``|u_a| <= D_a`` everywhere. The map cannot fold when
    every ``D_a`` is below ``0.4`` times the control-point spacing (:func:`bspline_folding_bound_mm`); that depends
    on the image extent, so it is checked per call and a ``RuntimeWarning`` names the offending axes.

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

    See also: :class:`RandBSplineDeformd`, :func:`jacobian_determinant`, TorchIO ``RandomElasticDeformation``.
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
        self.num_control_points = _parse_triplet(num_control_points, "num_control_points", minimum=4, integer=True)
        self.max_displacement_mm = _parse_triplet(max_displacement_mm, "max_displacement_mm", minimum=0.0, unit="mm")
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
            f"{_AXIS_NAMES[a]} ({self.max_displacement_mm[a]:g} > {bound[a]:.3g} mm)"
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
        return _index_grid(spatial_shape) + u_vox


class RandBSplineDeformd(_RandWarpd):
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


# ----------------------------------------------------------------------------------------------------------------
# 3. Deformations sampled from the training subjects' anatomical variability
# ----------------------------------------------------------------------------------------------------------------


def _foreground_centroid_mm(label: Any, affine: np.ndarray) -> np.ndarray | None:
    lab = convert_to_tensor(label, track_meta=False)
    idx = torch.nonzero(lab.reshape(-1, *lab.shape[-3:]).amax(0) > 0).to(torch.float64)
    if idx.shape[0] == 0:
        return None
    return affine[:3, :3] @ idx.mean(0).numpy() + affine[:3, 3]


class RandAnatomicalDeform(_RandWarp):
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
        if not _is_number(scale) or scale < 0:
            raise ValueError(f"scale must be a number >= 0, not {scale!r}")
        if not _is_number(max_std) or max_std <= 0:
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
        idx = _index_grid(shape, torch.float64)
        model_vox = torch.einsum("ab,bxyz->axyz", torch.as_tensor(m), idx) + torch.as_tensor(t).view(3, 1, 1, 1)
        # Why "border": the model box may be smaller than the image; extending its edge values keeps u continuous.
        return warp(self.model_field_mm(), model_vox.to(torch.float32), "bilinear", "border")

    def _coords(self, spatial_shape: tuple[int, ...], affine: np.ndarray, **kwargs: Any) -> torch.Tensor | None:
        if self.model is None or self.scale == 0 or not np.any(self.coefficients):
            return None
        u_world = self.displacement_field_world_mm(spatial_shape, affine, kwargs.get("center_mm"))
        inv = torch.as_tensor(np.linalg.inv(affine[:3, :3]), dtype=torch.float32)
        return _index_grid(spatial_shape) + torch.einsum("ab,bxyz->axyz", inv, u_world)

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


class RandAnatomicalDeformd(_RandWarpd):
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
        centre = _foreground_centroid_mm(label, _ras_affine(label))
        return {} if centre is None else {"center_mm": tuple(float(v) for v in centre)}


# ----------------------------------------------------------------------------------------------------------------
# 4. Left-right flip with label swap
# ----------------------------------------------------------------------------------------------------------------


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
        RandomizableTransform.__init__(self, _parse_probability(prob))
        self.label_swap = dict(LEFT_RIGHT_SWAP if label_swap is None else label_swap)

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)

    def __call__(self, img: Any, is_label: bool = False, randomize: bool = True) -> torch.Tensor:
        """Flip ``img`` (C, X, Y, Z); ``is_label`` swaps left/right label values as well."""
        img_t = _as_spatial_tensor(img, type(self).__name__)
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img_t
        axis = left_right_axis(_ras_affine(img_t))
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
        RandomizableTransform.__init__(self, _parse_probability(prob))
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
                d[key] = _as_spatial_tensor(d[key], type(self).__name__)
        return d


# ----------------------------------------------------------------------------------------------------------------
# 5. Intensity: the pieces MONAI lacks, and the configured list
# ----------------------------------------------------------------------------------------------------------------


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
        RandomizableTransform.__init__(self, _parse_probability(prob))
        if not isinstance(num_control_points, int) or isinstance(num_control_points, bool) or num_control_points < 3:
            raise ValueError(f"num_control_points must be an integer >= 3, not {num_control_points!r}")
        self.invert_prob = _parse_probability(invert_prob, "invert_prob")
        self.non_monotonic_prob = _parse_probability(non_monotonic_prob, "non_monotonic_prob")
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


class _RandIntensityd(RandomizableTransform, MapTransform):
    """One draw of an inner intensity transform (built with ``prob=1``) applied to every key, or none at all.

    Subclasses build ``self.inner``; keys not transformed are still returned as float tensors so the output type
    does not depend on the draw.
    """

    def __init__(
        self, keys: KeysCollection, prob: float, inner: RandomizableTransform, allow_missing_keys: bool = False
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, _parse_probability(prob))
        self.inner = inner

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> _RandIntensityd:
        super().set_random_state(seed, state)
        self.inner.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if self._do_transform:
            self.inner.randomize(None)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            if self._do_transform:
                d[key] = self.inner(d[key], randomize=False)
            else:
                img_t = _as_spatial_tensor(d[key], type(self).__name__)
                d[key] = img_t if img_t.dtype.is_floating_point else img_t.to(torch.float32)
        return d


class RandIntensityRemapd(_RandIntensityd):
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
        RandomizableTransform.__init__(self, _parse_probability(prob))
        self.factor_range = _parse_range(factor_range, "factor_range", minimum=1.0)
        axes = _parse_world_axes(world_axes)
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
        img_t = _as_spatial_tensor(img, type(self).__name__)
        img_t = img_t.to(torch.float32) if not img_t.dtype.is_floating_point else img_t
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return img_t
        axis = array_axis_of_world_axis(_ras_affine(img_t), self.world_axis)
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


class RandLowResolutionAxisd(_RandIntensityd):
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


def intensity_augmentations(
    keys: KeysCollection = "image",
    prob: float = 0.15,
    *,
    remap_prob: float = 0.1,
    invert_prob: float = 0.2,
    gamma_range: tuple[float, float] = (0.7, 1.5),
    bias_coeff_range: tuple[float, float] = (-0.1, 0.1),
    low_resolution_factor_range: tuple[float, float] = (1.0, 2.5),
    low_resolution_world_axes: Sequence[int] = (0, 1, 2),
    blur_sigma_vox: tuple[float, float] = (0.25, 1.0),
    noise_std_relative: float = 0.05,
) -> list[MapTransform]:
    """The configured intensity/contrast randomisation for other scanners, in acquisition order.

    1. :class:`RandIntensityRemapd`: random histogram remap, sometimes inverted or non-monotonic (contrast);
    2. ``RandAdjustContrastd``: gamma in ``gamma_range`` on the min-max normalised image (range kept);
    3. ``RandBiasFieldd``: smooth multiplicative field ``exp(sum of Legendre terms, degree 3)``, coefficients
       uniform in ``bias_coeff_range`` (Van Leemput et al. 1999; Sudre et al. 2017);
    4. :class:`RandLowResolutionAxisd`: thick-slice simulation along one patient axis;
    5. ``RandGaussianSmoothd``: blur, sigma uniform in ``blur_sigma_vox`` voxels of the working grid;
    6. ``RandRicianNoised``: magnitude (Rician) noise, std uniform in [0, ``noise_std_relative`` x image std].

    Apply it to images only, after the spatial transforms, on non-negative magnitude images scaled to about
    [0, 1] (e.g. ``ScaleIntensityRangePercentilesd`` in the deterministic transforms): the bias field is
    multiplicative and Rician noise assumes magnitude data.

    Args:
        keys: image key(s); never the label.
        prob: probability of each MONAI piece and of the low-resolution step, in [0, 1].
        remap_prob: probability of the histogram remap, in [0, 1].
        invert_prob: probability that a remap is an inversion, in [0, 1].
        gamma_range: (low, high) gamma exponent.
        bias_coeff_range: (low, high) range of the bias-field polynomial coefficients.
        low_resolution_factor_range: (low >= 1, high) slice-thickening factor.
        low_resolution_world_axes: patient axes that may be degraded (0 = x, 1 = y, 2 = z).
        blur_sigma_vox: (low, high) Gaussian sigma in voxels, per axis.
        noise_std_relative: maximum noise std relative to the image std (>= 0).

    Returns:
        list of MONAI dictionary transforms, to append to ``train#random_transforms``.
    """
    prob = _parse_probability(prob)
    remap_prob = _parse_probability(remap_prob, "remap_prob")
    gamma = _parse_range(gamma_range, "gamma_range")
    if gamma[0] <= 0:
        raise ValueError(f"gamma_range must be > 0, not {gamma_range!r}")
    bias = _parse_range(bias_coeff_range, "bias_coeff_range")
    blur = _parse_range(blur_sigma_vox, "blur_sigma_vox", minimum=0.0)
    if not _is_number(noise_std_relative) or noise_std_relative < 0:
        raise ValueError(f"noise_std_relative must be a number >= 0, not {noise_std_relative!r}")
    return [
        RandIntensityRemapd(keys, prob=remap_prob, invert_prob=invert_prob, non_monotonic_prob=0.1),
        RandAdjustContrastd(keys, prob=prob, gamma=gamma),
        RandBiasFieldd(keys, prob=prob, degree=3, coeff_range=bias),
        RandLowResolutionAxisd(
            keys, prob=prob, factor_range=low_resolution_factor_range, world_axes=low_resolution_world_axes
        ),
        RandGaussianSmoothd(keys, prob=prob, sigma_x=blur, sigma_y=blur, sigma_z=blur),
        RandRicianNoised(
            keys, prob=prob, std=float(noise_std_relative), relative=True, channel_wise=True, sample_std=True
        ),
    ]
