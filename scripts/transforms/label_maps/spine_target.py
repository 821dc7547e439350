"""The spine network's training target: every vertebral body as one class, the sacrum as another.

Why one body class: the 15-output candidates (docs/studies/training_history.md) segmented the bodies but named L1-L3
one level off, because a body looks like its neighbours; a name follows from counting up from the sacrum
(:mod:`scripts.quantification.vertebra_naming`), not from the look of the body. A network asked only "vertebral body
or sacrum" learns a local shape, and T12 and T11, which a lumbar scan often shows, are bodies too (a target of L1-L5
only would teach that a T12 body is background). The names 9-13 are given afterwards, by the count.

Values of the target (``SPINE_CLASSES``): 0 background, 1 vertebral body (any level), 2 sacrum. They are read from

- the anatomy-complete phantom's tissue-id map (``scripts.phantom.tissue_ids``: 9-13 L1-L5, 15 T12, 16 T11 are
  bodies, 14 the sacrum; muscles 1-8 and every other structure background), or
- a vertebral label map or a 15-class label map (docs/design.md: 9-13 L1-L5, 14 sacrum; muscles 1-8 background).

- :class:`SpineTarget`: array version, ``(1, X, Y, Z)`` in, same shape and grid out;
- :class:`SpineTargetd`: dictionary version, in place on each key.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type

__all__ = ["SPINE_CLASSES", "BODY_VALUES", "SACRUM_VALUES", "SpineTarget", "SpineTargetd", "spine_target_array"]

#: the spine network's classes (output channel -> name)
SPINE_CLASSES: dict[int, str] = {0: "background", 1: "vertebral_body", 2: "sacrum"}
#: input values that are a vertebral body: L1-L5 (9-13, docs/design.md) and the phantom's T12 (15) and T11 (16)
BODY_VALUES: tuple[int, ...] = (9, 10, 11, 12, 13, 15, 16)
#: input values that are the sacrum (docs/design.md)
SACRUM_VALUES: tuple[int, ...] = (14,)


def _values(values: Iterable[int], name: str) -> tuple[int, ...]:
    out = tuple(int(v) for v in values)
    if not out or any(v <= 0 for v in out):
        raise ValueError(f"{name} must be a non-empty list of positive label values, got {list(values)!r}")
    return out


class SpineTarget(Transform):
    """Map a tissue-id, vertebral or 15-class label map to the spine classes 0/1/2.

    Args:
        body_values: input values that become 1 (vertebral body).
        sacrum_values: input values that become 2 (sacrum); every other value becomes 0.

    Call:
        ``label``: ``(1, X, Y, Z)`` integer map (tensor, MetaTensor or array; any grid).

    Returns:
        Same type, shape, dtype and metadata (affine) as ``label``, values in {0, 1, 2}.

    Raises:
        ValueError: the values overlap, ``label`` holds a negative or fractional value (a resampled map that was not
            read with nearest-neighbour interpolation), or ``label`` holds no body and no sacrum value while holding
            values above 8 (a map of another convention: the target would be all background without a word).
    """

    def __init__(self, body_values: Iterable[int] = BODY_VALUES, sacrum_values: Iterable[int] = SACRUM_VALUES) -> None:
        self.body_values = _values(body_values, "body_values")
        self.sacrum_values = _values(sacrum_values, "sacrum_values")
        both = set(self.body_values) & set(self.sacrum_values)
        if both:
            raise ValueError(f"values {sorted(both)} are in both body_values and sacrum_values")
        size = max(self.body_values + self.sacrum_values) + 1
        self._lut = torch.zeros(size, dtype=torch.uint8)
        self._lut[list(self.body_values)] = 1
        self._lut[list(self.sacrum_values)] = 2

    def __call__(self, label: Any) -> Any:
        lab = torch.as_tensor(label)
        if lab.numel() == 0:
            return label
        if lab.is_floating_point():
            if not torch.equal(lab, torch.round(lab)):
                raise ValueError(
                    "the label map holds fractional values: it was resampled with a non-nearest interpolation; read "
                    "it with mode 'nearest'"
                )
        values = lab.long()
        lowest = int(values.min())
        if lowest < 0:
            raise ValueError(f"the label map holds the negative value {lowest}; label values are 0 or more")
        lut = self._lut.to(values.device)
        inside = values < lut.numel()
        target = torch.where(inside, lut[values.clamp(max=lut.numel() - 1)], torch.zeros_like(lut[:1]))
        highest = int(values.max())
        if highest > 8 and not bool((target > 0).any()):
            raise ValueError(
                f"the label map holds values up to {highest} but none of the vertebral body values "
                f"{list(self.body_values)} or sacrum values {list(self.sacrum_values)}: give the phantom's tissue map "
                "(python -m scripts.phantom cohort ... --anatomy complete), a vertebral label map or a 15-class "
                "label map (docs/design.md)"
            )
        return convert_to_dst_type(target, label, dtype=lab.dtype)[0]


class SpineTargetd(MapTransform):
    """Dictionary version of :class:`SpineTarget`.

    Args:
        keys: keys that receive the target.
        source_key: the key of the map to read (for training from the phantom: the tissue-id map, which
            ``configs/train.json``'s ``train#tissue_transforms`` loads onto the working grid); removed after the
            mapping. None: each key is mapped in place.
        body_values: see :class:`SpineTarget`.
        sacrum_values: see :class:`SpineTarget`.
        allow_missing_keys: with True, missing keys are skipped.

    Raises:
        KeyError: ``source_key`` is given but the entry has none; the message names the way forward.
        ValueError: the source map and an existing map under a key have different shapes (not on one grid).
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str | None = None,
        body_values: Iterable[int] = BODY_VALUES,
        sacrum_values: Iterable[int] = SACRUM_VALUES,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if source_key is not None and (not isinstance(source_key, str) or not source_key):
            raise ValueError(f"source_key must be a key name or None, not {source_key!r}")
        self.source_key = source_key
        self.target = SpineTarget(body_values, sacrum_values)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.source_key is None:
            for key in self.key_iterator(d):
                d[key] = self.target(d[key])
            return d
        if self.source_key not in d:
            raise KeyError(
                f"this entry has no {self.source_key!r} map to make the spine target from: give every training entry "
                "a tissue-id map (python -m scripts.phantom cohort ... --anatomy complete writes one), or train from "
                "15-class label maps with source_key null"
            )
        source = d.pop(self.source_key)
        target = self.target(source)
        for key in self.keys:
            if key in d and tuple(np.shape(d[key])) != tuple(np.shape(source)):
                raise ValueError(
                    f"{self.source_key!r} {tuple(np.shape(source))} and {key!r} {tuple(np.shape(d[key]))} are not on "
                    "one grid: load and resample both the same way"
                )
            d[key] = target
        return d


def spine_target_array(label: np.ndarray) -> np.ndarray:
    """:class:`SpineTarget` with the default values on a plain array of any dimension (uint8 out)."""
    return np.asarray(SpineTarget()(torch.as_tensor(np.asarray(label)[None]))[0].numpy(), dtype=np.uint8)
