"""Vertebral bodies found in the FF map and named from a stated lowest body, where no network named any.

Why: the spine network misses most vertebral bodies of real scans whose marrow looks unlike the phantom's (on the
MuscleMap and TotalSegmentator MR samples it found 1.4 and 14 mL; docs/studies/real_scans.md), and then a scan of the
L2-L5 protocol gets no per-level table although the user stated its lowest body. On a Dixon FF map the lumbar bodies
are plain to see: marrow of intermediate FF (20-80 %) inside a thin shell, between discs of water
(:mod:`scripts.quality.image_spine` finds them slice by slice). Along the column the found slices form one piece
per body, parted by the discs, and the count of :mod:`scripts.quantification.vertebra_naming` (rule 6: up from the
stated lowest body, every gap a disc, at most about a disc of field of view below it) names them as it names a spine
network's bodies.

The image cannot tell the sacrum from a body (the top of S1 is found as a short piece below L5), so nothing is
counted from it: the names come from a statement only, and without one nothing is named. Two guards keep a piece
that is not a whole body from shifting the names:

- a piece shorter than the shortest plausible body (``HEIGHT_RANGE_MM[0]``) is left out, unless it touches the cranial
  end of the field of view (a body cut there is named by the count below it and shifts nothing). A short piece at the
  caudal end is the top of S1 as often as a cut L5, and a short piece inside the column is part of a body found on
  only some of its slices; either would be counted as a body of its own;
- with a short piece left out, the gap it leaves is no disc, or more field of view than a disc lies below the lowest
  body, and the count refuses to name anything (the record says why).

Coordinates: world RAS mm from the affine (any storage orientation); the maps are on the FF grid.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scripts.grid import slice_axis_from_affine
from scripts.quality.image_spine import ImageSpine, ImageSpineLimits, find_spine
from scripts.quantification.levels import HEIGHT_RANGE_MM, field_of_view_z, z_of_voxels
from scripts.quantification.vertebra_naming import NamingResult, count_bodies_from_sacrum, lowest_body_value

__all__ = ["IMAGE_SOURCE", "MAX_SLICE_MM", "vertebrae_from_image"]

#: the naming record's ``source`` for bodies found in the FF map (the spine network's is "spine network")
IMAGE_SOURCE = "FF map"
#: thickest slice step (mm) whose discs the search can see: a slice shows a disc (no marrow) only where the disc fills
#: most of it, and lumbar discs are 8-14 mm high (thinner when degenerate). Measured at 3.8-5 mm (phantoms);
#: on the real CHAOS scan (9 mm) bodies and discs run together.
MAX_SLICE_MM = 6.0
_NO_SACRUM = "the sacrum is not sought in the FF map (its top looks like a body)"


def _whole_bodies(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, int]:
    """``mask`` without its pieces shorter than a body (unless cut by the cranial end of the field of view), and how
    many pieces were left out."""
    comp, n = ndimage.label(mask)
    if n == 0:
        return mask, 0
    half = 0.5 * float(np.abs(affine[2, :3]).max())
    top = field_of_view_z(affine, mask.shape)[1]
    keep = np.zeros(n + 1, dtype=bool)
    for k, box in enumerate(ndimage.find_objects(comp), start=1):
        idx = tuple(c + s.start for c, s in zip(np.nonzero(comp[box] == k), box))
        z = z_of_voxels(affine, idx)
        height = float(z.max() - z.min()) + 2 * half
        keep[k] = height >= HEIGHT_RANGE_MM[0] or z.max() + half >= top - half
    return keep[comp], int(n - keep[1:].sum())


def vertebrae_from_image(
    ff_pct: np.ndarray | None,
    affine: np.ndarray,
    lowest_vertebra: str | None,
    body: np.ndarray | None = None,
    min_piece_share: float = 0.1,
    limits: ImageSpineLimits | None = None,
) -> tuple[np.ndarray, NamingResult, ImageSpine | None]:
    """The lumbar vertebral bodies of an FF map, named up from the stated lowest body in view.

    Args:
        ff_pct: ``(X, Y, Z)`` voxel FF in percent (0-100), NaN where excluded; None (no FF map) names nothing.
        affine: 4x4 voxel-to-world (RAS, mm) affine of ``ff_pct``.
        lowest_vertebra: the lowest lumbar body in the field of view as the user states it (``"L1"`` ... ``"L5"``);
            None names nothing (the image shows no sacrum to count from).
        body: ``(X, Y, Z)`` bool body outline (default: the finite voxels of ``ff_pct``).
        min_piece_share: a body piece under this share of the largest is a speck
            (:func:`~scripts.quantification.vertebra_naming.count_bodies_from_sacrum`).
        limits: what a vertebral body looks like (:class:`~scripts.quality.image_spine.ImageSpineLimits`).

    Returns:
        ``(vertebrae, record, spine)``: a uint8 map on the FF grid with 9-13 the bodies named L1-L5 (0 elsewhere,
        also bodies above L1 and everything when nothing is named), the naming record (status ``"counted"`` or
        ``"not named"`` with the reasons; anchor the stated body), and the bodies found
        (:class:`~scripts.quality.image_spine.ImageSpine`; None when the search did not run).

    Raises:
        ValueError: an unknown ``lowest_vertebra``.
    """
    lowest = lowest_body_value(lowest_vertebra)  # an unknown name fails before the search
    shape = np.shape(ff_pct) if ff_pct is not None else (0, 0, 0)
    anchor = f"stated lowest body {str(lowest_vertebra).strip().upper()}" if lowest is not None else "sacrum"
    if lowest is None:
        why = "no lowest vertebra stated: the FF map shows no sacrum to count from"
        return np.zeros(shape, np.uint8), NamingResult("not named", reasons=[why]), None
    if ff_pct is None:
        return np.zeros(shape, np.uint8), NamingResult("not named", reasons=["no FF map"], anchor=anchor), None
    aff = np.asarray(affine, dtype=np.float64)
    step = float(np.linalg.norm(aff[:3, slice_axis_from_affine(aff)]))
    if step > MAX_SLICE_MM:
        why = f"slices of {step:.1f} mm cannot part the vertebral bodies at their discs (at most {MAX_SLICE_MM:g} mm)"
        return np.zeros(shape, np.uint8), NamingResult("not named", reasons=[why], anchor=anchor), None
    spine = find_spine(ff_pct, aff, body, limits)
    if not spine.found:
        why = f"vertebral bodies not found in the FF map: {spine.reason}"
        return np.zeros(shape, np.uint8), NamingResult("not named", reasons=[why], anchor=anchor), spine
    mask, short = _whole_bodies(spine.body_mask(), aff)
    vertebrae, record = count_bodies_from_sacrum(mask.astype(np.uint8), aff, min_piece_share, lowest_vertebra)
    # the count speaks of a label map; here the bodies are the FF map's, which never shows a sacrum
    record.reasons = [
        r.replace("no sacrum in the label map: nothing to count from", _NO_SACRUM).replace(
            "missed by the network", "not found in the FF map"
        )
        for r in record.reasons
    ]
    if short:
        record.reasons.append(
            f"{short} piece(s) of the column shorter than a vertebral body ({HEIGHT_RANGE_MM[0]:.0f} mm) left out "
            "(the top of S1, or a body found on only some of its slices)"
        )
    return vertebrae, record, spine
