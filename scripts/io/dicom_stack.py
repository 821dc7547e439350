"""Stack the single-frame slices of one DICOM series into a 3D volume with its RAS affine.

Coordinates: DICOM patient coordinates are LPS (+x patient left, +y posterior, +z head); NIfTI and this bundle
use RAS (+x patient right, +y anterior), so ``affine_ras = diag(-1, -1, 1, 1) @ affine_lps``. Array axes of a
stacked volume: ``(I, J, K)`` = (DICOM column index, DICOM row index, slice index), i.e. ``volume[i, j, k] =
pixel_array_k[j, i]``, the same convention as dcm2niix and ITK, so I runs along the ImageOrientationPatient row
direction and J along its column direction.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from scripts.io.dicom_series import DicomSeries
from scripts.io.errors import DixonInputError

__all__ = ["LPS_TO_RAS", "stack_series"]

#: DICOM LPS patient coordinates -> RAS world coordinates (and back: it is its own inverse).
LPS_TO_RAS: np.ndarray = np.diag([-1.0, -1.0, 1.0, 1.0])

_ORIENTATION_TOL = 1e-4  # direction cosines that differ by less are the same orientation
_SPACING_RTOL = 0.01  # slice gaps may differ by 1 % (rounding of positions written as decimal strings)
_SPACING_ATOL_MM = 1e-3


def _floats(ds: Any, keyword: str, n: int, path: Path) -> np.ndarray:
    value = ds.get(keyword, None)
    if value is None or len(value) != n:
        raise DixonInputError(
            f"{path}: {keyword} is missing or does not hold {n} numbers (got {value!r}); "
            "cannot place the slice in space",
            path,
        )
    return np.asarray([float(v) for v in value], dtype=np.float64)


def _read_slices(series: DicomSeries | Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[Any], str]:
    """(files, their datasets with pixel data, the series named for messages); at least 2 single-frame slices."""
    files = list(series.files) if isinstance(series, DicomSeries) else [Path(p) for p in series]
    name = series.summary() if isinstance(series, DicomSeries) else f"series of {len(files)} file(s)"
    where = f"{name} in {files[0].parent}" if files else name
    if len(files) < 2:
        raise DixonInputError(
            f"{where}: {len(files)} slice(s); a 3D Dixon volume needs at least 2", files[0] if files else None
        )
    datasets = [pydicom.dcmread(p) for p in files]
    if int(datasets[0].get("NumberOfFrames", 1) or 1) > 1:
        raise DixonInputError(
            f"{files[0]}: multi-frame (enhanced) DICOM is not read; export the series as "
            "single-frame images (classic DICOM) or convert it with dcm2niix",
            files[0],
        )
    return files, datasets, where


def _common_plane(files: Sequence[Path], datasets: Sequence[Any], where: str) -> tuple[np.ndarray, np.ndarray]:
    """(ImageOrientationPatient, PixelSpacing) shared by every slice; mixed orientations, sizes or spacings raise."""
    first = datasets[0]
    iop = _floats(first, "ImageOrientationPatient", 6, files[0])
    spacing = _floats(first, "PixelSpacing", 2, files[0])
    shape2d = (int(first.Rows), int(first.Columns))
    for ds, p in zip(datasets, files):
        other = _floats(ds, "ImageOrientationPatient", 6, p)
        if np.max(np.abs(other - iop)) > _ORIENTATION_TOL:
            raise DixonInputError(
                f"{where}: mixed slice orientations: {p.name} has ImageOrientationPatient "
                f"{other.round(5).tolist()}, {files[0].name} has {iop.round(5).tolist()}",
                p,
            )
        if (int(ds.Rows), int(ds.Columns)) != shape2d:
            raise DixonInputError(
                f"{where}: mixed image sizes: {p.name} is {ds.Rows}x{ds.Columns}, "
                f"{files[0].name} is {shape2d[0]}x{shape2d[1]}",
                p,
            )
        if np.max(np.abs(_floats(ds, "PixelSpacing", 2, p) - spacing)) > _SPACING_ATOL_MM:
            raise DixonInputError(f"{where}: mixed pixel spacings in {p.name} and {files[0].name}", p)
    return iop, spacing


def _slice_step(along: np.ndarray, files: Sequence[Path], where: str) -> float:
    """The uniform gap (mm) between slices sorted along the normal; duplicates and uneven gaps raise."""
    gaps = np.diff(along)
    if np.any(gaps < _SPACING_ATOL_MM):
        k = int(np.argmin(gaps))
        raise DixonInputError(
            f"{where}: two slices at one position ({files[k].name} and {files[k + 1].name}, {along[k]:.3f} mm along "
            "the slice normal): the series holds several images per location (echoes, phases or time points); "
            "split it, or select one image type with a rules file",
            files[k],
        )
    step = float(np.median(gaps))
    if np.max(np.abs(gaps - step)) > max(_SPACING_ATOL_MM, _SPACING_RTOL * step):
        k = int(np.argmax(np.abs(gaps - step)))
        raise DixonInputError(
            f"{where}: non-uniform slice spacing: gaps from {gaps.min():.3f} to {gaps.max():.3f} mm (median "
            f"{step:.3f} mm; e.g. {gaps[k]:.3f} mm between {files[k].name} and {files[k + 1].name}); missing "
            "slices or a series made of several stacks cannot form one volume",
            files[k],
        )
    return step


def _check_no_shear(
    positions: np.ndarray, along: np.ndarray, normal: np.ndarray, spacing: np.ndarray, files: Sequence[Path], where: str
) -> None:
    """Every slice must lie on the line through the first slice along the normal (no shear, no in-plane shifts)."""
    offsets = positions - positions[0] - np.outer(along - along[0], normal)
    if np.max(np.abs(offsets)) > max(0.01 * float(min(spacing)), _SPACING_ATOL_MM):
        raise DixonInputError(
            f"{where}: slice positions drift in-plane (up to {np.max(np.abs(offsets)):.3f} mm): "
            "a sheared or tilted stack (gantry tilt) is not supported",
            files[0],
        )


def _pixel_volume(datasets: Sequence[Any]) -> np.ndarray:
    """``(I, J, K)`` volume with RescaleSlope/Intercept applied (float32; the stored integers when all are plain)."""
    slices = []
    plain = True
    for ds in datasets:
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        px = ds.pixel_array
        if slope != 1.0 or intercept != 0.0 or px.dtype.kind == "f":
            plain = False
        slices.append((px, slope, intercept))
    if plain:
        volume = np.stack([px.T for px, _, _ in slices], axis=-1)
    else:
        volume = np.stack([(px.astype(np.float64) * s + b).astype(np.float32).T for px, s, b in slices], axis=-1)
    return np.ascontiguousarray(volume)


def stack_series(series: DicomSeries | Sequence[str | os.PathLike[str]]) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Stack the single-frame slices of one series into a 3D volume with its RAS affine.

    Slices are sorted by their position along the slice normal ``n = row x column`` (ImageOrientationPatient),
    so the slice axis K points along ``+n``; RescaleSlope/RescaleIntercept are applied per slice.

    Args:
        series: a :class:`scripts.io.dicom_series.DicomSeries` or a list of DICOM file paths of one series.

    Returns:
        ``(volume, affine, datasets)``: ``volume`` has shape ``(I, J, K)`` = (Columns, Rows, number of slices),
        ``volume[i, j, k] = pixel_array_k[j, i] * slope + intercept`` (float32; int16/uint16 kept when every
        slice has slope 1 and intercept 0); ``affine`` is the 4x4 voxel-index -> RAS world (mm) matrix; the
        datasets are the slices in K order (with pixel data; e.g. the source images of a DICOM SEG).

    Raises:
        DixonInputError: the message names the series or file and the problem: multi-frame files, mixed
            orientations, sizes or pixel spacings, two slices at one position (several echoes or time points in
            one series), slices off the normal through the first (sheared stacks), non-uniform slice spacing,
            fewer than 2 slices.
    """
    files, datasets, where = _read_slices(series)
    iop, spacing = _common_plane(files, datasets, where)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    positions = np.stack([_floats(ds, "ImagePositionPatient", 3, p) for ds, p in zip(datasets, files)])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    datasets = [datasets[i] for i in order]
    files = [files[i] for i in order]
    step = _slice_step(along, files, where)
    _check_no_shear(positions, along, normal, spacing, files, where)
    affine_lps = np.eye(4)
    # column index i moves along the row direction by the column spacing (PixelSpacing[1]); row index j along the
    # column direction by the row spacing (PixelSpacing[0])
    affine_lps[:3, 0] = row * spacing[1]
    affine_lps[:3, 1] = col * spacing[0]
    affine_lps[:3, 2] = normal * step
    affine_lps[:3, 3] = positions[0]
    return _pixel_volume(datasets), LPS_TO_RAS @ affine_lps, datasets
