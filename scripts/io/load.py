"""Load and validate one subject's Dixon images: :func:`load_dixon` returns a :class:`scripts.io.dixon_scan.DixonScan`.

Checks, in order, each raising :class:`scripts.io.errors.DixonInputError` with the file and the problem in its
message:

1. each file: present; extension ``.nii``/``.nii.gz`` and a NIfTI-1/2 magic number (gzip-readable when ``.gz``); a
   readable header and data; real-valued; 3D (trailing singleton dimensions such as ``(X, Y, Z, 1)`` are dropped, a
   real 4th dimension is refused) (:mod:`scripts.io.nifti_volume`);
2. each value: no Inf; no NaN in magnitude images (NaN in an FF map means "excluded" and gives a warning); not all
   zero (:mod:`scripts.io.intensity_checks`);
3. negative intensities in magnitude images (water, fat, in-phase, opposed-phase): refused when more than
   ``max_negative_share`` of the non-zero voxels lie below ``-negative_level_rel`` times their 99th percentile (a
   phase, real or imaginary image has about half its voxels far below zero); otherwise clipped at 0
   (``clip_negative``) with a warning. Why tolerated: real-valued 3-point reconstructions (GE) store signed water
   and fat, and noise makes the near-zero species negative. The real GE thigh sample has 15.8 % of its water voxels
   below -1 % of P99 but only 1.4 % below -10 %, so a 1 %/-1 % rule would refuse a valid scan. Clipping is recorded
   in :attr:`DixonScan.corrections`, and refused when more than ``max_clipped_share`` of the non-zero voxels are
   negative (the GE sample: 20.5 % of its water voxels);
4. all images on one voxel grid as the reference image (in-phase, else water): :func:`scripts.grid.check_same_grid`
   with ``rtol_spacing=tol_spacing_rel`` (shape, spacing, direction, origin). With ``trust_voxel_grid`` (a role),
   an image with the trusted image's shape and spacing but another origin or direction (a conversion artefact)
   adopts the trusted image's affine, recorded as a correction; shape or spacing differences are still refused. A
   grid passed within tolerance but not exactly equal is recorded (``grid_within_tolerance``)
   (:mod:`scripts.io.grid_checks`);
5. axial slices: the slice axis (the thickest voxel axis when it is >= 1.2x the others, i.e. a 2D acquisition;
   otherwise the voxel axis closest to world z) must point within ``tilt_refuse_deg`` of world z; beyond
   ``tilt_warn_deg`` a warning is recorded. The model was trained on axial slices; sagittal or coronal slices lose
   resolution exactly where the lumbar muscles need it;
6. field of view: with ``min_shape_mm``, the extent along each world axis (x, y, z) must reach it;
7. slices thicker than ``thick_slice_warn_mm`` give a warning and the ``thick_slices`` correction code: the partial
   volume of such slices blurs muscle borders, and the model was trained at 4 mm (5-7:
   :mod:`scripts.io.slice_checks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scripts.io.concurrent_read import read_checked_images
from scripts.io.dixon_scan import DixonScan
from scripts.io.errors import DixonInputError
from scripts.io.grid_checks import adopt_trusted_grid, check_one_grid
from scripts.io.intensity_checks import IntensityLimits
from scripts.io.roles import IMAGE_ROLES, ROLE_WORDS, dixon_set_of, role_label
from scripts.io.scan_notes import ScanNotes
from scripts.io.slice_checks import SliceLimits, check_slices

__all__ = ["load_dixon"]


def _usable_dixon_set(subject: str, paths: Mapping[str, Path], segmentation_only: bool) -> str:
    """The Dixon set of the entry's images (``"inphase_only"`` for a lone in-phase image when allowed)."""
    dixon_set = dixon_set_of(paths)
    if dixon_set is None and segmentation_only and set(paths) == {"inphase"}:
        dixon_set = "inphase_only"
    if dixon_set is None:
        found = ", ".join(f"{ROLE_WORDS[r]} ({p.name})" for r, p in paths.items()) or "no image"
        raise DixonInputError(
            f"subject {subject!r}: no usable Dixon set: found {found}; need water + fat, in-phase + opposed-phase, "
            "or an FF map with an in-phase image"
        )
    return dixon_set


