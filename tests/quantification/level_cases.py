"""A box spine with muscles, for the level tests (imported as ``tests.quantification.level_cases``).

Grid ``(20, 20, 100)``, 2 mm isotropic, RAS, origin 0: voxel ``k`` along z has its centre at z = 2k mm and covers
2k - 1 to 2k + 1 mm. Bodies (z index ranges, caudal to cranial): sacrum 0-9, L5 14-26, L4 31-43, L3 48-60, L2 65-77,
L1 82-94: 26 mm bodies, 8 mm gaps, so the mid-disc bounds are 23, 57, 91, 125, 159 mm and L1's cranial bound
189 + 4 = 193 mm. Muscles are boxes: psoas left/right (1, 2) z index 20-89, ES+MF left/right (7, 8) z index 5-94.
"""

from __future__ import annotations

import numpy as np

SHAPE = (20, 20, 100)
SPACING = 2.0
#: label value -> z index range [start, stop) of its body, caudal to cranial
BODIES: dict[int, tuple[int, int]] = {14: (0, 10), 13: (14, 27), 12: (31, 44), 11: (48, 61), 10: (65, 78), 9: (82, 95)}
#: level -> (caudal, cranial) bound in mm under the mid-disc rule
TRUE_BOUNDS: dict[str, tuple[float, float]] = {
    "L1": (159.0, 193.0),
    "L2": (125.0, 159.0),
    "L3": (91.0, 125.0),
    "L4": (57.0, 91.0),
    "L5": (23.0, 57.0),
}
#: in-plane boxes (x, y slices) and z index ranges of the muscles
MUSCLE_BOXES: dict[int, tuple[slice, slice, slice]] = {
    1: (slice(2, 6), slice(4, 10), slice(20, 90)),
    2: (slice(14, 18), slice(4, 10), slice(20, 90)),
    7: (slice(3, 8), slice(12, 16), slice(5, 95)),
    8: (slice(12, 17), slice(12, 16), slice(5, 95)),
}


def affine() -> np.ndarray:
    """The RAS affine of the case (2 mm, origin 0)."""
    return np.diag([SPACING, SPACING, SPACING, 1.0])


def cut_above_sacrum(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``arr`` (a map of this case) from the L5/S1 disc up, as an L1-L5 scan shows it: z index 10 on (8 mm of disc
    below L5, the sacrum out of view), and its affine (origin moved 20 mm up)."""
    aff = affine()
    aff[2, 3] += 10 * SPACING
    return arr[:, :, 10:].copy(), aff


def spine_label(bodies: dict[int, tuple[int, int]] | None = None, muscles: bool = True) -> np.ndarray:
    """The label map: bodies at x 8-11, y 4-8 (``bodies`` overrides :data:`BODIES`), and the muscle boxes."""
    lab = np.zeros(SHAPE, np.uint8)
    for v, (k0, k1) in (BODIES if bodies is None else bodies).items():
        lab[8:12, 4:9, k0:k1] = v
    if muscles:
        for v, box in MUSCLE_BOXES.items():
            lab[box] = v
    return lab


def level_ff() -> np.ndarray:
    """FF fraction map: psoas left 0.10 + 0.02 j in level j (L1 = 0 ... L5 = 4, by the true bounds), 0.05 below
    L5; psoas right 0.2; ES+MF 0.3 left, 0.4 right; 0.9 elsewhere (fat)."""
    ff = np.full(SHAPE, 0.9, np.float32)
    z = np.arange(SHAPE[2]) * SPACING
    band = np.full(SHAPE[2], 0.05, np.float32)
    for j, name in enumerate(("L1", "L2", "L3", "L4", "L5")):
        lo, hi = TRUE_BOUNDS[name]
        band[(z >= lo) & (z < hi)] = 0.10 + 0.02 * j
    ff[MUSCLE_BOXES[1]] = band[MUSCLE_BOXES[1][2]]
    ff[MUSCLE_BOXES[2]] = 0.2
    ff[MUSCLE_BOXES[7]] = 0.3
    ff[MUSCLE_BOXES[8]] = 0.4
    return ff


def as_lps(arr: np.ndarray, aff: np.ndarray, flip_z: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The same image stored LPS (x and y voxel order reversed; with ``flip_z`` the slice order too)."""
    axes = (0, 1, 2) if flip_z else (0, 1)
    out = np.flip(arr, axis=axes).copy()
    new = aff.copy()
    for a in axes:
        new[:3, 3] += aff[:3, a] * (arr.shape[a] - 1)
        new[:3, a] = -aff[:3, a]
    return out, new


def crop_z(arr: np.ndarray, aff: np.ndarray, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray]:
    """Slices ``k0:k1`` of a RAS image and the affine of the crop."""
    new = aff.copy()
    new[:3, 3] += aff[:3, 2] * k0
    return arr[:, :, k0:k1].copy(), new
