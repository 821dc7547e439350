"""Post-processing of the label map: keep the largest connected component of each muscle label."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from scipy import ndimage

__all__ = ["largest_component_per_label", "KeepLargestComponentPerLabel", "KeepLargestComponentPerLabeld"]


def largest_component_per_label(label: np.ndarray, labels: Sequence[int], connectivity: int = 1) -> np.ndarray:
    """Keep, for each value in ``labels``, only its largest connected component; other voxels become 0.

    Each muscle is one connected body, so islands elsewhere are errors (the authors' pipeline does the same).

    Args:
        label: integer label map, any number of spatial dimensions.
        labels: the values to clean (background 0 is never touched as a label).
        connectivity: 1 = faces (6-connectivity in 3-D), up to ``label.ndim`` = corners.

    Returns:
        a cleaned copy with the same dtype.
    """
    out = label.copy()
    structure = ndimage.generate_binary_structure(label.ndim, connectivity)
    # one bounding-box pass for all labels, then each label inside its box, keeps this fast on full-resolution maps;
    # integer maps are read as they are (a 64-bit copy of the map cost more than the rest)
    wanted = [int(v) for v in labels if v > 0]
    if not wanted:
        return out
    integer = label if np.issubdtype(label.dtype, np.integer) else label.astype(np.int64)
    objects = ndimage.find_objects(integer, max_label=max(wanted))
    for value in labels:
        if value <= 0 or value > len(objects) or objects[value - 1] is None:
            continue
        box = objects[value - 1]
        mask = label[box] == value
        comp, n = ndimage.label(mask, structure=structure)
        if n <= 1:
            continue
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        drop = mask & (comp != int(np.argmax(sizes)))
        out[box][drop] = 0
    return out


class KeepLargestComponentPerLabel(Transform):
    """Array version: ``(1, X, Y, Z)`` (or spatial-only) label tensor/array in, same type out.

    Args:
        labels: label values to clean, e.g. 1-8.
        connectivity: see :func:`largest_component_per_label`.
    """

    backend = ["torch", "numpy"]

    def __init__(self, labels: Sequence[int], connectivity: int = 1) -> None:
        if not labels:
            raise ValueError("labels must name at least one label value")
        self.labels = [int(v) for v in labels]
        self.connectivity = connectivity

    def __call__(self, img: Any) -> Any:
        arr = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
        cleaned = (
            np.stack(
                [largest_component_per_label(np.rint(c).astype(np.int32), self.labels, self.connectivity) for c in arr]
            )
            if arr.ndim == 4
            else largest_component_per_label(np.rint(arr).astype(np.int32), self.labels, self.connectivity)
        )
        if isinstance(img, torch.Tensor):
            out = img.clone()
            out[...] = torch.as_tensor(cleaned, dtype=img.dtype)
            return out
        return cleaned.astype(arr.dtype)


class KeepLargestComponentPerLabeld(MapTransform):
    """Dictionary version of :class:`KeepLargestComponentPerLabel`."""

    backend = KeepLargestComponentPerLabel.backend

    def __init__(
        self, keys: KeysCollection, labels: Sequence[int], connectivity: int = 1, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.t = KeepLargestComponentPerLabel(labels, connectivity)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.t(d[key])
        return d
