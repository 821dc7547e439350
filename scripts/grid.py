"""Voxel-grid geometry: grid comparison, nearest-neighbour label mapping, slice axis and truncation at the FOV ends.

Pure NumPy functions shared by every stage (readers, quantification, quality, report): arrays and 4x4 voxel-to-world
affines (RAS, mm) in, arrays out; the caller does the file I/O.

Conventions (docs/design.md): a mask reaches another grid through both affines (:func:`map_labels_to_grid`,
nearest neighbour), never by array index; grids are compared by affine within a tolerance (:func:`check_same_grid`),
not by shape. The axial slice axis is the voxel axis closest to world z (:func:`slice_axis_from_affine`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
from scripts.label_values import present_values

__all__ = [
    "check_same_grid",
    "map_labels_to_grid",
    "slice_axis_from_affine",
    "truncation_flags",
]


def _check_affine(affine: np.ndarray, name: str) -> np.ndarray:
    """``affine`` as a float64 4x4 array, or a ``ValueError`` naming ``name`` (not 4x4, not finite, singular)."""
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise ValueError(f"affine of {name} must be a finite 4x4 matrix, got shape {aff.shape}")
    if abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        raise ValueError(f"affine of {name} is singular: {aff[:3, :3].tolist()}")
    return aff


def _axcodes(directions: np.ndarray) -> str:
    """Orientation letters (RAS world) of each voxel axis, e.g. ``"RAS"`` or ``"LPS"``."""
    letters = (("L", "R"), ("P", "A"), ("I", "S"))
    codes = []
    for col in directions.T:
        ax = int(np.argmax(np.abs(col)))
        codes.append(letters[ax][int(col[ax] > 0)])
    return "".join(codes)


def _grid_problems(
    shape_a: Iterable[int],
    affine_a: np.ndarray,
    shape_b: Iterable[int],
    affine_b: np.ndarray,
    rtol_spacing: float,
    atol_mm: float,
    atol_direction: float,
) -> list[str]:
    """Human-readable differences between two grids; empty when they agree within tolerance."""
    problems: list[str] = []
    sa, sb = tuple(int(s) for s in shape_a)[:3], tuple(int(s) for s in shape_b)[:3]
    if sa != sb:
        problems.append(f"shape {sa} vs {sb}")
    a, b = _check_affine(affine_a, "A"), _check_affine(affine_b, "B")
    spa, spb = np.linalg.norm(a[:3, :3], axis=0), np.linalg.norm(b[:3, :3], axis=0)
    rel = np.abs(spa - spb) / np.maximum(spa, spb)
    if np.any(rel > rtol_spacing):
        problems.append(
            f"voxel spacing {np.round(spa, 5).tolist()} vs {np.round(spb, 5).tolist()} mm "
            f"(relative difference {rel.max():.3%} > {rtol_spacing:.3%})"
        )
    da, db = a[:3, :3] / spa, b[:3, :3] / spb
    if np.max(np.abs(da - db)) > atol_direction:
        problems.append(
            f"orientation {_axcodes(da)} vs {_axcodes(db)} (direction cosines differ by up to "
            f"{np.max(np.abs(da - db)):.4g})"
        )
    offset = float(np.linalg.norm(a[:3, 3] - b[:3, 3]))
    if offset > atol_mm:
        problems.append(
            f"origin {np.round(a[:3, 3], 4).tolist()} vs {np.round(b[:3, 3], 4).tolist()} "
            f"({offset:.4g} mm apart > {atol_mm} mm)"
        )
    return problems


def check_same_grid(
    shape_a: Iterable[int],
    affine_a: np.ndarray,
    shape_b: Iterable[int],
    affine_b: np.ndarray,
    rtol_spacing: float = 1e-3,
    atol_mm: float = 0.05,
    atol_direction: float = 1e-3,
    name_a: str | None = None,
    name_b: str | None = None,
) -> None:
    """Raise ``ValueError`` unless two images share one voxel grid (within tolerance).

    Compared: the spatial shape (first three dimensions), the voxel spacing (column norms of the affine, relative
    tolerance ``rtol_spacing``: 0.1 % by default, which absorbs DICOM/NIfTI float rounding), the orientation
    (direction cosines, absolute tolerance ``atol_direction`` ~ 0.06 degrees) and the origin (Euclidean distance,
    ``atol_mm``: 0.05 mm, a tenth of the finest MR voxel, well above float32 rounding of world coordinates).
    Water and fat (and in-phase, FF map) of one subject must pass; a mask that fails must be mapped with
    :func:`map_labels_to_grid`, never indexed.

    Args:
        shape_a: shape of image A (extra trailing dimensions are ignored).
        affine_a: 4x4 voxel-to-world (RAS, mm) affine of image A.
        shape_b: shape of image B.
        affine_b: 4x4 affine of image B.
        rtol_spacing: relative spacing tolerance per axis.
        atol_mm: origin tolerance in mm.
        atol_direction: tolerance on each direction-cosine component (unitless).
        name_a: file name of A for the message.
        name_b: file name of B for the message.

    Raises:
        ValueError: naming both images and every difference found (shape, spacing, orientation, origin).
    """
    na, nb = name_a or "image A", name_b or "image B"
    try:
        problems = _grid_problems(shape_a, affine_a, shape_b, affine_b, rtol_spacing, atol_mm, atol_direction)
    except ValueError as err:
        raise ValueError(f"cannot compare the grids of {na} and {nb}: {err}") from err
    if problems:
        raise ValueError(f"grid mismatch between {na} and {nb}: " + "; ".join(problems))


def map_labels_to_grid(
    label_data: np.ndarray,
    label_affine: np.ndarray,
    target_shape: Iterable[int],
    target_affine: np.ndarray,
    atol_mm: float = 0.05,
    fill_value: int | float = 0,
) -> np.ndarray:
    """Resample a label map onto another voxel grid by nearest neighbour in world coordinates.

    For each target voxel ``t``, the source voxel is ``round(inv(A_label) @ A_target @ t)`` (the composed
    voxel-to-voxel affine), so flips (LPS vs RAS), axis permutations, shifts, crops/pads and anisotropic spacing are
    all handled; values are copied, never interpolated, and the dtype is kept. Target voxels whose centre falls
    outside the label grid get ``fill_value``. When both grids agree within :func:`check_same_grid`'s tolerances
    the labels are returned as a copy unchanged (no rounding at all). Rounding is ``floor(c + 0.5)``, explicit
    rather than through ``scipy.ndimage.map_coordinates(order=0)``, so that ties at exact half-voxel positions are
    resolved the same way on every platform; the work is vectorised slice by slice to bound memory.

    Args:
        label_data: 3D label map ``(I, J, K)`` (any dtype).
        label_affine: 4x4 voxel-to-world affine of ``label_data`` (mm).
        target_shape: 3D shape of the target grid (e.g. the FF map).
        target_affine: 4x4 voxel-to-world affine of the target grid (mm).
        atol_mm: tolerance (mm) for the same-grid shortcut and for target centres lying just outside the outer
            face of the label grid (float noise), which are still sampled from the border voxel.
        fill_value: value for target voxels outside the label grid.

    Returns:
        Array of ``target_shape`` with ``label_data``'s dtype.

    Example:
        >>> import numpy as np
        >>> lab = np.arange(4, dtype=np.uint8).reshape(4, 1, 1)
        >>> lps = np.diag([-1.0, -1.0, 1.0, 1.0]); lps[0, 3] = 3.0  # x = 3 - i
        >>> map_labels_to_grid(lab, lps, (4, 1, 1), np.eye(4)).ravel().tolist()
        [3, 2, 1, 0]
    """
    labels = np.asarray(label_data)
    if labels.ndim != 3:
        raise ValueError(f"label_data must be 3D (I, J, K), got shape {labels.shape}")
    shape = tuple(int(s) for s in target_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"target_shape must be three positive sizes, got {shape}")
    src = _check_affine(label_affine, "the label map")
    dst = _check_affine(target_affine, "the target grid")
    if not _grid_problems(labels.shape, src, shape, dst, 1e-3, atol_mm, 1e-3):
        return labels.copy()

    vox = np.linalg.inv(src) @ dst  # target voxel -> label voxel
    lin, off = vox[:3, :3], vox[:3, 3]
    tol_vox = atol_mm / np.linalg.norm(src[:3, :3], axis=0)  # mm -> label voxels, per axis
    upper = np.asarray(labels.shape, dtype=np.float64) - 0.5
    ii, jj = np.meshgrid(np.arange(shape[0], dtype=np.float64), np.arange(shape[1], dtype=np.float64), indexing="ij")
    base = lin[:, 0, None, None] * ii + lin[:, 1, None, None] * jj + off[:, None, None]  # (3, I, J)
    out = np.full(shape, fill_value, dtype=labels.dtype)
    for k in range(shape[2]):
        coords = base + lin[:, 2, None, None] * k
        # pull centres that sit within tolerance outside the outer faces back inside (float noise, not geometry)
        lo_edge = (coords < -0.5) & (coords >= -0.5 - tol_vox[:, None, None])
        hi_edge = (coords >= upper[:, None, None]) & (coords <= upper[:, None, None] + tol_vox[:, None, None])
        idx = np.floor(coords + 0.5).astype(np.int64)
        idx = np.where(lo_edge, 0, idx)
        idx = np.where(hi_edge, np.asarray(labels.shape)[:, None, None] - 1, idx)
        inside = np.all((idx >= 0) & (idx < np.asarray(labels.shape)[:, None, None]), axis=0)
        out[:, :, k][inside] = labels[idx[0][inside], idx[1][inside], idx[2][inside]]
    return out


def slice_axis_from_affine(affine: np.ndarray) -> int:
    """The voxel axis closest to world z (superior-inferior): the axial slice axis.

    The axis whose unit direction vector has the largest absolute z component. A warning is issued when even the
    best axis is more than ~40 degrees off z (strongly oblique or non-axial acquisition).

    Args:
        affine: 4x4 voxel-to-world (RAS, mm) affine.

    Returns:
        0, 1 or 2.
    """
    aff = _check_affine(affine, "the image")
    directions = aff[:3, :3] / np.linalg.norm(aff[:3, :3], axis=0)
    axis = int(np.argmax(np.abs(directions[2])))
    if abs(directions[2, axis]) < 0.75:
        warnings.warn(
            f"no voxel axis is close to world z (best: axis {axis}, cos = {abs(directions[2, axis]):.2f}); "
            "superior/inferior decisions may be wrong",
            RuntimeWarning,
        )
    return axis


def truncation_flags(
    label_data: np.ndarray, labels: Iterable[int] | None, affine: np.ndarray
) -> dict[int, dict[str, bool]]:
    """Flag labels that touch the first or last axial slice (muscle cut off by the field of view).

    The slice axis is the voxel axis closest to world z (:func:`slice_axis_from_affine`); the sign of its z
    component decides which end is inferior, so LPS/RAS and reversed slice orders are handled. A truncated muscle
    has a partial volume; its FF is still usable (FF is less sensitive to coverage than volume).

    Args:
        label_data: 3D label map.
        labels: label values to report; ``None`` reports every non-zero value present. An absent label gets
            ``False`` for both flags (the caller reports it through its voxel count).
        affine: 4x4 voxel-to-world affine of ``label_data``.

    Returns:
        ``{label: {"truncated_inferior": bool, "truncated_superior": bool}}``.
    """
    data = np.asarray(label_data)
    if data.ndim != 3:
        raise ValueError(f"label_data must be 3D, got shape {data.shape}")
    aff = _check_affine(affine, "the label map")
    axis = slice_axis_from_affine(aff)
    z_increases_with_index = aff[2, axis] > 0
    first = set(present_values(np.take(data, 0, axis=axis)))
    last = set(present_values(np.take(data, data.shape[axis] - 1, axis=axis)))
    inferior_end, superior_end = (first, last) if z_increases_with_index else (last, first)
    values = [v for v in present_values(data) if v != 0] if labels is None else list(labels)
    return {int(v): {"truncated_inferior": v in inferior_end, "truncated_superior": v in superior_end} for v in values}
