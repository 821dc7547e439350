"""A subject's Dixon scan as entries of the data dictionary, so that it travels with the subject through the pipeline.

The loader reads and validates the images once (:class:`scripts.pipeline.load_dixon.LoadDixond`); the
quantification steps after the network need them again on their native grid. They are kept in the data dictionary
in a form that MONAI's collation and de-collation carry unchanged: each image a ``(I, J, K)`` float32 MetaTensor
under ``dixon_<role>`` (stored orientation, the scan's voxel-to-world affine), and everything else about the scan as
JSON text under ``dixon_scan``. Data-loader workers can then read subjects too, and nothing is cached beside the
dictionary.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from scripts.io.dixon_scan import DixonScan
from scripts.pipeline.keys import DIXON_IMAGE_PREFIX, DIXON_ROLES, SCAN_INFO_KEY

__all__ = ["scan_to_entry", "scan_from_entry", "has_scan"]

_INFO_FIELDS = (
    "subject",
    "shape",
    "files",
    "dixon_set",
    "spacing_mm",
    "slice_axis",
    "slice_tilt_deg",
    "reference",
    "label_file",
    "warnings",
    "corrections",
)


def scan_to_entry(scan: DixonScan) -> dict[str, Any]:
    """The data-dictionary entries of ``scan``: ``dixon_<role>`` images and the ``dixon_scan`` description.

    Args:
        scan: a validated scan (:func:`scripts.io.load.load_dixon`).

    Returns:
        ``{"dixon_<role>": MetaTensor (I, J, K) float32 sharing memory with the scan's array, ...,
        "dixon_scan": JSON text}``.
    """
    affine = torch.as_tensor(np.asarray(scan.affine, dtype=np.float64))
    entry: dict[str, Any] = {
        DIXON_IMAGE_PREFIX + role: MetaTensor(torch.as_tensor(array), affine=affine.clone())
        for role, array in scan.images.items()
    }
    info = {name: getattr(scan, name) for name in _INFO_FIELDS}
    info["affine"] = np.asarray(scan.affine, dtype=np.float64).tolist()
    # numpy integers (an axis index) are not JSON types; their Python value is the same number
    entry[SCAN_INFO_KEY] = json.dumps(info, default=lambda v: v.item())
    return entry


def has_scan(data: Mapping[Hashable, Any]) -> bool:
    """True when ``data`` carries a Dixon scan that can give a fat fraction (not a segmentation-only entry)."""
    return SCAN_INFO_KEY in data


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        tensor = value.as_tensor() if isinstance(value, MetaTensor) else value
        return tensor.detach().cpu().numpy()
    return np.asarray(value)


def scan_from_entry(data: Mapping[Hashable, Any]) -> DixonScan:
    """The :class:`DixonScan` that :func:`scan_to_entry` put into ``data`` (arrays and fields as they were).

    Args:
        data: a data dictionary holding the entries of :func:`scan_to_entry` (de-collated or not).

    Raises:
        KeyError: ``data`` holds no scan (see :func:`has_scan`).
    """
    info = json.loads(data[SCAN_INFO_KEY])
    images = {}
    for role in DIXON_ROLES:
        key = DIXON_IMAGE_PREFIX + role
        if key in data:
            images[role] = _array(data[key])
    return DixonScan(
        subject=info["subject"],
        images=images,
        affine=np.asarray(info["affine"], dtype=np.float64),
        shape=tuple(info["shape"]),
        files=dict(info["files"]),
        dixon_set=info["dixon_set"],
        spacing_mm=tuple(info["spacing_mm"]),
        slice_axis=int(info["slice_axis"]),
        slice_tilt_deg=float(info["slice_tilt_deg"]),
        reference=info["reference"],
        label_file=info["label_file"],
        warnings=list(info["warnings"]),
        corrections=list(info["corrections"]),
    )
