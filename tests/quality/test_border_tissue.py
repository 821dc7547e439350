"""scripts.quality.border_tissue and its verdict check: known answers on a block made here and on a phantom.

A label that ends where its tissue ends has another FF just outside it; one that stops inside the tissue does not. On
a phantom every true side stays far below the review level, and a side eroded by two voxels in-plane is asked to be
reviewed for it, with the reason in words.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scripts.phantom import Acquisition, generate_subject
from scripts.quality.border_tissue import border_like_share
from scripts.quality.verdict import QCLimits, assess_segmentation

_REASON = "the label may stop inside the muscle (under-segmented?)"


def _block(label_fills_muscle: bool):
    """A 30x30x6 muscle of FF 8 % in fat of FF 92 %; the label is the muscle, or its middle 10x10."""
    ff = np.full((60, 60, 6), 92.0)
    ff[15:45, 15:45, :] = 8.0
    labels = np.zeros(ff.shape, np.uint8)
    if label_fills_muscle:
        labels[15:45, 15:45, :] = 1
    else:
        labels[25:35, 25:35, :] = 1
    box = ndimage.find_objects(labels)[0]
    return labels, ff, np.ones(ff.shape, bool), box


def test_known_answers_on_a_block():
    labels, ff, body, box = _block(label_fills_muscle=True)
    share, median, n = border_like_share(labels, 1, ff, body, box, axis=2)
    assert (share, median, n) == (0.0, 8.0, 4 * 30 * 6)
    labels, ff, body, box = _block(label_fills_muscle=False)
    share, median, n = border_like_share(labels, 1, ff, body, box, axis=2)
    assert (share, median, n) == (1.0, 8.0, 4 * 10 * 6)
    # outside the body, or without a finite FF, nothing is judged
    assert border_like_share(labels, 1, ff, np.zeros_like(body), box, axis=2)[2] == 0
    ff[~labels.astype(bool)] = np.nan
    assert np.isnan(border_like_share(labels, 1, ff, body, box, axis=2)[0])


@pytest.fixture(scope="module")
def phantom():
    subj = generate_subject(7, Acquisition.preset("low", orientation="LPS"))
    ff = np.asarray(subj.images["ff_true"], dtype=np.float64) * 100.0
    return subj.images["label"].astype(np.int16), ff, subj.affine


def test_true_sides_are_far_below_the_level_and_an_eroded_side_is_reviewed(phantom):
    labels, ff, affine = phantom
    limits = QCLimits()
    body = np.isfinite(ff)
    axis = int(np.argmax(np.abs(affine[2, :3])))
    for value in range(1, 9):
        box = ndimage.find_objects((labels == value).astype(np.uint8))[0]
        share, _, n = border_like_share(labels, value, ff, body, box, axis)
        assert n > 0 and share < 0.5 * limits.border_like_review, (value, share)
    verdicts = assess_segmentation(labels, affine, ff=ff)
    assert not any(_REASON in r for v in verdicts.values() for r in v.reasons)
    element = np.expand_dims(ndimage.generate_binary_structure(2, 1), axis)
    eroded = labels.copy()
    side = labels == 7  # ES+MF left: large, so its partner and size checks still pass when eroded
    eroded[side & ~ndimage.binary_erosion(side, element, iterations=2)] = 0
    verdict = assess_segmentation(eroded, affine, ff=ff)[7]
    assert verdict.status == "review" and any(_REASON in r for r in verdict.reasons), verdict.reasons
