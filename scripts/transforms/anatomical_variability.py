"""A low-rank model of the anatomical variability between training subjects, for realistic deformations.

The paper (BMC Medical Imaging 2026, doi 10.1186/s12880-026-02329-9) augmented with "non-linear B-spline
deformations that mimic real anatomical variability". Here that variability is measured on the training set
itself: every subject's label map is registered to a reference subject (SimpleITK: moment-initialised affine, then
cubic B-spline, both on smooth label-derived images at a coarse spacing so it takes seconds), the non-linear
displacement fields are collected in the reference frame with their affine part removed (rigid motion and size
are :class:`scripts.transforms.augmentation.RandRigidd`'s job), and a PCA of the fields gives the modes of variation.

:class:`scripts.transforms.variability_model.AnatomicalVariabilityModel` stores those modes (``.npz``), and
:class:`scripts.transforms.augmentation.RandAnatomicalDeformd` samples deformations from it during training.

Displacements are world RAS millimetres (component 0 along +x = patient's right, 1 along +y = anterior,
2 along +z = superior) on the model grid whose voxel -> RAS affine is stored with the model.

Command line (``fire``)::

    python -m scripts.transforms.anatomical_variability build --datalist=datalist.json --output=models/variability.npz
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the library's own spelling)
import torch
from scripts.transforms.variability_model import AnatomicalVariabilityModel

__all__ = [
    "AnatomicalVariabilityModel",
    "build_variability_model",
    "build_variability_model_from_datalist",
    "main",
]

logger = logging.getLogger(__name__)

LabelInput = Any  # str | Path (NIfTI) | np.ndarray | torch.Tensor | MetaTensor, (X, Y, Z) or (1, X, Y, Z)


# ----------------------------------------------------------------------------------------------------------------
# Loading and label-derived registration images
# ----------------------------------------------------------------------------------------------------------------


def _load_label(item: LabelInput, affine: Any | None) -> tuple[np.ndarray, np.ndarray]:
    """-> (X, Y, Z) int32 label array and its (4, 4) voxel -> RAS affine."""
    if isinstance(item, (str, Path)):
        import nibabel as nib  # local import: only the file path needs it

        img = nib.load(str(item))
        arr = np.asanyarray(img.dataobj)
        aff = np.asarray(img.affine, dtype=np.float64)
    else:
        from monai.data import MetaTensor

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


def _to_sitk(arr: np.ndarray, affine: np.ndarray) -> sitk.Image:
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


def _crop_to_foreground(arr: np.ndarray, affine: np.ndarray, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
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


def _coarse_grid(arr: np.ndarray, affine: np.ndarray, spacing_mm: float, margin_mm: float) -> dict[str, Any]:
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


def _grid_image(grid: dict[str, Any], pixel: int = sitk.sitkFloat32) -> sitk.Image:
    img = sitk.Image(grid["size"], pixel)
    img.SetOrigin(grid["origin"])
    img.SetSpacing(grid["spacing"])
    img.SetDirection(grid["direction"])
    return img


def _registration_images(
    arr: np.ndarray, affine: np.ndarray, grid: dict[str, Any], label_values: Sequence[int], smoothing_mm: float
) -> tuple[sitk.Image, sitk.Image]:
    """Smooth label-coded image and smooth foreground image on ``grid`` (both float32, values in [0, 1]).

    Each label's mask is Gaussian-smoothed in mm (anti-aliasing before the coarse resampling, and smooth edges give
    the metric useful gradients), then weighted by a distinct level so different muscles do not match each other.
    """
    ref = _grid_image(grid)
    top = max(max(label_values), 1)
    coded = sitk.Image(ref)
    foreground = sitk.Image(ref)
    for value in label_values:
        mask = _to_sitk((arr == value).astype(np.float32), affine)
        soft = sitk.SmoothingRecursiveGaussian(mask, float(smoothing_mm))
        soft = sitk.Resample(soft, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        coded = coded + soft * (0.5 + 0.5 * float(value) / top)
        foreground = foreground + soft
    return coded, sitk.Clamp(foreground, sitk.sitkFloat32, 0.0, 1.0)


def _register(
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


def _overlap_dice(
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


def _field_on_grid(transform: sitk.Transform, grid: dict[str, Any]) -> np.ndarray:
    """(3, X, Y, Z) displacement ``T(x) - x`` of ``transform`` on ``grid``, RAS mm."""
    disp = sitk.TransformToDisplacementField(
        transform, sitk.sitkVectorFloat64, grid["size"], grid["origin"], grid["spacing"], grid["direction"]
    )
    return sitk.GetArrayFromImage(disp).transpose(3, 2, 1, 0)


def _remove_linear_part(u: np.ndarray, grid_affine: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Subtract the least-squares affine field ``A x + t`` fitted where ``weights`` > 0 (the anatomy)."""
    idx = np.argwhere(weights > 0)
    if idx.shape[0] < 4:
        return u
    world = idx @ grid_affine[:3, :3].T + grid_affine[:3, 3]
    design = np.concatenate([world, np.ones((world.shape[0], 1))], axis=1)
    w = np.sqrt(weights[tuple(idx.T)])[:, None]
    target = u[:, idx[:, 0], idx[:, 1], idx[:, 2]].T
    coef, *_ = np.linalg.lstsq(design * w, target * w, rcond=None)
    all_idx = np.stack(np.meshgrid(*[np.arange(n) for n in u.shape[1:]], indexing="ij"), axis=-1).reshape(-1, 3)
    all_world = all_idx @ grid_affine[:3, :3].T + grid_affine[:3, 3]
    linear = (np.concatenate([all_world, np.ones((all_world.shape[0], 1))], axis=1) @ coef).T
    return u - linear.reshape(u.shape)


