"""One subject's validated Dixon images: :class:`DixonScan`, what :func:`scripts.io.load.load_dixon` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scripts.io.errors import DixonInputError
from scripts.io.roles import IMAGE_ROLES

__all__ = ["DixonScan"]


@dataclass
class DixonScan:
    """One subject's Dixon images, validated, in their stored orientation (no reorientation, no resampling).

    Attributes:
        subject: subject id.
        images: role (``water``, ``fat``, ``inphase``, ``opposed``, ``ff``) -> float32 3D array, as stored
            (scaling slope/intercept applied; magnitude images with tolerated small negatives clipped at 0 when
            ``clip_negative``). The FF map is in its stored units (see
            :func:`scripts.quantification.ff_map.compute_ff`).
        affine: 4x4 voxel-to-world (RAS, mm) affine common to all images (that of the reference image).
        shape: spatial shape ``(I, J, K)``.
        files: role -> path of each loaded image.
        dixon_set: see :func:`scripts.io.roles.dixon_set_of`.
        spacing_mm: voxel size per array axis (mm).
        slice_axis: the array axis of the slices (see :func:`scripts.io.load.load_dixon`).
        slice_tilt_deg: angle between the slice axis and world z (degrees).
        reference: role whose affine is ``affine`` (the network input: in-phase, else water).
        label_file: the entry's label path, not loaded (it is mapped to the FF grid by affine later).
        warnings: tolerated problems, one sentence each (also issued as ``RuntimeWarning``).
        corrections: short codes of what was corrected or tolerated silently otherwise (``negatives_clipped_water``,
            ``grid_adopted_from_water``, ``grid_within_tolerance``, ``thick_slices``, ``oblique_slices``): the FF
            table's flags, its JSON and the report name them.
    """

    subject: str
    images: dict[str, np.ndarray]
    affine: np.ndarray
    shape: tuple[int, int, int]
    files: dict[str, str]
    dixon_set: str
    spacing_mm: tuple[float, float, float]
    slice_axis: int
    slice_tilt_deg: float
    reference: str
    label_file: str | None = None
    warnings: list[str] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)

    @property
    def available(self) -> tuple[str, ...]:
        """Roles loaded, in :data:`scripts.io.roles.IMAGE_ROLES` order."""
        return tuple(r for r in IMAGE_ROLES if r in self.images)

    def has(self, *roles: str) -> bool:
        """True when every role in ``roles`` was loaded."""
        return all(r in self.images for r in roles)

    def inphase_or_sum(self) -> np.ndarray:
        """The in-phase image, else water + fat (float32, stored orientation): what a one-channel network reads
        (docs/design.md, as in the paper) and the signal that tells body from background.

        Raises:
            DixonInputError: the scan has neither an in-phase image nor water and fat.
        """
        if "inphase" in self.images:
            return self.images["inphase"]
        if self.has("water", "fat"):
            return (self.images["water"] + self.images["fat"]).astype(np.float32)
        raise DixonInputError(f"subject {self.subject!r}: no network input (needs in-phase, or water and fat)")
