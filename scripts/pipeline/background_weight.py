"""Weigh the muscles against the background before the argmax: how sure the network must be to call a voxel muscle.

Why: the network is trained with a Dice + cross-entropy loss, and a Dice loss rewards calling a doubtful border voxel
foreground (the overlap-optimal decision threshold lies below one half). On the phantoms the muscles' borders run
into the fat around them: the psoas's and iliacus's FF comes out 1.4-1.7 pp too high where a perfect network on the
same 2 mm grid would be 0.3-0.7 pp off (docs/studies/heldout_phantoms.md, "What the working grid costs").
Dividing a muscle's channel by its weight ``w`` before the argmax makes a voxel that muscle only where its
probability exceeds ``w`` times the background's (at a two-class border, where ``p > w / (1 + w)``). With one
weight for all muscles only the muscle/background decisions move; with different weights a border between two
muscles also moves a little towards the one with the larger weight. ``w`` 1 for every muscle is the plain argmax.
The probabilities the confidence check reads are taken before this step.

Runs on the working grid, before :class:`scripts.pipeline.inverted_argmax.InvertedArgmaxd`: scaling a channel by a
constant commutes with the trilinear interpolation back to the input grid, so the label map is the one the weighted
probabilities on the input grid would give.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from scripts.configuration.muscle_weights import muscle_weights
from scripts.labels import MUSCLE_VALUES, muscle_and_side

__all__ = ["channel_factors", "BackgroundWeight", "BackgroundWeightd"]


def channel_factors(weights: Mapping[str, float], channels: int) -> list[float]:
    """Per-channel factors: 1 for the background (0) and any channel after the muscles, ``1 / w`` for muscles 1-8."""
    factors = [1.0] * channels
    for value in MUSCLE_VALUES:
        if value < channels:
            factors[value] = 1.0 / weights[muscle_and_side(value)[0]]
    return factors


class BackgroundWeight(Transform):
    """Divide each muscle channel of ``(C, X, Y, Z)`` softmax probabilities by its muscle's weight.

    The result is no longer a probability distribution; it is meant for the argmax only. A new tensor is returned
    (a ``MetaTensor`` keeps its meta and applied operations), the input is not modified.

    Args:
        weight: a number from 1 (no change) to 20 for every muscle, or a mapping muscle name -> such a number
            (muscles left out keep 1); see :func:`scripts.configuration.muscle_weights.muscle_weights`.
    """

    def __init__(self, weight: float | Mapping[str, float] = 1.0) -> None:
        self.weights = muscle_weights(weight)

    def __call__(self, probabilities: torch.Tensor) -> torch.Tensor:
        if probabilities.ndim < 2 or probabilities.shape[0] < 2:
            raise ValueError(
                f"expected (C, X, Y, Z) probabilities with a background channel and at least one label, "
                f"got shape {tuple(probabilities.shape)}"
            )
        factors = channel_factors(self.weights, probabilities.shape[0])
        if all(f == 1.0 for f in factors):
            return probabilities
        scale = torch.as_tensor(factors, dtype=probabilities.dtype, device=probabilities.device)
        return probabilities * scale.reshape((-1,) + (1,) * (probabilities.ndim - 1))


class BackgroundWeightd(MapTransform):
    """Dictionary version of :class:`BackgroundWeight`.

    Args:
        keys: the prediction key(s), holding one subject's ``(C, X, Y, Z)`` probabilities (after decollation).
        weight: see :class:`BackgroundWeight`.
    """

    def __init__(
        self, keys: KeysCollection, weight: float | Mapping[str, float] = 1.0, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.t = BackgroundWeight(weight)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.t(d[key])
        return d