def _cubic_bspline_basis(num_voxels: int, num_control_points: int) -> np.ndarray:
    """(num_voxels, num_control_points) uniform cubic B-spline weights, the grid spanning the voxels.

    Same layout as :func:`scripts.transforms.augmentation.bspline_displacement_field` (n - 3 intervals over the extent).
    """
    t = np.linspace(0.0, num_control_points - 3.0, num_voxels) + 1.0
    a = np.abs(t[:, None] - np.arange(num_control_points)[None, :])
    return np.where(a < 1.0, (4.0 - 6.0 * a**2 + 3.0 * a**3) / 6.0, np.clip(2.0 - a, 0.0, None) ** 3 / 6.0)


def _smooth_refit(
    u: np.ndarray, weights: np.ndarray, num_control_points: Sequence[int], smoothness: float = 0.1, ridge: float = 0.1
) -> np.ndarray:
    """Weighted, regularised least-squares fit of a cubic B-spline field to ``u`` where ``weights`` > 0.

    Minimises ``sum_v w_v |B c - u|^2 + s |D c|^2 + r |c|^2`` (``D``: first differences between neighbouring
    control points; ``s``, ``r`` relative to the mean data weight per coefficient).
    Why: label maps only inform the registration at the muscles' boundaries; elsewhere the registration's
    B-spline coefficients drift freely (several mm at the grid's edges). The refit keeps the measured
    displacements on the anatomy, continues them smoothly outside and lets them fade where nothing was measured.
    """
    bases = [_cubic_bspline_basis(n, m) for n, m in zip(u.shape[1:], num_control_points)]
    idx = np.argwhere(weights > 0)
    if idx.shape[0] == 0:
        return np.zeros_like(u)
    w = weights[tuple(idx.T)]
    # Design rows: Kronecker products of the three 1D bases at each anatomy voxel.
    rows = (
        bases[0][idx[:, 0], :, None, None] * bases[1][idx[:, 1], None, :, None] * bases[2][idx[:, 2], None, None, :]
    ).reshape(idx.shape[0], -1)
    gram = rows.T @ (rows * w[:, None])
    scale = float(np.mean(np.diag(gram)))
    diffs = []
    for axis, n in enumerate(num_control_points):
        eyes = [np.eye(m) for m in num_control_points]
        eyes[axis] = np.diff(np.eye(n), axis=0)
        diffs.append(np.kron(np.kron(eyes[0], eyes[1]), eyes[2]))
    d = np.concatenate(diffs, axis=0)
    gram += scale * (smoothness * d.T @ d + ridge * np.eye(gram.shape[0]))
    rhs = rows.T @ (u[:, idx[:, 0], idx[:, 1], idx[:, 2]].T * w[:, None])
    coef = np.linalg.solve(gram, rhs).T.reshape(3, *num_control_points)
    out = np.einsum("aijk,xi->axjk", coef, bases[0])
    out = np.einsum("axjk,yj->axyk", out, bases[1])
    return np.einsum("axyk,zk->axyz", out, bases[2])


