"""A low-rank model of the anatomical variability between training subjects, for realistic deformations.

The paper (BMC Medical Imaging 2026, doi 10.1186/s12880-026-02329-9) augmented with "non-linear B-spline
deformations that mimic real anatomical variability". Here that variability is measured on the training set
itself: every subject's label map is registered to a reference subject (SimpleITK: moment-initialised affine, then
cubic B-spline, both on smooth label-derived images at a coarse spacing so it takes seconds), the non-linear
displacement fields are collected in the reference frame with their affine part removed (rigid motion and size
are :class:`scripts.transforms.spatial.rigid.RandRigidd`'s job), and a PCA of the fields gives the modes of variation.

:class:`scripts.transforms.variability_model.AnatomicalVariabilityModel` stores those modes (``.npz``), and
:class:`scripts.transforms.spatial.anatomical_deform.RandAnatomicalDeformd` samples deformations from it during
training.

Displacements are world RAS millimetres (component 0 along +x = patient's right, 1 along +y = anterior,
2 along +z = superior) on the model grid whose voxel -> RAS affine is stored with the model. The registration
steps are in :mod:`scripts.transforms.label_registration`, the clean-up of each field in
:mod:`scripts.transforms.displacement_fit`; this module chains them and runs the PCA.

Command line (``fire``)::

    python -m scripts.transforms.anatomical_variability build --datalist=datalist.json --output=models/variability.npz
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the library's own spelling)
from scripts.transforms.displacement_fit import remove_linear_part, smooth_refit
from scripts.transforms.label_registration import (
    LabelInput,
    coarse_grid,
    crop_to_foreground,
    field_on_grid,
    grid_image,
    load_label,
    overlap_dice,
    register_labels,
    registration_images,
    to_sitk,
)
from scripts.transforms.variability_model import AnatomicalVariabilityModel

__all__ = [
    "AnatomicalVariabilityModel",
    "build_variability_model",
    "build_variability_model_from_datalist",
    "main",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# The steps of building the model
# ----------------------------------------------------------------------------------------------------------------


def _check_arguments(
    n: int,
    affines: Sequence[Any] | None,
    reference_index: int | None,
    model_spacing_mm: float,
    margin_mm: float,
    mesh_size: int | Sequence[int],
    num_components: int | None,
    min_dice: float,
) -> tuple[int, ...]:
    """Validate :func:`build_variability_model`'s arguments; returns the mesh intervals per axis, ``(m0, m1, m2)``."""
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
    return mesh


@dataclass
class _Subjects:
    """The label maps cropped to their muscles, with their coarse grids and registration images.

    Attributes:
        labels: per subject, the cropped (X, Y, Z) int32 label array and its (4, 4) voxel -> RAS affine.
        grids: per subject, the RAS-aligned coarse grid (see :func:`coarse_grid`).
        images: per subject, the (label-coded, foreground) SimpleITK images on its grid.
        values: the label values > 0 found in any subject, sorted.
        reference_index: the subject that defines the reference frame.
    """

    labels: list[tuple[np.ndarray, np.ndarray]]
    grids: list[dict[str, Any]]
    images: list[tuple[sitk.Image, sitk.Image]]
    values: list[int]
    reference_index: int


def _prepare_subjects(
    labels: Sequence[LabelInput],
    affines: Sequence[Any] | None,
    reference_index: int | None,
    model_spacing_mm: float,
    margin_mm: float,
    sigma: float,
) -> _Subjects:
    """Load every label map, pick the reference (largest muscle volume by default), build registration images."""
    subjects = [load_label(item, None if affines is None else affines[i]) for i, item in enumerate(labels)]
    if reference_index is None:
        volumes = [float((arr > 0).sum()) * abs(float(np.linalg.det(aff[:3, :3]))) for arr, aff in subjects]
        reference_index = int(np.argmax(volumes))
    subjects = [crop_to_foreground(arr, aff, margin_mm + 3 * sigma) for arr, aff in subjects]
    values = sorted({int(v) for arr, _ in subjects for v in np.unique(arr) if v > 0})
    grids = [coarse_grid(arr, aff, model_spacing_mm, margin_mm) for arr, aff in subjects]
    images = [registration_images(arr, aff, g, values, sigma) for (arr, aff), g in zip(subjects, grids)]
    return _Subjects(subjects, grids, images, values, reference_index)


