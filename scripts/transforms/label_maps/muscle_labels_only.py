"""A label map reduced to the muscle network's classes (0-8): the vertebral context (9-14) becomes background.

Why: with the spine network (``configs/inference.json``, ``models/spine_model.pt``) the label maps the bundle writes
hold the vertebral bodies and the sacrum (9-14) beside the muscles. Such a map, corrected in MONAI Label and saved as
an annotation, or any 15-class annotation, is a training label for the 9-output muscle network, whose loss would
fail on the values 9-14 with an index error that names neither the file nor the cause. The spine classes belong to
the spine network (``configs/spine_train.json`` reads them from the same map), so the muscle network's training
target keeps 0-8 and treats the spine as background, as its training on phantoms always has.

- :class:`MuscleLabelsOnly`: ``(1, X, Y, Z)`` in, same type, shape, dtype and metadata out;
- :class:`MuscleLabelsOnlyd`: the dictionary version, in place on each key.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type
from scripts.labels import ALL_LABELS, NUM_CLASSES

__all__ = ["MuscleLabelsOnly", "MuscleLabelsOnlyd"]

_HIGHEST = max(ALL_LABELS)


class MuscleLabelsOnly(Transform):
    """Set the vertebral values 9-14 of a label map to background (0); muscles 1-8 are kept.

    Call:
        ``label``: ``(1, X, Y, Z)`` integer label map (tensor, MetaTensor or array; any grid).

    Returns:
        Same type, shape, dtype and metadata as ``label``, values in 0-8.

    Raises:
        ValueError: ``label`` holds a value outside 0-14 (a map of another convention, e.g. a tissue-id map, whose
            values would be taught as wrong classes), or fractional values (resampled with a non-nearest mode).
    """

    def __call__(self, label: Any) -> Any:
        lab = torch.as_tensor(label)
        if lab.numel() == 0:
            return label
        if lab.is_floating_point() and not torch.equal(lab, torch.round(lab)):
            raise ValueError(
                "the label map holds fractional values: it was resampled with a non-nearest interpolation; read it "
                "with mode 'nearest'"
            )
        lowest, highest = int(lab.min()), int(lab.max())
        if lowest < 0 or highest > _HIGHEST:
            raise ValueError(
                f"the label map holds values {lowest}-{highest}; a label map of this bundle holds 0-8 (muscles) and "
                f"at most 9-{_HIGHEST} (vertebral bodies, sacrum; docs/design.md): map its values to these labels "
                "before training"
            )
        if highest < NUM_CLASSES:
            return label
        kept = torch.where(lab >= NUM_CLASSES, torch.zeros_like(lab), lab)
        return convert_to_dst_type(kept, label, dtype=lab.dtype)[0]


class MuscleLabelsOnlyd(MapTransform):
    """Dictionary version of :class:`MuscleLabelsOnly`.

    Args:
        keys: the label key(s) (usually ``"label"``).
        allow_missing_keys: with True, missing keys are skipped.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reduce = MuscleLabelsOnly()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.reduce(d[key])
        return d
