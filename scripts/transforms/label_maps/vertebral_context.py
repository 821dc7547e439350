"""The vertebral context (labels 9-14) written into a muscle label map (labels 0-8) for training.

Why: a network that also segments the vertebral bodies L1-L5 and the sacrum (docs/design.md, 15 output channels)
learns the spine as the anchor of the psoas and QL. The phantom writes the two maps apart (``label``: muscles,
``vertebrae``: 9-14), so that the muscle label map keeps its contract for every other use; training merges them.

- :class:`AddVertebralContext`: ``(label, vertebrae)`` -> one label map, vertebral values where the muscle map is
  background (a muscle voxel is never overwritten);
- :class:`AddVertebralContextd`: the dictionary version; the vertebral key is removed after the merge. An entry
  without a vertebral map whose label map already holds 9-14 (annotations saved from a 15-class model, e.g. by
  MONAI Label) passes unchanged.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform, Transform
from scripts.labels import NUM_CLASSES, VERTEBRAL_LABELS

__all__ = ["AddVertebralContext", "AddVertebralContextd"]

_CONTEXT = np.array(sorted(VERTEBRAL_LABELS))


class AddVertebralContext(Transform):
    """Merge a vertebral label map into a muscle label map.

    Args:
        label: ``(1, X, Y, Z)`` muscle labels 0-8.
        vertebrae: ``(1, X, Y, Z)`` vertebral labels on the same grid: 0, or 9-13 (L1-L5) and 14 (sacrum).

    Returns:
        ``label``'s type, dtype and metadata, with the vertebral value wherever ``label`` is 0.

    Raises:
        ValueError: the shapes differ, the muscle map holds a value over 8 or the vertebral map one outside
            {0, 9..14} (a map of another convention would silently teach wrong classes).
    """

    def __call__(self, label: Any, vertebrae: Any) -> Any:
        lab = torch.as_tensor(label)
        ver = torch.as_tensor(vertebrae, device=lab.device)
        if lab.shape != ver.shape:
            raise ValueError(f"label {tuple(lab.shape)} and vertebrae {tuple(ver.shape)} must share one grid")
        if lab.numel() and int(lab.max()) >= NUM_CLASSES:
            raise ValueError(
                f"the muscle label map holds value {int(lab.max())}; expected 0-{NUM_CLASSES - 1} (is the vertebral "
                "context merged already?)"
            )
        found = torch.unique(ver).cpu().numpy()
        bad = sorted(set(found.tolist()) - {0, *_CONTEXT.tolist()})
        if bad:
            raise ValueError(
                f"the vertebral map holds values {bad}; expected 0 and {_CONTEXT.min()}-{_CONTEXT.max()} "
                "(vertebral bodies L1-L5, sacrum; docs/design.md)"
            )
        merged = torch.where(lab == 0, ver.to(lab.dtype), lab)
        if isinstance(label, torch.Tensor):
            out = label.clone()
            out.copy_(merged)
            return out
        return merged.cpu().numpy().astype(np.asarray(label).dtype)


class AddVertebralContextd(MapTransform):
    """Dictionary version of :class:`AddVertebralContext`.

    Args:
        keys: the muscle label key(s) to merge into (usually ``"label"``).
        vertebrae_key: the key of the vertebral label map; removed from the dictionary after the merge.
        allow_missing_keys: with True, missing label keys are skipped.

    Raises:
        KeyError: the entry has no ``vertebrae_key`` and its label map no vertebral value (a 15-class network trained
            on it would learn the spine as background); the message names the way forward.
    """

    def __init__(self, keys: Any, vertebrae_key: str = "vertebrae", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if not isinstance(vertebrae_key, str) or not vertebrae_key:
            raise ValueError(f"vertebrae_key must be a non-empty key name, not {vertebrae_key!r}")
        self.vertebrae_key = vertebrae_key
        self.merge = AddVertebralContext()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.vertebrae_key not in d:
            if all(_has_context(d[key]) for key in self.key_iterator(d)):
                return d
            raise KeyError(
                f"this entry has no {self.vertebrae_key!r} map, but the network is trained with the vertebral "
                "context (vertebral_context true) and its label map holds no vertebral value (9-14): give every "
                "entry a vertebral label map (the anatomy-complete phantom writes one: python -m scripts.phantom "
                "cohort ... --anatomy complete) or labels that include 9-14, or train the muscles only with "
                "--vertebral_context false"
            )
        vertebrae = d.pop(self.vertebrae_key)
        for key in self.key_iterator(d):
            d[key] = self.merge(d[key], vertebrae)
        return d


def _has_context(label: Any) -> bool:
    """True when the label map holds a vertebral value (9-14)."""
    lab = torch.as_tensor(label)
    return bool(((lab >= _CONTEXT.min()) & (lab <= _CONTEXT.max())).any())