@dataclass
class _Reference:
    """The reference subject's frame, where every field is sampled.

    Attributes:
        grid: its coarse grid (the model grid).
        grid_affine: (4, 4) voxel -> RAS (mm) of ``grid``.
        foreground: (X, Y, Z) float64 smoothed foreground on ``grid``, in [0, 1].
        anatomy: ``foreground`` where > 0.3, else 0: the weights of the affine removal and the refit.
        fixed_mask: where the registration metric is evaluated (smoothed foreground > 0.05).
        label: the reference label map resampled (nearest) to ``grid``, for the Dice check.
        bound_mm: folding-safe bound of the B-spline coefficients (mm).
    """

    grid: dict[str, Any]
    grid_affine: np.ndarray
    foreground: np.ndarray
    anatomy: np.ndarray
    fixed_mask: sitk.Image
    label: sitk.Image
    bound_mm: float


def _reference_frame(subjects: _Subjects, mesh: Sequence[int]) -> _Reference:
    """The model grid, the anatomy weights, the metric mask and the coefficient bound of the reference subject."""
    ref_grid = subjects.grids[subjects.reference_index]
    grid_affine = np.eye(4)
    grid_affine[:3, :3] = np.diag(ref_grid["spacing"])
    grid_affine[:3, 3] = ref_grid["origin"]
    ref_fg_img = subjects.images[subjects.reference_index][1]
    ref_fg = sitk.GetArrayFromImage(ref_fg_img).transpose(2, 1, 0).astype(np.float64)
    # Where the labels inform the registration: the muscles and about half a smoothing sigma around them
    # (smoothed foreground > 0.3); further out, the registration's field is drift, not measurement.
    anatomy = np.where(ref_fg > 0.3, ref_fg, 0.0)
    fixed_mask = sitk.Cast(ref_fg_img > 0.05, sitk.sitkUInt8)
    ref_label = sitk.Resample(
        to_sitk(*subjects.labels[subjects.reference_index]),
        grid_image(ref_grid, sitk.sitkInt32),
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        0,
        sitk.sitkInt32,
    )
    # Folding-safe coefficient bound (Choi & Lee 2000: 0.4 x control-point spacing), on the finest mesh axis.
    extent = (np.asarray(ref_grid["size"]) - 1.0) * np.asarray(ref_grid["spacing"])
    bound_mm = 0.4 * float(np.min(extent / np.asarray(mesh)))
    return _Reference(ref_grid, grid_affine, ref_fg, anatomy, fixed_mask, ref_label, bound_mm)


@dataclass
class _Fields:
    """The non-linear fields kept for the PCA and the bookkeeping of the registrations.

    Attributes:
        fields: per kept subject, the (3, X, Y, Z) displacement on the reference grid (RAS mm).
        used: indices of the kept subjects (the reference included).
        dice: subject index (as a string) -> mean label Dice with the reference after registration.
        excluded: indices of the subjects left out (Dice below ``min_dice``).
    """

    fields: list[np.ndarray]
    used: list[int]
    dice: dict[str, float]
    excluded: list[int]


