"""Weigh the background's probability before the argmax: how sure the network must be to call a voxel muscle.

Why: the network is trained with a Dice + cross-entropy loss, and a Dice loss rewards calling a doubtful border voxel
foreground (the overlap-optimal decision threshold lies below one half). On the phantoms the muscles' borders run
into the fat around them: the psoas's and iliacus's FF comes out 1.4-1.7 pp too high where a perfect network on the
same 2 mm grid would be 0.3-0.7 pp off (docs/studies/heldout_phantoms.md, "What the working grid costs").
Multiplying the background channel by ``weight`` before the argmax moves only the muscle/background decision: a voxel
is a muscle where that muscle's probability exceeds ``weight`` times the background's (at a two-class border, where
``p > weight / (1 + weight)``); the borders between two muscles and the probabilities that the confidence check reads
are left as they are. ``weight`` 1 is the plain argmax.

Runs on the working grid, after the confidence summary and before :class:`scripts.pipeline.inverted_argmax.
InvertedArgmaxd`: scaling a channel by a constant commutes with the trilinear interpolation back to the input grid,
so the label map is the one the weighted probabilities on the input grid would give.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

__all__ = ["MAX_BACKGROUND_WEIGHT", "check_background_weight", "BackgroundWeight", "BackgroundWeightd"]

MAX_BACKGROUND_WEIGHT = 20.0
"""Largest accepted weight: at 20 a muscle needs a two-class probability above 0.95, beyond which labels vanish."""


def check_background_weight(weight: float) -> float:
    """``weight`` as a float in [1, MAX_BACKGROUND_WEIGHT], or a ValueError saying what is accepted and why."""
    try:
        value = float(weight)
    except (TypeError, ValueError):
        raise ValueError(
            f"background_weight must be a number from 1 to {MAX_BACKGROUND_WEIGHT:g}, got {weight!r}"
        ) from None
    if not 1.0 <= value <= MAX_BACKGROUND_WEIGHT:
        raise ValueError(
            f"background_weight must be from 1 (the plain argmax) to {MAX_BACKGROUND_WEIGHT:g}, got {weight!r}: "
            "below 1 the labels would grow into their surroundings, above it they vanish"
        )
    return value


class BackgroundWeight(Transform):
    """Multiply channel 0 (background) of ``(C, X, Y, Z)`` softmax probabilities by ``weight``.

    The result is no longer a probability distribution; it is meant for the argmax only. A new tensor is returned
    (a ``MetaTensor`` keeps its meta and applied operations), the input is not modified.

    Args:
        weight: the factor, from 1 (no change) to :data:`MAX_BACKGROUND_WEIGHT`.
    """

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = check_background_weight(weight)

    def __call__(self, probabilities: torch.Tensor) -> torch.Tensor:
        if probabilities.ndim < 2 or probabilities.shape[0] < 2:
            raise ValueError(
                f"expected (C, X, Y, Z) probabilities with a background channel and at least one label, "
                f"got shape {tuple(probabilities.shape)}"
            )
        if self.weight == 1.0:
            return probabilities
        scale = torch.ones(probabilities.shape[0], dtype=probabilities.dtype, device=probabilities.device)
        scale[0] = self.weight
        return probabilities * scale.reshape((-1,) + (1,) * (probabilities.ndim - 1))


class BackgroundWeightd(MapTransform):
    """Dictionary version of :class:`BackgroundWeight`.

    Args:
        keys: the prediction key(s), holding one subject's ``(C, X, Y, Z)`` probabilities (after decollation).
        weight: see :class:`BackgroundWeight`.
    """

    def __init__(self, keys: KeysCollection, weight: float = 1.0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.t = BackgroundWeight(weight)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.t(d[key])
        return d
