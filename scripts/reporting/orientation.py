"""Radiological display orientation of a volume, independent of how the scanner stored it.

Axial images are shown as if looking up from the patient's feet: patient right on the image left, anterior at the
top; coronal images with superior at the top and patient right on the image left. The volume is first reoriented
to RAS with nibabel (flips and axis permutations only, no resampling), so the picture does not depend on how the
scanner stored the slices (LPS, RAS, reversed order). The axial view is :func:`display_slice`, which the montage
itself uses, so the orientation can be tested without parsing a PNG.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

__all__ = ["to_ras", "display_slice", "coronal_slice", "axial_view", "coronal_view", "sagittal_view"]


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a 3D array to the closest RAS axis order by flips and permutations (no interpolation).

    Args:
        data: 3D array ``(I, J, K)``.
        affine: its 4x4 voxel-to-world (RAS, mm) affine.

    Returns:
        ``(data_ras, affine_ras)``: array axes point to patient right, anterior and superior.
    """
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {arr.shape}")
    aff = np.asarray(affine, dtype=np.float64)
    ornt = nib.orientations.io_orientation(aff)
    ras = nib.orientations.apply_orientation(arr, ornt)
    return ras, aff @ nib.orientations.inv_ornt_aff(ornt, arr.shape)


def axial_view(ras: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of a RAS array as displayed, shape ``(n_anterior_posterior, n_right_left)``."""
    # RAS array [x, y, z]: rows from anterior (top) to posterior, columns from patient right to patient left
    return ras[::-1, ::-1, k].T


def coronal_view(ras: np.ndarray, j: int) -> np.ndarray:
    """Coronal slice ``j`` of a RAS array as displayed, shape ``(n_superior_inferior, n_right_left)``."""
    # rows from superior (top) to inferior, columns from patient right to patient left
    return ras[::-1, j, ::-1].T


def sagittal_view(ras: np.ndarray, i: int) -> np.ndarray:
    """Sagittal slice ``i`` of a RAS array as displayed, shape ``(n_superior_inferior, n_anterior_posterior)``."""
    # rows from superior (top) to inferior, columns from anterior (left: the patient faces left) to posterior
    return ras[i, ::-1, ::-1].T


def display_slice(inphase: np.ndarray, affine: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of the RAS-reoriented volume as displayed: radiological convention.

    Row 0 is the most anterior row, column 0 the patient's far right; a structure at world ``x < 0`` (patient
    left) appears in the right half of the image when the field of view is centred on ``x = 0``.

    Args:
        inphase: 3D image.
        affine: its 4x4 voxel-to-world (RAS, mm) affine.
        k: slice index along the superior axis of the RAS-reoriented volume (0 = most inferior).

    Returns:
        2D array ``(n_anterior_posterior, n_right_left)``.

    Example:
        >>> import numpy as np
        >>> vol = np.zeros((4, 2, 1)); vol[0, 0, 0] = 1.0  # RAS voxel 0: the patient's far left, posterior
        >>> display_slice(vol, np.eye(4), 0).tolist()  # shown bottom (posterior) right (patient left)
        [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    """
    ras, _ = to_ras(inphase, affine)
    if not 0 <= k < ras.shape[2]:
        raise ValueError(f"slice index k must be in [0, {ras.shape[2] - 1}], got {k}")
    return axial_view(ras, k)


def coronal_slice(volume: np.ndarray, affine: np.ndarray, j: int) -> np.ndarray:
    """Coronal slice ``j`` (index along the anterior axis of the RAS volume), radiological convention.

    Args:
        volume: 3D image.
        affine: its 4x4 voxel-to-world (RAS, mm) affine.
        j: index along the posterior-to-anterior axis of the RAS-reoriented volume.

    Returns:
        2D array ``(n_superior_inferior, n_right_left)``, superior at row 0.
    """
    ras, _ = to_ras(volume, affine)
    if not 0 <= j < ras.shape[1]:
        raise ValueError(f"slice index j must be in [0, {ras.shape[1] - 1}], got {j}")
    return coronal_view(ras, j)
