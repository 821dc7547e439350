"""Registration of label maps onto a reference (SimpleITK), for the anatomical-variability model.

Each label map becomes smooth label-derived images on a coarse RAS grid around its muscles (so a registration
takes seconds), is registered affine then cubic B-spline to the reference, and its displacement is sampled on the
reference grid. SimpleITK images here use RAS millimetres as their physical frame (not ITK's LPS): every image
shares that convention, registration does not care, and the fields come out directly in RAS.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk  # noqa: N813 (the library's own spelling)
import torch
from monai.data import MetaTensor

__all__ = [
    "LabelInput",
    "load_label",
    "to_sitk",
    "crop_to_foreground",
    "coarse_grid",
    "grid_image",
    "registration_images",
    "register_labels",
    "overlap_dice",
    "field_on_grid",
]

logger = logging.getLogger(__name__)


LabelInput = Any  # str | Path (NIfTI) | np.ndarray | torch.Tensor | MetaTensor, (X, Y, Z) or (1, X, Y, Z)


def load_label(item: LabelInput, affine: Any | None) -> tuple[np.ndarray, np.ndarray]:
    """-> (X, Y, Z) int32 label array and its (4, 4) voxel -> RAS affine."""
    if isinstance(item, (str, Path)):
        img = nib.load(str(item))
        arr = np.asanyarray(img.dataobj)
        aff = np.asarray(img.affine, dtype=np.float64)
    else:
        if isinstance(item, MetaTensor) and affine is None:
            aff = np.asarray(item.affine.detach().cpu().numpy(), dtype=np.float64)
            if str(item.meta.get("space", "RAS")).upper() == "LPS":
                aff = np.diag([-1.0, -1.0, 1.0, 1.0]) @ aff
        else:
            aff = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
        arr = item.detach().cpu().numpy() if torch.is_tensor(item) else np.asarray(item)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    elif arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"a label map must be 3D (X, Y, Z) or (1, X, Y, Z), got shape {arr.shape}")
    if aff.shape != (4, 4):
        raise ValueError(f"a label affine must have shape (4, 4), got {aff.shape}")
    return np.rint(arr).astype(np.int32), aff


def to_sitk(arr: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """(X, Y, Z) array + voxel -> RAS affine -> SimpleITK image whose physical frame is RAS mm.

    Why RAS rather than ITK's LPS: every image here shares the same convention, registration does not care,
    and the fields then come out directly in RAS.
    """
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = affine[:3, :3] / spacing
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(o) for o in affine[:3, 3]])
    img.SetDirection([float(v) for v in direction.ravel()])
    return img


def crop_to_foreground(arr: np.ndarray, affine: np.ndarray, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    # Why: smoothing per label at native resolution is the slow step; the body outside the muscles is not needed.
    idx = np.argwhere(arr > 0)
    if idx.size == 0:
        raise ValueError("a label map has no foreground (all values <= 0); it cannot be registered")
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    pad = np.ceil(margin_mm / spacing).astype(int)
    lo = np.maximum(idx.min(0) - pad, 0)
    hi = np.minimum(idx.max(0) + pad + 1, arr.shape)
    cropped = arr[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    new_affine = affine.copy()
    new_affine[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]
    return cropped, new_affine


def _world_box(lo_idx: np.ndarray, hi_idx: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array(
        [[a, b, c] for a in (lo_idx[0], hi_idx[0]) for b in (lo_idx[1], hi_idx[1]) for c in (lo_idx[2], hi_idx[2])],
        dtype=np.float64,
    )
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    return world.min(0), world.max(0)


def coarse_grid(arr: np.ndarray, affine: np.ndarray, spacing_mm: float, margin_mm: float) -> dict[str, Any]:
    """RAS-aligned grid at ``spacing_mm``: the foreground's world box plus ``margin_mm``, within the field of view.

    Why clip to the field of view: a scan that covers less of the spine must not be padded with "no muscle",
    which the registration would then try to match by squeezing the anatomy; points of the reference that fall
    outside this grid are simply left out of the metric.
    """
    idx = np.argwhere(arr > 0)
    lo, hi = _world_box(idx.min(0), idx.max(0), affine)
    fov_lo, fov_hi = _world_box(np.zeros(3), np.asarray(arr.shape) - 1.0, affine)
    lo, hi = np.maximum(lo - margin_mm, fov_lo), np.minimum(hi + margin_mm, fov_hi)
    size = np.maximum(np.floor((hi - lo) / spacing_mm).astype(int) + 1, 4)
    return {
        "size": [int(s) for s in size],
        "origin": [float(v) for v in lo],
        "spacing": [float(spacing_mm)] * 3,
        "direction": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
    }


def grid_image(grid: dict[str, Any], pixel: int = sitk.sitkFloat32) -> sitk.Image:
    img = sitk.Image(grid["size"], pixel)
    img.SetOrigin(grid["origin"])
    img.SetSpacing(grid["spacing"])
    img.SetDirection(grid["direction"])
    return img


def registration_images(
    arr: np.ndarray, affine: np.ndarray, grid: dict[str, Any], label_values: Sequence[int], smoothing_mm: float
) -> tuple[sitk.Image, sitk.Image]:
    """Smooth label-coded image and smooth foreground image on ``grid`` (both float32, values in [0, 1]).

    Each label's mask is Gaussian-smoothed in mm (anti-aliasing before the coarse resampling, and smooth edges give
    the metric useful gradients), then weighted by a distinct level so different muscles do not match each other.
    """
    ref = grid_image(grid)
    top = max(max(label_values), 1)
    coded = sitk.Image(ref)
    foreground = sitk.Image(ref)
    for value in label_values:
        mask = to_sitk((arr == value).astype(np.float32), affine)
        soft = sitk.SmoothingRecursiveGaussian(mask, float(smoothing_mm))
        soft = sitk.Resample(soft, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        coded = coded + soft * (0.5 + 0.5 * float(value) / top)
        foreground = foreground + soft
    return coded, sitk.Clamp(foreground, sitk.sitkFloat32, 0.0, 1.0)


def register_labels(
    fixed: tuple[sitk.Image, sitk.Image],
    moving: tuple[sitk.Image, sitk.Image],
    mesh_size: Sequence[int],
    affine_iterations: int,
    bspline_iterations: int,
    num_threads: int | None,
    fixed_mask: sitk.Image,
    bound_mm: float,
) -> tuple[sitk.Transform, sitk.BSplineTransform]:
    """Affine (on the foreground) then B-spline (on the label-coded image); returns (affine, B-spline).

    The metric is evaluated only inside ``fixed_mask`` (the reference anatomy and its surroundings): elsewhere
    both images are flat, so those voxels cost time and carry no information. The B-spline coefficients are
    clipped to ``bound_mm`` afterwards; with the folding-safe bound the registration fields cannot fold.
    """
    fixed_coded, fixed_fg = fixed
    moving_coded, moving_fg = moving
    initial = sitk.CenteredTransformInitializer(
        fixed_fg, moving_fg, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMeanSquares()
    # Why no random sampling: the masked coarse images are small, and every voxel makes the model reproducible.
    reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0,
        minStep=1e-3,
        numberOfIterations=affine_iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(initial, inPlace=False)
    if num_threads:
        reg.SetNumberOfThreads(int(num_threads))
    affine_tx = reg.Execute(fixed_fg, moving_fg)

    bspline = sitk.BSplineTransformInitializer(fixed_coded, [int(m) for m in mesh_size], 3)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMeanSquares()
    reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsLBFGSB(
        gradientConvergenceTolerance=1e-12,
        numberOfIterations=bspline_iterations,
        maximumNumberOfCorrections=5,
        maximumNumberOfFunctionEvaluations=4 * bspline_iterations,
        costFunctionConvergenceFactor=1e7,
    )
    # Why a moving initial transform: the optimised B-spline then holds only the non-linear residual, in the
    # reference frame (moving point = affine(bspline(x))).
    reg.SetMovingInitialTransform(affine_tx)
    reg.SetInitialTransform(bspline, inPlace=True)
    if num_threads:
        reg.SetNumberOfThreads(int(num_threads))
    reg.Execute(fixed_coded, moving_coded)
    logger.debug(
        "B-spline stage: %d iterations, metric %.4g (%s)",
        reg.GetOptimizerIteration(),
        reg.GetMetricValue(),
        reg.GetOptimizerStopConditionDescription(),
    )
    # Why clip after rather than bound the optimiser: L-BFGS-B with bounds stalls after one iteration on these
    # small metric values; clipping keeps the field folding-free and stops rare run-away coefficients.
    params = np.asarray(bspline.GetParameters())
    if np.abs(params).max() > bound_mm:
        logger.debug("B-spline coefficients clipped to +/- %.2f mm (max was %.2f)", bound_mm, np.abs(params).max())
        bspline.SetParameters(tuple(np.clip(params, -bound_mm, bound_mm).tolist()))
    return affine_tx, bspline


def overlap_dice(
    fixed_label: sitk.Image, moving_label: sitk.Image, transform: sitk.Transform, label_values: Sequence[int]
) -> float:
    """Mean Dice of the labels after registration, over the part of the reference the moving scan covers."""
    fixed = sitk.GetArrayFromImage(fixed_label)
    moved = sitk.GetArrayFromImage(
        sitk.Resample(moving_label, fixed_label, transform, sitk.sitkNearestNeighbor, -1, sitk.sitkInt32)
    )
    covered = moved >= 0
    scores = []
    for value in label_values:
        a, b = (fixed == value) & covered, moved == value
        if a.sum() + b.sum() > 0:
            scores.append(2.0 * float((a & b).sum()) / float(a.sum() + b.sum()))
    return float(np.mean(scores)) if scores else 0.0


def field_on_grid(transform: sitk.Transform, grid: dict[str, Any]) -> np.ndarray:
    """(3, X, Y, Z) displacement ``T(x) - x`` of ``transform`` on ``grid``, RAS mm."""
    disp = sitk.TransformToDisplacementField(
        transform, sitk.sitkVectorFloat64, grid["size"], grid["origin"], grid["spacing"], grid["direction"]
    )
    return sitk.GetArrayFromImage(disp).transpose(3, 2, 1, 0)
