"""What lies just outside a muscle label: unlabelled tissue with the label's own fat fraction means the label stops
inside the muscle.

Why: a label eroded, or drawn too small by the network, keeps its place, shape and FF, and passes every other check
(the benchmark's eroded sides: 25-31 % flagged before this check, docs/studies/quality_control.md). A correct label
ends where the muscle does: against its fascia and the fat around it, bone, or another labelled muscle, so the
tissue one voxel outside its border has another FF than its own. Where the label stops inside the muscle, that
tissue is the muscle itself.

The measure, per side, in the axial plane (the slices are the thick axis): the unlabelled voxels one voxel outside the
label (4-neighbourhood, inside the body, with a finite FF) and the share of them whose FF lies within
``tolerance_pp`` of the label's own median FF (the median over its one-voxel-eroded core, which the partial volume at
its border does not reach). Phantom truths (480 sides of three cohorts: anatomy-complete, default, septa): at most
0.15; labels eroded in-plane by one voxel 0.35-0.70 (medians 0.43-0.45), by two voxels 5th percentiles 0.55-0.74
(medians 0.73-0.85); the shipped network's labels on 20 anatomy-complete phantoms at most 0.40. A real scan's muscles
touch other muscles more than the phantom's (the ribs' intercostals and the latissimus over the erector spinae, the
abdominal wall beside the QL): on the real CHAOS scan (9 mm slices, FF from in-phase/opposed-phase) QL and ES+MF
labels in their place give 0.51-0.54, so the review level sits above them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["border_like_share"]


def _in_plane(axis: int) -> np.ndarray:
    """4-neighbourhood structuring element in the plane normal to ``axis``."""
    cross = ndimage.generate_binary_structure(2, 1)
    return np.expand_dims(cross, axis)


def border_like_share(
    labels: np.ndarray,
    value: int,
    ff_pct: np.ndarray,
    body: np.ndarray,
    box: tuple[slice, ...],
    axis: int,
    tolerance_pp: float = 10.0,
) -> tuple[float, float, int]:
    """Share of the unlabelled tissue just outside a label whose FF is like the label's own.

    Args:
        labels: ``(X, Y, Z)`` label map (0 unlabelled).
        value: the label judged.
        ff_pct: ``(X, Y, Z)`` voxel FF in percent on the same grid, NaN where excluded.
        body: ``(X, Y, Z)`` bool body outline.
        box: the label's bounding box (slices per axis).
        axis: the array axis of the axial slices.
        tolerance_pp: how close (percentage points) an outside voxel's FF must be to the label's median to count.

    Returns:
        ``(share, median_ff, n_ring)``: the share (0-1; NaN without an outside ring), the label's median FF (%)
        and the number of outside voxels judged.
    """
    grown = tuple(
        slice(max(s.start - (a != axis), 0), min(s.stop + (a != axis), labels.shape[a])) for a, s in enumerate(box)
    )
    lab = labels[grown]
    ff = ff_pct[grown]
    mask = lab == value
    element = _in_plane(axis)
    core = ndimage.binary_erosion(mask, element) & np.isfinite(ff)
    inside = ff[core] if core.sum() >= 20 else ff[mask & np.isfinite(ff)]
    if not inside.size:
        return float("nan"), float("nan"), 0
    median = float(np.median(inside))
    ring = ndimage.binary_dilation(mask, element) & (lab == 0) & body[grown] & np.isfinite(ff)
    outside = ff[ring]
    if not outside.size:
        return float("nan"), median, 0
    return float(np.mean(np.abs(outside - median) <= tolerance_pp)), median, int(outside.size)