def _register_subjects(
    subjects: _Subjects,
    ref: _Reference,
    mesh: Sequence[int],
    *,
    remove_affine: bool,
    affine_iterations: int,
    bspline_iterations: int,
    min_dice: float,
    num_threads: int | None,
) -> _Fields:
    """Register every subject to the reference and sample its refitted non-linear field on the reference grid."""
    n = len(subjects.labels)
    reference_index = subjects.reference_index
    out = _Fields([], [], {}, [])
    for i in range(n):
        if i == reference_index:
            out.fields.append(np.zeros((3, *ref.grid["size"])))
            out.used.append(i)
            continue
        affine_tx, bspline = register_labels(
            subjects.images[reference_index],
            subjects.images[i],
            mesh,
            affine_iterations,
            bspline_iterations,
            num_threads,
            ref.fixed_mask,
            ref.bound_mm,
        )
        dice = overlap_dice(
            ref.label, to_sitk(*subjects.labels[i]), sitk.CompositeTransform([affine_tx, bspline]), subjects.values
        )
        out.dice[str(i)] = round(dice, 4)
        if dice < min_dice:
            out.excluded.append(i)
            warnings.warn(
                f"subject {i} left out of the variability model: mean label Dice with the reference "
                f"{dice:.2f} < min_dice {min_dice} after registration (different coverage or anatomy?)",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        u = field_on_grid(bspline, ref.grid)
        if remove_affine:
            u = remove_linear_part(u, ref.grid_affine, ref.anatomy)
        u = smooth_refit(u, ref.anatomy, [m + 3 for m in mesh])
        out.fields.append(u)
        out.used.append(i)
        logger.info(
            "registered subject %d/%d to the reference: Dice %.3f, max |u| %.2f mm",
            i + 1,
            n,
            dice,
            float(np.abs(u).max()),
        )
    return out


def _principal_modes(
    fields: Sequence[np.ndarray], num_components: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PCA of the fields: (mean (D,), variances (n,), modes (n, D), mask of the modes kept (n,)), D = 3 X Y Z."""
    n = len(fields)
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
            stacklevel=3,
        )
        keep[0], eig[0] = True, 0.0
    return mean, eig, vt, keep


def _reference_centre_mm(ref: _Reference) -> np.ndarray:
    """(3,) RAS mm centroid of the reference's anatomy (smoothed foreground > 0.5; the grid centre if none)."""
    idx = np.argwhere(ref.foreground > 0.5)
    centre_vox = idx.mean(0) if idx.size else (np.asarray(ref.grid["size"]) - 1) / 2.0
    return ref.grid_affine[:3, :3] @ centre_vox + ref.grid_affine[:3, 3]


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
    # Over 80 lines only through its docstring (13 arguments); each step is one of the helpers above.
    start = time.perf_counter()
    mesh = _check_arguments(
        len(labels), affines, reference_index, model_spacing_mm, margin_mm, mesh_size, num_components, min_dice
    )
    sigma = float(model_spacing_mm if smoothing_mm is None else smoothing_mm)
    subjects = _prepare_subjects(labels, affines, reference_index, model_spacing_mm, margin_mm, sigma)
    ref = _reference_frame(subjects, mesh)
    registered = _register_subjects(
        subjects,
        ref,
        mesh,
        remove_affine=remove_affine,
        affine_iterations=affine_iterations,
        bspline_iterations=bspline_iterations,
        min_dice=min_dice,
        num_threads=num_threads,
    )
    n = len(registered.fields)
    if n < 2:
        raise ValueError(
            f"no subject registered well enough to the reference (Dice {registered.dice}, min_dice "
            f"{min_dice}); check the label maps' coverage or lower min_dice"
        )
    mean, eig, vt, keep = _principal_modes(registered.fields, num_components)
    center_mm = _reference_centre_mm(ref)
    elapsed = time.perf_counter() - start
    info = {
        "method": "SimpleITK affine (moments init, mean squares) + cubic B-spline (L-BFGS-B, mean squares) on "
        "smoothed label-coded images; PCA of non-linear fields",
        "reference_index": subjects.reference_index,
        "model_spacing_mm": float(model_spacing_mm),
        "margin_mm": float(margin_mm),
        "mesh_size": list(mesh),
        "smoothing_mm": sigma,
        "remove_affine": bool(remove_affine),
        "refit": "B-spline on smoothed foreground > 0.3, first-difference weight 0.1, ridge 0.1",
        "label_values": subjects.values,
        "coefficient_bound_mm": round(ref.bound_mm, 3),
        "min_dice": float(min_dice),
        "dice": registered.dice,
        "excluded": registered.excluded,
        "used": registered.used,
        "build_seconds": round(elapsed, 3),
        "sources": [str(x) for x in labels] if all(isinstance(x, (str, Path)) for x in labels) else [],
    }
    model = AnatomicalVariabilityModel(
        components=vt[keep].reshape(-1, 3, *ref.grid["size"]),
        eigenvalues_mm2=eig[keep],
        affine=ref.grid_affine,
        center_mm=center_mm,
        mean_mm=mean.reshape(3, *ref.grid["size"]),
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
