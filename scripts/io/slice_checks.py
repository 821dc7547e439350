"""Slice geometry of a Dixon scan: axial slices, their thickness, and the field of view.

The model was trained on axial slices at 4 mm; sagittal or coronal slices lose resolution exactly where the lumbar
muscles need it, and very thick slices blur the muscle borders (see :func:`scripts.io.load.load_dixon`, checks 5-7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scripts.io.errors import DixonInputError
from scripts.io.scan_notes import ScanNotes

__all__ = ["SliceLimits", "slice_geometry", "fov_mm_world", "check_slices"]

_SLICE_AXIS_ANISOTROPY = 1.2  # an axis >= 1.2x thicker than the others is the slice axis of a 2D acquisition


@dataclass(frozen=True)
class SliceLimits:
    """The slice geometry a scan may have.

    Attributes:
        tilt_warn_deg: slice tilt (degrees from world z) above which a warning is recorded.
        tilt_refuse_deg: slice tilt above which the scan is refused.
        thick_slice_warn_mm: slice thickness (mm) above which a warning is recorded.
        min_shape_mm: minimum field of view in mm along world x, y, z (one number for all three), or ``None``.

    Raises:
        ValueError: unless ``0 < tilt_warn_deg <= tilt_refuse_deg <= 90``.
    """

    tilt_warn_deg: float
    tilt_refuse_deg: float
    thick_slice_warn_mm: float
    min_shape_mm: float | Sequence[float] | None

    def __post_init__(self) -> None:
        if not 0 < self.tilt_warn_deg <= self.tilt_refuse_deg <= 90:
            raise ValueError(
                f"need 0 < tilt_warn_deg <= tilt_refuse_deg <= 90, got {self.tilt_warn_deg}, {self.tilt_refuse_deg}"
            )


def slice_geometry(affine: np.ndarray) -> tuple[int, float, np.ndarray]:
    """(slice axis, its angle to world z in degrees, unit direction vectors as columns)."""
    lin = affine[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    directions = lin / spacing
    order = np.argsort(spacing)
    if spacing[order[2]] >= _SLICE_AXIS_ANISOTROPY * spacing[order[1]]:
        # thick slices (2D acquisition): the thick axis is where resolution is lost, so it must be world z
        axis = int(order[2])
    else:
        # (near-)isotropic volume: the axis closest to world z; a large angle means the whole volume is oblique
        axis = int(np.argmax(np.abs(directions[2])))
    tilt = float(np.degrees(np.arccos(min(1.0, abs(float(directions[2, axis]))))))
    return axis, tilt, directions


def fov_mm_world(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """Field of view (mm) along world x, y, z: each voxel axis's extent goes to the world axis it is closest to."""
    lin = affine[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    fov = np.zeros(3)
    for i in range(3):
        world = int(np.argmax(np.abs(lin[:, i])))
        fov[world] = max(fov[world], shape[i] * spacing[i])
    return fov


def _check_axial(
    where: str, path: Path, affine: np.ndarray, limits: SliceLimits, notes: ScanNotes
) -> tuple[int, float]:
    """Refuse slices tilted more than ``tilt_refuse_deg`` from world z, warn above ``tilt_warn_deg``.

    Returns:
        ``(slice axis, tilt in degrees)``.
    """
    axis, tilt, directions = slice_geometry(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    closest = "xyz"[int(np.argmax(np.abs(directions[:, axis])))]
    plane = {"x": "sagittal", "y": "coronal", "z": "axial"}[closest]
    geometry = (
        f"the slice axis (array axis {axis}, {float(spacing[axis]):.3g} mm) points {tilt:.1f} degrees from world z "
        f"(closest world axis {closest}: {plane} slices)"
    )
    if tilt > limits.tilt_refuse_deg:
        raise DixonInputError(
            f"{where}: slices are not axial: {geometry}; more than {limits.tilt_refuse_deg:g} degrees is refused "
            "because the model was trained on axial slices; reformat or acquire axial slices",
            path,
        )
    if tilt > limits.tilt_warn_deg:
        notes.warn(f"{where}: oblique slices: {geometry}")
        notes.correct("oblique_slices")
    return axis, tilt


def _check_field_of_view(
    where: str, path: Path, shape: Sequence[int], affine: np.ndarray, min_shape_mm: float | Sequence[float] | None
) -> None:
    """Refuse a field of view shorter than ``min_shape_mm`` along a world axis (``None``: no check)."""
    if min_shape_mm is None:
        return
    wanted = np.broadcast_to(np.asarray(min_shape_mm, dtype=np.float64), (3,))
    fov = fov_mm_world(shape, affine)
    short = [a for a in range(3) if fov[a] + 1e-6 < wanted[a]]
    if short:
        fmt = " x ".join
        raise DixonInputError(
            f"{where}: field of view {fmt(f'{v:.1f}' for v in fov)} mm (world x, y, z) is smaller than the "
            f"minimum {fmt(f'{v:.1f}' for v in wanted)} mm along {', '.join('xyz'[a] for a in short)}",
            path,
        )


def check_slices(
    where: str, path: Path, shape: Sequence[int], affine: np.ndarray, limits: SliceLimits, notes: ScanNotes
) -> tuple[int, float, tuple[float, float, float]]:
    """Axial slices, their thickness and the field of view of the reference image (``where`` names it).

    Returns:
        ``(slice axis, its tilt from world z in degrees, voxel spacing in mm per array axis)``.

    Raises:
        DixonInputError: slices tilted more than ``limits.tilt_refuse_deg``, a field of view under
            ``limits.min_shape_mm``.
    """
    axis, tilt = _check_axial(where, path, affine, limits, notes)
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    if spacing[axis] > limits.thick_slice_warn_mm:
        notes.warn(
            f"{where}: very thick slices ({spacing[axis]:.3g} mm, more than {limits.thick_slice_warn_mm:g} "
            "mm): partial volume blurs the muscle borders; FF and volumes are less accurate"
        )
        notes.correct("thick_slices")
    _check_field_of_view(where, path, shape, affine, limits.min_shape_mm)
    return axis, tilt, (spacing[0], spacing[1], spacing[2])
