"""One voxel grid for a subject's Dixon images: the check, and the user's override for header-only differences.

All images must share the reference image's grid (:func:`scripts.grid.check_same_grid`: shape, spacing, direction,
origin). With ``trust_voxel_grid`` (a role), an image with the trusted image's shape and spacing but another origin
or direction (a conversion artefact) adopts the trusted image's affine, recorded as a correction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scripts.grid import check_same_grid
from scripts.io.errors import DixonInputError
from scripts.io.roles import ROLE_WORDS, role_label
from scripts.io.scan_notes import ScanNotes

__all__ = ["adopt_trusted_grid", "check_one_grid"]


def _same_shape_and_spacing(
    shape_a: Sequence[int], affine_a: np.ndarray, shape_b: Sequence[int], affine_b: np.ndarray, rtol: float
) -> bool:
    sa, sb = np.linalg.norm(affine_a[:3, :3], axis=0), np.linalg.norm(affine_b[:3, :3], axis=0)
    return tuple(shape_a[:3]) == tuple(shape_b[:3]) and bool(np.allclose(sa, sb, rtol=rtol, atol=0.0))


def adopt_trusted_grid(
    trusted: str,
    images: Mapping[str, np.ndarray],
    affines: dict[str, np.ndarray],
    paths: Mapping[str, Path],
    rtol: float,
    notes: ScanNotes,
) -> None:
    """Give every image with the trusted image's shape and spacing the trusted image's affine (user's override)."""
    if trusted not in images:
        word = ROLE_WORDS.get(trusted, trusted)
        raise DixonInputError(
            f"trust_voxel_grid = {trusted!r}, but the subject has no {word} image (it has {', '.join(images)})"
        )
    for role in images:
        if role == trusted or np.array_equal(affines[role], affines[trusted]):
            continue
        if _same_shape_and_spacing(images[role].shape, affines[role], images[trusted].shape, affines[trusted], rtol):
            notes.warn(
                f"{role_label(role, paths[role])}: header replaced by that of "
                f"{role_label(trusted, paths[trusted])} (trust_voxel_grid)",
            )
            affines[role] = affines[trusted].copy()
            notes.correct(f"grid_adopted_from_{trusted}")


def check_one_grid(
    reference: str,
    images: Mapping[str, np.ndarray],
    affines: Mapping[str, np.ndarray],
    paths: Mapping[str, Path],
    rtol: float,
    notes: ScanNotes,
) -> None:
    """Refuse images off the reference image's grid, naming the override when only the header differs."""
    ref_affine, ref_shape = affines[reference], images[reference].shape
    for role in images:
        if role == reference:
            continue
        try:
            check_same_grid(
                ref_shape,
                ref_affine,
                images[role].shape,
                affines[role],
                rtol_spacing=rtol,
                name_a=role_label(reference, paths[reference]),
                name_b=role_label(role, paths[role]),
            )
        except ValueError as err:
            hint = ""
            if _same_shape_and_spacing(images[role].shape, affines[role], ref_shape, ref_affine, rtol):
                hint = (
                    ". Shape and spacing agree, so only the header's origin or direction differs (a common "
                    f"conversion artefact): if you have checked that the images are aligned, pass "
                    f"--trust_voxel_grid {reference} to adopt that image's header for the others (recorded in the "
                    "provenance and the report)"
                )
            raise DixonInputError(
                f"{err}; the Dixon images of one subject must share one voxel grid{hint}", paths[role]
            ) from err
        if not np.array_equal(affines[role], ref_affine):
            notes.correct("grid_within_tolerance")
