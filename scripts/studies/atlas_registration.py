"""Registration of the multi-atlas baseline (:mod:`scripts.studies.multi_atlas`): parameters, working copies,
affine and B-spline stages, and atlas ranking by normalised cross-correlation.

Working copies are smoothed and resampled to an isotropic grid (default 4 mm) that keeps each image's own origin,
direction and field of view; registration runs there only, because a B-spline registration at the native
1.6 x 1.6 x 4 mm grid costs minutes per atlas on a CPU. The affine stage is moments-initialised, Mattes mutual
information on a random sample of the voxels, regular-step gradient descent, multi-resolution; the B-spline stage
puts a cubic B-spline on top of the affine (Mattes MI, L-BFGS-B, multi-resolution).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the library's own spelling)

__all__ = [
    "MultiAtlasParams",
    "DEFAULT_PARAMS",
    "read_image",
    "working_copy",
    "register_affine",
    "register_bspline",
    "normalised_cross_correlation",
    "rank_atlases",
]


@dataclass(frozen=True)
class MultiAtlasParams:
    """Parameters of the multi-atlas baseline (defaults: those of the validation study, docs/studies/validation.md).

    Attributes:
        working_spacing_mm: isotropic voxel size of the registration grid, mm.
        mi_bins: histogram bins of Mattes mutual information.
        sampling_percentage: fraction (0-1] of the working-grid voxels sampled (randomly) per metric evaluation.
        affine_iterations: maximum iterations per resolution level of the affine stage.
        affine_shrink: shrink factors per level of the affine stage (coarse to fine).
        affine_sigmas_mm: Gaussian smoothing per level of the affine stage, mm.
        bspline_mesh_mm: B-spline control-point spacing over the target's field of view, mm.
        bspline_iterations: maximum L-BFGS-B iterations per level of the B-spline stage.
        bspline_shrink: shrink factors per level of the B-spline stage.
        bspline_sigmas_mm: smoothing per level of the B-spline stage, mm.
        lwv_sigma_mm: standard deviation of the Gaussian window of the local squared difference, mm.
        lwv_gamma: exponent of the inverse local squared difference.
        lwv_eps: added to the local squared difference (intensities in [0, 1]) so that a perfect match has a finite
            weight.
        seed: seed of the random metric sampling (registration is then repeatable).
    """

    working_spacing_mm: float = 4.0
    mi_bins: int = 32
    sampling_percentage: float = 0.02
    affine_iterations: int = 200
    affine_shrink: tuple[int, ...] = (4, 2, 1)
    affine_sigmas_mm: tuple[float, ...] = (8.0, 4.0, 0.0)
    bspline_mesh_mm: float = 60.0
    bspline_iterations: int = 30
    bspline_shrink: tuple[int, ...] = (2, 1)
    bspline_sigmas_mm: tuple[float, ...] = (4.0, 0.0)
    lwv_sigma_mm: float = 6.0
    lwv_gamma: float = 1.0
    lwv_eps: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.working_spacing_mm <= 0:
            raise ValueError(f"working_spacing_mm must be positive, got {self.working_spacing_mm}")
        if not 0 < self.sampling_percentage <= 1:
            raise ValueError(f"sampling_percentage must lie in (0, 1], got {self.sampling_percentage}")
        if self.bspline_mesh_mm <= 0:
            raise ValueError(f"bspline_mesh_mm must be positive, got {self.bspline_mesh_mm}")
        for name in ("affine", "bspline"):
            shrink, sigmas = getattr(self, f"{name}_shrink"), getattr(self, f"{name}_sigmas_mm")
            if len(shrink) != len(sigmas) or not shrink:
                raise ValueError(f"{name}_shrink {shrink} and {name}_sigmas_mm {sigmas} need one value per level")


#: the defaults, shared (read-only) by the functions that take ``params``
DEFAULT_PARAMS = MultiAtlasParams()


# ---------------------------------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------------------------------


def read_image(path: str | Path, pixel_type: int = sitk.sitkFloat32) -> sitk.Image:
    """Read a 3D NIfTI image with SimpleITK; a missing, unreadable or non-3D file raises naming the file.

    Args:
        path: ``.nii`` / ``.nii.gz`` file.
        pixel_type: SimpleITK pixel type to cast to (``sitk.sitkFloat32`` for images, ``sitk.sitkUInt8`` for labels).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: file not found")
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as err:
        raise ValueError(f"{p}: not a readable image ({str(err).strip().splitlines()[-1]})") from err
    if img.GetDimension() == 4 and img.GetSize()[3] == 1:
        img = img[:, :, :, 0]
    if img.GetDimension() != 3:
        raise ValueError(f"{p}: expected a 3D image, got size {img.GetSize()}")
    return sitk.Cast(img, pixel_type)


