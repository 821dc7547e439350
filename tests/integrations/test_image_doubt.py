"""The doubt figures of scripts.integrations.image_doubt (the uncertainty strategy's ranking), without MONAI Label."""

from __future__ import annotations

import math

import pytest
import torch
from scripts.integrations.image_doubt import Doubt, PlainAndMirroredInferer, doubt_from_outputs
from scripts.labels import LEFT_RIGHT_SWAP, NUM_CLASSES


def _logits(labels: torch.Tensor, sharpness: float) -> torch.Tensor:
    """(C, X, Y, Z) logits whose argmax is ``labels``, the more certain the larger ``sharpness``."""
    return torch.nn.functional.one_hot(labels, NUM_CLASSES).permute(3, 0, 1, 2).float() * sharpness


def _two_muscles() -> torch.Tensor:
    labels = torch.zeros(8, 6, 4, dtype=torch.long)
    labels[1:3] = 1  # left psoas on the array's low x
    labels[5:7] = 2
    return labels


def test_a_sure_and_mirror_consistent_network_has_almost_no_doubt():
    out = _logits(_two_muscles(), 20.0)
    d = doubt_from_outputs(out, out.clone())
    assert d.flip_disagreement == 0.0 and d.entropy < 1e-6 and d.muscle_voxels == 4 * 6 * 4


def test_entropy_grows_as_the_network_hesitates_and_is_normalised():
    labels = _two_muscles()
    sure, unsure = (doubt_from_outputs(_logits(labels, k), _logits(labels, k)) for k in (10.0, 0.5))
    assert sure.entropy < unsure.entropy <= 1.0
    # a margin of 0.5 over 8 equal classes: the entropy of that softmax, over log(9)
    p = torch.softmax(torch.tensor([0.5] + [0.0] * (NUM_CLASSES - 1)), 0)
    assert unsure.entropy == pytest.approx(float(-(p * p.log()).sum()) / math.log(NUM_CLASSES), rel=1e-5)


def test_flip_disagreement_is_one_minus_the_mean_dice_of_the_muscles_either_pass_finds():
    labels = _two_muscles()
    other = labels.clone()
    other[5:7] = 0  # the mirrored pass misses the right psoas, agrees on the left
    d = doubt_from_outputs(_logits(labels, 20.0), _logits(other, 20.0))
    assert d.flip_disagreement == pytest.approx(1 - (1.0 + 0.0) / 2)
    assert d.score == pytest.approx((d.entropy + d.flip_disagreement) / 2)


def test_no_muscle_found_is_the_most_doubtful():
    background = _logits(torch.zeros(4, 4, 4, dtype=torch.long), 20.0)
    assert doubt_from_outputs(background, background) == Doubt(1.0, 1.0, 0)
    with pytest.raises(ValueError, match="one shape"):
        doubt_from_outputs(background, background[:, :2])


def test_the_mirrored_pass_comes_back_mirrored_with_left_and_right_swapped():
    labels = _two_muscles()

    def network(x: torch.Tensor) -> torch.Tensor:
        # a perfectly mirror-consistent "network": the truth of whatever it is shown (mirrored: labels swapped)
        shown_mirrored = bool(x[0, 0, 0, 0, 0] < 0)
        truth = torch.flip(labels, [0]).apply_(lambda v: LEFT_RIGHT_SWAP[v]) if shown_mirrored else labels
        return _logits(truth, 20.0)[None]

    image = torch.ones(1, 1, 8, 6, 4)
    image[0, 0, -1] = -1  # the first voxel is negative only in the mirrored image
    out = PlainAndMirroredInferer(lambda x, net: net(x))(image, network)
    assert out.shape == (1, 2 * NUM_CLASSES, 8, 6, 4)
    assert torch.equal(out[0, :NUM_CLASSES].argmax(0), labels)
    assert torch.equal(out[0, NUM_CLASSES:].argmax(0), labels)
    assert doubt_from_outputs(out[0, :NUM_CLASSES], out[0, NUM_CLASSES:]).flip_disagreement == 0.0
