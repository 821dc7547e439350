"""The network's confidence in each label, from its softmax probabilities, for the quality verdict."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.pipeline.keys import CONFIDENCE_KEY
from scripts.quality.confidence import BOUNDARY_MARGIN, label_confidence

__all__ = ["NetworkConfidenced"]

logger = logging.getLogger(__name__)


class NetworkConfidenced(MapTransform):
    """Summarise how sure the network is of each muscle label: voxel count, mean top-1 probability, mean margin to
    the next label, share of voxels near the decision boundary and mean normalised entropy.

    Runs right after ``Activationsd`` (softmax), while the prediction is still the ``(9, X, Y, Z)`` probabilities
    on the network's working grid (RAS, 2x2x4 mm) and already the flip ensemble's average, so voxels where the plain
    and mirrored passes disagree have low margins. Adds ``network_confidence``: a plain dict, label (1-8) -> figures
    of :func:`scripts.quality.confidence.label_confidence`, which no later step needs to invert or resample;
    :class:`scripts.pipeline.quality_verdict.QualityVerdictd` judges it and puts it into the FF table. The
    prediction itself is left unchanged.

    Args:
        keys: the prediction key, holding ``(C, X, Y, Z)`` probabilities (one subject, after decollation).
        boundary_margin: top-1 minus top-2 probability below which a voxel counts as near the boundary.
    """

    def __init__(
        self, keys: KeysCollection, boundary_margin: float = BOUNDARY_MARGIN, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if not 0.0 < boundary_margin <= 1.0:
            raise ValueError(f"boundary_margin must be in (0, 1], got {boundary_margin}")
        self.boundary_margin = boundary_margin

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            probabilities = d[key]
            if probabilities.ndim != 4 or probabilities.shape[0] < 2:
                shape = tuple(probabilities.shape)
                raise ValueError(f"{key!r} must hold (C, X, Y, Z) probabilities of one subject, got shape {shape}")
            d[CONFIDENCE_KEY] = label_confidence(
                probabilities, labels=range(1, probabilities.shape[0]), boundary_margin=self.boundary_margin
            )
        return d
