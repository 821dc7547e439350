"""Dixon test data shared by the quantification and grid tests (imported as ``tests.quantification.dixon_samples``).

A synthetic body with known FF (skin, subcutaneous fat ring, organ, two labelled muscles) and the real GE thigh
Dixon sample of ``../shared`` (water/fat float64 512x256x10, vendor FF in percent, mask on a 512x512x10 grid).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scripts.grid import map_labels_to_grid

# ---------------------------------------------------------------------------------------------------------------
# synthetic body: skin (FF 0.3), subcutaneous fat ring (0.9), organ (0.05), two muscles (0.15) labelled 7 and 8
# ---------------------------------------------------------------------------------------------------------------

SHAPE = (96, 80, 6)
SIGNAL = 1000.0
LEFT_ES, RIGHT_ES = 7, 8


def ellipse(a: float, b: float, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    """Boolean elliptic cylinder of semi-axes ``a``, ``b`` (voxels) centred ``(cx, cy)`` from the middle, all slices."""
    x = np.arange(SHAPE[0], dtype=np.float64)[:, None] - SHAPE[0] / 2 - cx
    y = np.arange(SHAPE[1], dtype=np.float64)[None, :] - SHAPE[1] / 2 - cy
    disc = (x / a) ** 2 + (y / b) ** 2 <= 1.0
    return np.repeat(disc[:, :, None], SHAPE[2], axis=2)


def phantom(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(water, fat, true FF, labels). Identity affine: array axis 0 is world +x = patient left (RAS)."""
    body = ellipse(40, 32)
    ff = np.zeros(SHAPE)
    ff[body] = 0.3  # skin, 2 voxels
    ff[ellipse(38, 30)] = 0.9  # subcutaneous fat, 10 voxels
    ff[ellipse(28, 20)] = 0.05  # organ
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[ellipse(6, 6, cx=12, cy=-8)] = LEFT_ES
    labels[ellipse(6, 6, cx=-12, cy=-8)] = RIGHT_ES
    ff[labels > 0] = 0.15
    rng = np.random.default_rng(seed)
    water = np.abs(np.where(body, SIGNAL * (1 - ff), 0.0) + rng.normal(0, 5.0, SHAPE))
    fat = np.abs(np.where(body, SIGNAL * ff, 0.0) + rng.normal(0, 5.0, SHAPE))
    return water, fat, ff, labels


# ---------------------------------------------------------------------------------------------------------------
# real GE thigh Dixon sample (water/fat float64 512x256x10, vendor FF in percent, mask on a 512x512x10 grid)
# ---------------------------------------------------------------------------------------------------------------


def load_ge_sample(shared_dir: Path) -> dict[str, np.ndarray | tuple]:
    """Arrays, affines (``<name>_affine``) and zooms (``<name>_zooms``) of water, fat, fatfraction and mask."""
    import nibabel as nib

    ge_dir = shared_dir / "real-samples" / "ge_thigh_dixon_ff"
    out: dict[str, np.ndarray | tuple] = {}
    for name in ("water", "fat", "fatfraction", "mask"):
        img = nib.load(str(ge_dir / f"{name}.nii.gz"))
        out[name] = np.asanyarray(img.dataobj)
        out[f"{name}_affine"] = img.affine
        out[f"{name}_zooms"] = tuple(float(z) for z in img.header.get_zooms()[:3])
    return out


def mask_on_ff_grid(s: dict) -> np.ndarray:
    """The GE mask mapped onto the water (FF) grid, as booleans."""
    return map_labels_to_grid(s["mask"], s["mask_affine"], s["water"].shape, s["water_affine"]) > 0
