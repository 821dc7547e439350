"""Tests of the left-right flip with label swap (scripts/transforms/spatial/left_right_flip.py): the patient's
left-right axis found from the affine (never assumed to be array axis 0), left and right label values swapped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scripts.labels import LEFT_RIGHT_SWAP
from scripts.transforms.geometry import left_right_axis
from scripts.transforms.spatial.left_right_flip import RandLeftRightFlipd

from tests.transforms.synthetic_volumes import (
    AFFINE_LPS,
    AFFINE_PERMUTED,
    AFFINE_RAS,
    KEYS3,
    centroid_world,
    phantom,
)
from tests.transforms.transform_contract import assert_deterministic, assert_identity


@pytest.mark.parametrize(
    ("affine", "shape", "axis"),
    [(AFFINE_RAS, (32, 32, 16), 0), (AFFINE_LPS, (32, 32, 16), 0), (AFFINE_PERMUTED, (30, 34, 16), 1)],
    ids=["ras", "lps", "x-on-array-axis-1"],
)
def test_flip_swaps_left_and_right(affine: np.ndarray, shape: tuple[int, int, int], axis: int) -> None:
    img, lab = phantom(affine, shape)
    assert left_right_axis(affine) == axis
    mid_x = (affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0) + affine[:3, 3])[0]
    out = RandLeftRightFlipd(["image", "label"], label_keys="label", prob=1.0)({"image": img, "label": lab})
    for left in (1, 5, 7):
        right = LEFT_RIGHT_SWAP[left]
        before_left = centroid_world(lab, left)
        assert before_left[0] < mid_x  # the phantom's left labels are on the patient's left (-x)
        after_right = centroid_world(out["label"], right)
        mirrored = before_left.copy()
        mirrored[0] = 2 * mid_x - before_left[0]
        np.testing.assert_allclose(after_right, mirrored, atol=1e-6)
    assert set(torch.unique(out["label"]).tolist()) == {LEFT_RIGHT_SWAP[v] for v in torch.unique(lab).tolist()}
    # the image moved with the label: it still carries the old label value, i.e. the swapped-back new one
    swapped_back = out["label"].as_tensor().long().apply_(lambda v: LEFT_RIGHT_SWAP[v])
    assert torch.equal(out["image"].as_tensor(), swapped_back.float())
    torch.testing.assert_close(out["label"].affine, lab.affine)


def test_flip_permutes_one_hot_channels() -> None:
    _, lab = phantom()
    onehot = MetaTensor(
        torch.nn.functional.one_hot(lab[0].as_tensor().long(), 9).permute(3, 0, 1, 2).float(), affine=lab.affine.clone()
    )
    out = RandLeftRightFlipd(["label"], label_keys="label", prob=1.0)({"label": onehot})["label"]
    flipped = RandLeftRightFlipd(["label"], label_keys="label", prob=1.0)({"label": lab})["label"]
    assert torch.equal(out.argmax(0), flipped[0].long())


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandLeftRightFlipd(KEYS3, label_keys="label", prob=0.0),
    ],
    ids=["flip-p0"],
)
def test_identity(make: Callable[[], MapTransform]) -> None:
    assert_identity(make)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandLeftRightFlipd(["image", "label"], prob=0.5),
    ],
    ids=["flip"],
)
def test_determinism_with_set_random_state(make: Callable[[], MapTransform]) -> None:
    assert_deterministic(make)


INVALID = [
    (
        "flip-label-keys",
        lambda: RandLeftRightFlipd(["image"], label_keys="label"),
        ValueError,
        r"label_keys must be a subset of keys",
    ),
    ("flip-prob", lambda: RandLeftRightFlipd(["image"], label_keys=(), prob=-1), ValueError, r"prob must be"),
]


@pytest.mark.parametrize(("make", "error", "match"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_argument(make: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()