def _read_on_one_grid(
    paths: Mapping[str, Path],
    limits: IntensityLimits,
    trust_voxel_grid: str | None,
    tol_spacing_rel: float,
    notes: ScanNotes,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], str]:
    """Read and value-check every image (checks 1-3), then put them on one grid (check 4).

    Returns:
        ``(role -> image, role -> affine, reference role)``.
    """
    # several images at a time (zlib releases the GIL); errors, warnings and corrections come in role order
    images, affines = read_checked_images(paths, limits, notes)
    reference = "inphase" if "inphase" in images else "water"
    if trust_voxel_grid is not None:
        adopt_trusted_grid(trust_voxel_grid, images, affines, paths, tol_spacing_rel, notes)
    check_one_grid(reference, images, affines, paths, tol_spacing_rel, notes)
    return images, affines, reference


def load_dixon(
    entry: Mapping[str, Any],
    tol_spacing_rel: float = 1e-3,
    min_shape_mm: float | Sequence[float] | None = None,
    max_negative_share: float = 0.05,
    negative_level_rel: float = 0.10,
    clip_negative: bool = True,
    tilt_warn_deg: float = 10.0,
    tilt_refuse_deg: float = 30.0,
    segmentation_only: bool = False,
    trust_voxel_grid: str | None = None,
    max_clipped_share: float = 0.35,
    thick_slice_warn_mm: float = 8.0,
) -> DixonScan:
    """Load and validate one subject's Dixon images (an entry of :func:`scripts.io.discover.discover_subjects`).

    The checks (1-7) are listed in the module docstring; each refusal names the file and the problem.

    Args:
        entry: dict with role keys ``water``, ``fat``, ``inphase``, ``opposed``, ``ff`` (path or ``None``) and
            optionally ``subject`` and ``label``.
        tol_spacing_rel: relative voxel-spacing tolerance between the images (0.1 % absorbs DICOM/NIfTI rounding).
        min_shape_mm: minimum field of view in mm along world x, y, z (e.g. the network patch size times the
            training spacing), or one number for all three; ``None`` skips the check.
        max_negative_share: share of the non-zero voxels allowed below the negative level (see 3).
        negative_level_rel: the negative level as a fraction of the 99th percentile (see 3).
        clip_negative: clip tolerated negatives at 0. Clipping moves the mean FF of noisy, nearly fat-free
            voxels up slightly; pass ``False`` to keep signed values (``F / (F + W)`` then matches a vendor map
            computed from the same signed images).
        tilt_warn_deg: slice tilt (degrees from world z) above which a warning is recorded.
        tilt_refuse_deg: slice tilt above which the scan is refused.
        segmentation_only: also accept an in-phase image alone (Dixon set ``"inphase_only"``): enough for the
            network, not for FF. For tools that send the bundle one image (MONAI Label, MONAI Deploy).
        trust_voxel_grid: a role whose header the others adopt when only origin or direction differ (see 4).
        max_clipped_share: largest share of negative non-zero voxels that is clipped; more is refused (see 3).
        thick_slice_warn_mm: slice thickness (mm) above which a warning is recorded (see 7).

    Returns:
        A :class:`scripts.io.dixon_scan.DixonScan`.

    Raises:
        DixonInputError: a file or the set fails a check; or the entry has no usable Dixon set.
    """
    subject = str(entry.get("subject") or "?")
    paths = {r: Path(str(entry[r])).expanduser() for r in IMAGE_ROLES if entry.get(r) is not None}
    dixon_set = _usable_dixon_set(subject, paths, segmentation_only)
    slice_limits = SliceLimits(tilt_warn_deg, tilt_refuse_deg, thick_slice_warn_mm, min_shape_mm)
    intensity_limits = IntensityLimits(max_negative_share, negative_level_rel, clip_negative, max_clipped_share)
    notes = ScanNotes()
    images, affines, reference = _read_on_one_grid(paths, intensity_limits, trust_voxel_grid, tol_spacing_rel, notes)
    ref_path, ref_affine, ref_shape = paths[reference], affines[reference], images[reference].shape
    where = role_label(reference, ref_path)
    axis, tilt, spacing = check_slices(where, ref_path, ref_shape, ref_affine, slice_limits, notes)
    return DixonScan(
        subject=subject,
        images=images,
        affine=ref_affine,
        shape=(int(ref_shape[0]), int(ref_shape[1]), int(ref_shape[2])),
        files={r: str(p) for r, p in paths.items()},
        dixon_set=dixon_set,
        spacing_mm=spacing,
        slice_axis=axis,
        slice_tilt_deg=tilt,
        reference=reference,
        label_file=None if entry.get("label") is None else str(entry["label"]),
        warnings=notes.warnings,
        corrections=notes.corrections,
    )