def working_copy(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """Smooth (Gaussian, sigma = half the new voxel size per axis) and resample to an isotropic grid.

    The new grid keeps the image's origin and direction and covers the same physical extent, so no anatomy is lost.

    Args:
        image: 3D float image.
        spacing_mm: isotropic voxel size of the copy, mm.

    Returns:
        float32 image with spacing ``(spacing_mm,) * 3``.
    """
    old_spacing = np.array(image.GetSpacing())
    size = np.array(image.GetSize())
    new_size = [max(1, int(round(n))) for n in size * old_spacing / spacing_mm]
    # anti-aliasing only along axes that get coarser; the variance is what is missing from the old voxel size
    sigma = np.sqrt(np.maximum(0.0, (spacing_mm / 2.0) ** 2 - (old_spacing / 2.0) ** 2))
    smoothed = sitk.SmoothingRecursiveGaussian(image, [float(max(s, 1e-3)) for s in sigma]) if sigma.any() else image
    # the new origin is the centre of the first new voxel, placed so that both grids start at the same corner
    direction = np.array(image.GetDirection()).reshape(3, 3)
    corner = np.array(image.GetOrigin()) - direction @ (old_spacing / 2.0)
    origin = corner + direction @ np.full(3, spacing_mm / 2.0)
    return sitk.Resample(
        smoothed,
        new_size,
        sitk.Transform(),
        sitk.sitkLinear,
        origin.tolist(),
        [spacing_mm] * 3,
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )


# ---------------------------------------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------------------------------------


def _registration(
    params: MultiAtlasParams, shrink: Sequence[int], sigmas_mm: Sequence[float]
) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=params.mi_bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(params.sampling_percentage, params.seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel([int(s) for s in shrink])
    reg.SetSmoothingSigmasPerLevel([float(s) for s in sigmas_mm])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


def register_affine(fixed: sitk.Image, moving: sitk.Image, params: MultiAtlasParams = DEFAULT_PARAMS) -> sitk.Transform:
    """Affine registration of ``moving`` onto ``fixed`` (both working copies), moments-initialised.

    Args:
        fixed: target working image (float32, physical space).
        moving: atlas working image.
        params: stage settings (``mi_bins``, ``sampling_percentage``, ``affine_*``, ``seed``).

    Returns:
        a transform mapping fixed (target) physical points to moving (atlas) points, as SimpleITK resampling wants.
    """
    initial = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    reg = _registration(params, params.affine_shrink, params.affine_sigmas_mm)
    # step lengths in mm: scales from a 1 mm physical shift make rotation/scale and translation steps comparable
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-3,
        numberOfIterations=params.affine_iterations,
        gradientMagnitudeTolerance=1e-6,
        relaxationFactor=0.5,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(initial, inPlace=False)
    return reg.Execute(fixed, moving)


def register_bspline(
    fixed: sitk.Image, moving: sitk.Image, initial: sitk.Transform, params: MultiAtlasParams = DEFAULT_PARAMS
) -> sitk.Transform:
    """Cubic B-spline registration on top of ``initial`` (the affine), returned as one composite transform.

    The control-point grid spans the fixed image's field of view with about ``params.bspline_mesh_mm`` between
    control points per axis (at least one mesh cell).

    Args:
        fixed: target working image.
        moving: atlas working image.
        initial: the affine from :func:`register_affine` (fixed -> moving points).
        params: stage settings (``bspline_*``, ``mi_bins``, ``sampling_percentage``, ``seed``).

    Returns:
        ``CompositeTransform([initial, bspline])``: a fixed point ``x`` maps to ``initial(bspline(x))``.
    """
    extent = np.array(fixed.GetSize()) * np.array(fixed.GetSpacing())
    mesh = [max(1, int(round(e / params.bspline_mesh_mm))) for e in extent]
    bspline = sitk.BSplineTransformInitializer(fixed, mesh, 3)
    reg = _registration(params, params.bspline_shrink, params.bspline_sigmas_mm)
    reg.SetOptimizerAsLBFGSB(
        gradientConvergenceTolerance=1e-5,
        numberOfIterations=params.bspline_iterations,
        maximumNumberOfCorrections=5,
        maximumNumberOfFunctionEvaluations=4 * params.bspline_iterations,
        costFunctionConvergenceFactor=1e7,
    )
    reg.SetMovingInitialTransform(initial)
    reg.SetInitialTransform(bspline, inPlace=True)
    reg.Execute(fixed, moving)
    return sitk.CompositeTransform([initial, bspline])


def normalised_cross_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation of the voxel intensities of ``a`` and ``b`` (inside ``mask`` if given), in [-1, 1].

    Args:
        a: array of any shape.
        b: array of the same shape.
        mask: boolean array of that shape; NCC over its voxels only.

    Returns:
        NCC; 0.0 when either image is constant there (no information, not NaN, so it ranks last).
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    x = a[mask] if mask is not None else a.ravel()
    y = b[mask] if mask is not None else b.ravel()
    x = x.astype(np.float64) - x.mean() if x.size else x
    y = y.astype(np.float64) - y.mean() if y.size else y
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def rank_atlases(
    target: np.ndarray, warped: Mapping[str, np.ndarray], mask: np.ndarray | None = None
) -> list[tuple[str, float]]:
    """Order atlases by NCC with the target, most similar first (ties keep the input order).

    Args:
        target: target image array (working grid).
        warped: atlas name -> its image resampled onto the same grid (after the affine stage).
        mask: voxels to compare (e.g. the target's body).

    Returns:
        ``[(name, ncc), ...]`` sorted by decreasing NCC.
    """
    scores = [(name, normalised_cross_correlation(target, img, mask)) for name, img in warped.items()]
    return sorted(scores, key=lambda item: -item[1])
