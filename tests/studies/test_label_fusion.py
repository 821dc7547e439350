"""Majority and locally weighted voting on stacks with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.studies.label_fusion import local_weights, majority_vote, weighted_vote


def test_majority_vote_known_answers_and_ties_to_the_lower_label():
    stack = np.array([[1, 2, 0, 3, 5], [1, 0, 2, 3, 4], [2, 0, 2, 4, 6]])
    # voxel 3: 3 wins 2:1; voxel 4: one vote each for 4, 5, 6 -> tie -> the lowest, 4
    np.testing.assert_array_equal(majority_vote(stack), [1, 0, 2, 3, 4])
    # two atlases disagreeing everywhere: every voxel is a tie, the lower label (background first) wins
    np.testing.assert_array_equal(majority_vote(np.array([[0, 3, 8], [1, 2, 7]])), [0, 2, 7])


def test_weighted_vote_known_answers():
    stack = np.array([[1, 2, 0], [1, 0, 2], [2, 0, 2]])
    # one weight per atlas: atlas 2 (weight 5) outvotes the two others (1 + 1)
    np.testing.assert_array_equal(weighted_vote(stack, np.array([1.0, 1.0, 5.0])), [2, 0, 2])
    # per voxel: voxel 0 trusts atlas 2 (weights 1, 1, 3 -> label 2 with 3 > 2); voxel 1: atlas 0 has 0.9 > 0.2 + 0.2
    w = np.array([[1.0, 0.9, 1.0], [1.0, 0.2, 1.0], [3.0, 0.2, 1.0]])
    np.testing.assert_array_equal(weighted_vote(stack, w), [2, 2, 2])
    with pytest.raises(ValueError, match="weights must have shape"):
        weighted_vote(stack, np.ones(2))
    with pytest.raises(ValueError, match="non-negative"):
        weighted_vote(stack, -np.ones(3))
    with pytest.raises(ValueError, match="label values"):
        majority_vote(np.array([[0, 9]]))


def test_local_weights_favour_the_locally_matching_atlas():
    rng = np.random.default_rng(0)
    target = rng.uniform(10, 100, size=(20, 20, 10)).astype(np.float32)
    wrong = target.copy()
    wrong[:10] = rng.uniform(10, 100, size=(10, 20, 10))  # matches only in the second half
    w = local_weights(target, np.stack([target, wrong]), spacing_mm=(2.0, 2.0, 4.0), sigma_mm=2.0, eps=1e-3)
    assert w.shape == (2, 20, 20, 10)
    np.testing.assert_allclose(w[0], 1e3, rtol=1e-4)  # identical to the target: 1 / eps everywhere
    assert np.all(w[1, :7] < 0.1 * w[0, :7])  # far from the changed half: much lower weight
    # the unchanged half beyond the window: about the same (each image is scaled by its own percentiles)
    np.testing.assert_allclose(w[1, 14:], w[0, 14:], rtol=1e-2)
