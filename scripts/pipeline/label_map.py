"""The network's label map as the quantification steps read it from the data dictionary."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["label_and_affine"]


def label_and_affine(pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """The label map and its affine from a ``(1, X, Y, Z)`` MetaTensor of label values 0-8 (input grid).

    Returns:
        ``(label, affine)``: ``(X, Y, Z)`` uint8 array and its 4x4 voxel-to-world (RAS, mm) float64 affine.
    """
    label = np.asarray(pred.detach().cpu().numpy()[0]).astype(np.uint8)
    affine = np.asarray(pred.affine.detach().cpu().numpy(), dtype=np.float64)
    return label, affine