# ----------------------------------------------------------------------------------------------------------------
# Building the model
# ----------------------------------------------------------------------------------------------------------------


def build_variability_model(
    labels: Sequence[LabelInput],
    affines: Sequence[Any] | None = None,
    *,
    reference_index: int | None = None,
    model_spacing_mm: float = 8.0,
    margin_mm: float = 15.0,
    mesh_size: int | Sequence[int] = 4,
    smoothing_mm: float | None = None,
    num_components: int | None = None,
    remove_affine: bool = True,
    affine_iterations: int = 100,
    bspline_iterations: int = 50,
    min_dice: float = 0.6,
    num_threads: int | None = None,
) -> AnatomicalVariabilityModel:
    """Register the training label maps to a reference and build a PCA model of their non-linear differences.

    Steps: (1) each label map becomes a smooth label-coded image and a smooth foreground image on a RAS grid at
    ``model_spacing_mm`` around its muscles, within its field of view; (2) each subject is registered to the
    reference, affine (moment initialisation, mean squares on the foreground) then cubic B-spline with
    ``mesh_size`` intervals per axis (L-BFGS-B, mean squares on the label-coded image, coefficients clipped to
    the folding-safe 0.4 x mesh spacing), the metric restricted to the reference anatomy; a subject whose
    labels still overlap the reference's poorly (mean Dice < ``min_dice``, e.g. a very different field of view)
    is left out with a warning; (3) the B-spline displacement (reference -> subject, the
    affine excluded) is sampled on the reference grid; with ``remove_affine`` the least-squares affine field over
    the anatomy is also subtracted, leaving shape only; the field is then refitted by a regularised cubic B-spline
    on the anatomy (muscles plus about half a smoothing sigma), because label maps say nothing about the motion far
    from the muscles; (4) PCA of the fields (the reference's zero field included).

    Args:
        labels: label maps: NIfTI paths, or arrays/tensors/MetaTensors of shape (X, Y, Z) or (1, X, Y, Z).
            At least 2; all with the same label convention (docs/design.md table).
        affines: (4, 4) voxel -> RAS world (mm) affines for array inputs (MetaTensors and files carry their own);
            None: identity (1 mm voxels) for plain arrays.
        reference_index: which subject is the reference frame; None: the one with the largest muscle volume
            (usually the widest coverage).
        model_spacing_mm: spacing of the registration images and of the model grid (mm, > 0); coarser is faster
            (the modes are smooth: with ``mesh_size`` 4 the control points are several cm apart).
        margin_mm: margin around the reference's muscles covered by the model grid (mm, >= 0).
        mesh_size: B-spline mesh intervals per axis (integer >= 1, or 3 of them); small = smooth and fast.
        smoothing_mm: Gaussian sigma (mm) of the label masks; default ``model_spacing_mm``.
        num_components: keep at most this many modes (default: every mode with non-zero variance, <= n - 1).
        remove_affine: subtract the residual affine part of each field (over the anatomy).
        affine_iterations: iterations of the affine stage.
        bspline_iterations: iterations of the B-spline stage.
        min_dice: subjects whose mean label Dice with the reference after registration is below this are left
            out (in [0, 1]; 0 keeps all).
        num_threads: SimpleITK threads per registration (None: SimpleITK's default).

    Returns:
        The model (see :class:`AnatomicalVariabilityModel`); ``info`` records the parameters and the timing.

    >>> model = build_variability_model(["s1_label.nii.gz", "s2_label.nii.gz", "s3_label.nii.gz"])
    >>> model.save("models/anatomical_variability.npz")
    """
    start = time.perf_counter()
    n = len(labels)
    if n < 2:
        raise ValueError(f"labels must hold at least 2 label maps to measure variability, got {n}")
    if affines is not None and len(affines) != n:
        raise ValueError(f"affines must have one entry per label map ({n}), got {len(affines)}")
    if reference_index is not None and not 0 <= reference_index < n:
        raise ValueError(f"reference_index must be in [0, {n - 1}], not {reference_index}")
    if not 0.0 <= min_dice <= 1.0:
        raise ValueError(f"min_dice must be in [0, 1], not {min_dice!r}")
    if not model_spacing_mm > 0:
        raise ValueError(f"model_spacing_mm must be > 0, not {model_spacing_mm!r}")
    if margin_mm < 0:
        raise ValueError(f"margin_mm must be >= 0, not {margin_mm!r}")
    mesh = (mesh_size,) * 3 if isinstance(mesh_size, int) else tuple(mesh_size)
    if len(mesh) != 3 or any(not isinstance(m, int) or m < 1 for m in mesh):
        raise ValueError(f"mesh_size must be an integer >= 1 or 3 of them, not {mesh_size!r}")
    if num_components is not None and num_components < 1:
        raise ValueError(f"num_components must be None or >= 1, not {num_components!r}")
    sigma = float(model_spacing_mm if smoothing_mm is None else smoothing_mm)

    subjects = [_load_label(item, None if affines is None else affines[i]) for i, item in enumerate(labels)]
    if reference_index is None:
        volumes = [float((arr > 0).sum()) * abs(float(np.linalg.det(aff[:3, :3]))) for arr, aff in subjects]
        reference_index = int(np.argmax(volumes))
    subjects = [_crop_to_foreground(arr, aff, margin_mm + 3 * sigma) for arr, aff in subjects]
    values = sorted({int(v) for arr, _ in subjects for v in np.unique(arr) if v > 0})
    grids = [_coarse_grid(arr, aff, model_spacing_mm, margin_mm) for arr, aff in subjects]
    images = [_registration_images(arr, aff, g, values, sigma) for (arr, aff), g in zip(subjects, grids)]

    ref_grid = grids[reference_index]
    grid_affine = np.eye(4)
    grid_affine[:3, :3] = np.diag(ref_grid["spacing"])
    grid_affine[:3, 3] = ref_grid["origin"]
    ref_fg_img = images[reference_index][1]
    ref_fg = sitk.GetArrayFromImage(ref_fg_img).transpose(2, 1, 0).astype(np.float64)
    # Where the labels inform the registration: the muscles and about half a smoothing sigma around them
    # (smoothed foreground > 0.3); further out, the registration's field is drift, not measurement.
    anatomy = np.where(ref_fg > 0.3, ref_fg, 0.0)
    fixed_mask = sitk.Cast(ref_fg_img > 0.05, sitk.sitkUInt8)
    ref_label = sitk.Resample(
        _to_sitk(*subjects[reference_index]),
        _grid_image(ref_grid, sitk.sitkInt32),
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        0,
        sitk.sitkInt32,
    )
    # Folding-safe coefficient bound (Choi & Lee 2000: 0.4 x control-point spacing), on the finest mesh axis.
    extent = (np.asarray(ref_grid["size"]) - 1.0) * np.asarray(ref_grid["spacing"])
    bound_mm = 0.4 * float(np.min(extent / np.asarray(mesh)))
    fields, used, dice_scores, excluded = [], [], {}, []
    for i in range(n):
        if i == reference_index:
            fields.append(np.zeros((3, *ref_grid["size"])))
            used.append(i)
            continue
        affine_tx, bspline = _register(
            images[reference_index],
            images[i],
            mesh,
            affine_iterations,
            bspline_iterations,
            num_threads,
            fixed_mask,
            bound_mm,
        )
        dice = _overlap_dice(ref_label, _to_sitk(*subjects[i]), sitk.CompositeTransform([affine_tx, bspline]), values)
        dice_scores[str(i)] = round(dice, 4)
        if dice < min_dice:
            excluded.append(i)
            warnings.warn(
                f"subject {i} left out of the variability model: mean label Dice with the reference "
                f"{dice:.2f} < min_dice {min_dice} after registration (different coverage or anatomy?)",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        u = _field_on_grid(bspline, ref_grid)
        if remove_affine:
            u = _remove_linear_part(u, grid_affine, anatomy)
        u = _smooth_refit(u, anatomy, [m + 3 for m in mesh])
        fields.append(u)
        used.append(i)
        logger.info(
            "registered subject %d/%d to the reference: Dice %.3f, max |u| %.2f mm",
            i + 1,
            n,
            dice,
            float(np.abs(u).max()),
        )
    n = len(fields)
    if n < 2:
        raise ValueError(
            f"no subject registered well enough to the reference (Dice {dice_scores}, min_dice "
            f"{min_dice}); check the label maps' coverage or lower min_dice"
        )

    flat = np.stack(fields).reshape(n, -1)
    mean = flat.mean(0)
    # SVD of the centred (n x D) matrix: n is small, so this is the cheap way to the covariance eigenvectors.
    _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    eig = s**2 / (n - 1)
    keep = eig > 1e-9 * max(float(eig.max()), 1e-12)
    if num_components is not None:
        keep[num_components:] = False
    if not np.any(keep):
        # Why not an error: near-identical subjects are a legitimate (if useless) input; the model is the identity.
        warnings.warn(
            "the label maps show no non-linear variability after registration (all fields are zero); the "
            "model has one mode with variance 0, so it samples the identity",
            RuntimeWarning,
            stacklevel=2,
        )
        keep[0], eig[0] = True, 0.0
    idx = np.argwhere(ref_fg > 0.5)
    centre_vox = idx.mean(0) if idx.size else (np.asarray(ref_grid["size"]) - 1) / 2.0
    center_mm = grid_affine[:3, :3] @ centre_vox + grid_affine[:3, 3]
    elapsed = time.perf_counter() - start
    info = {
        "method": "SimpleITK affine (moments init, mean squares) + cubic B-spline (L-BFGS-B, mean squares) on "
        "smoothed label-coded images; PCA of non-linear fields",
        "reference_index": reference_index,
        "model_spacing_mm": float(model_spacing_mm),
        "margin_mm": float(margin_mm),
        "mesh_size": list(mesh),
        "smoothing_mm": sigma,
        "remove_affine": bool(remove_affine),
        "refit": "B-spline on smoothed foreground > 0.3, first-difference weight 0.1, ridge 0.1",
        "label_values": values,
        "coefficient_bound_mm": round(bound_mm, 3),
        "min_dice": float(min_dice),
        "dice": dice_scores,
        "excluded": excluded,
        "used": used,
        "build_seconds": round(elapsed, 3),
        "sources": [str(x) for x in labels] if all(isinstance(x, (str, Path)) for x in labels) else [],
    }
    model = AnatomicalVariabilityModel(
        components=vt[keep].reshape(-1, 3, *ref_grid["size"]),
        eigenvalues_mm2=eig[keep],
        affine=grid_affine,
        center_mm=center_mm,
        mean_mm=mean.reshape(3, *ref_grid["size"]),
        num_subjects=n,
        info=info,
    )
    logger.info(
        "anatomical variability model: %d subjects, %d modes, rms std %.2f mm, %.1f s",
        n,
        model.num_components,
        model.rms_std_mm,
        elapsed,
    )
    return model


def build_variability_model_from_datalist(
    datalist: str,
    output: str,
    key: str = "training",
    label_key: str = "label",
    base_dir: str | None = None,
    max_subjects: int | None = None,
    **kwargs: Any,
) -> str:
    """Build the model from a MONAI datalist JSON (``{"training": [{"image": ..., "label": ...}, ...]}``).

    Args:
        datalist: path of the datalist JSON.
        output: path of the ``.npz`` to write.
        key: the list in the datalist to use.
        label_key: the field holding each label path.
        base_dir: folder that relative paths are relative to (default: the datalist's folder).
        max_subjects: use only the first N entries (registration time grows linearly).
        **kwargs: passed to :func:`build_variability_model` (e.g. ``model_spacing_mm=4``, ``mesh_size=4``).

    Returns:
        The output path.
    """
    path = Path(datalist)
    entries = json.loads(path.read_text())
    if key not in entries:
        raise KeyError(f"{path}: no list {key!r}; keys are {sorted(entries)}")
    root = Path(base_dir) if base_dir else path.parent
    items = entries[key][:max_subjects] if max_subjects else entries[key]
    labels = []
    for i, item in enumerate(items):
        if label_key not in item:
            raise KeyError(f"{path}: entry {i} of {key!r} has no {label_key!r}")
        p = Path(item[label_key])
        labels.append(p if p.is_absolute() else root / p)
    model = build_variability_model(labels, **kwargs)
    return str(model.save(output))


def main() -> None:
    """Command line: ``python -m scripts.transforms.anatomical_variability build --datalist=... --output=...``."""
    import fire

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from scripts.configuration.settings import typed_cli

    fire.Fire({"build": typed_cli(build_variability_model_from_datalist)})


if __name__ == "__main__":
    main()
