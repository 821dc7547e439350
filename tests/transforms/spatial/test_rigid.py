"""Tests of the rigid transform in millimetres (scripts/transforms/spatial/rigid.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scripts.transforms.spatial.rigid import RandRigid, RandRigidd

from tests.transforms.synthetic_volumes import KEYS3, MODES3
from tests.transforms.transform_contract import assert_deterministic, assert_identity


def test_rigid_rotation_is_a_rotation_in_mm_on_anisotropic_voxels() -> None:
    shape = (32, 32, 32)
    affine = np.diag([1.0, 1.0, 2.6, 1.0])
    lab = MetaTensor(torch.zeros(1, *shape, dtype=torch.uint8), affine=torch.as_tensor(affine))
    lab[0, 15:18, 22:25, 15:18] = 1  # small cube ~7 mm anterior of the centre (y), same z
    t = RandRigid(prob=1.0, mode="nearest")
    t.randomize()
    t.angles_deg, t.scales, t.translation_mm = np.array([30.0, 0.0, 0.0]), np.ones(3), np.zeros(3)
    out = t(lab, randomize=False)
    centre = (np.asarray(shape) - 1) / 2.0 * np.array([1.0, 1.0, 2.6])
    before = np.argwhere(lab[0].numpy() == 1).mean(0) * np.array([1.0, 1.0, 2.6]) - centre
    after = np.argwhere(out[0].numpy() == 1).mean(0) * np.array([1.0, 1.0, 2.6]) - centre
    # backward map p_in = R p_out: the object turns by -30 degrees about x, its distance to the centre kept in mm
    assert abs(np.linalg.norm(after) - np.linalg.norm(before)) < 1.5
    angle = np.degrees(np.arctan2(after[2], after[1]) - np.arctan2(before[2], before[1]))
    assert abs(angle + 30.0) < 6.0, angle


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandRigidd(KEYS3, prob=0.0, mode=MODES3),
        lambda: RandRigidd(KEYS3, rotate_range_deg=0, scale_range=0, translate_range_mm=0, prob=1.0, mode=MODES3),
    ],
    ids=["rigid-p0", "rigid-zero"],
)
def test_identity(make: Callable[[], MapTransform]) -> None:
    assert_identity(make)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandRigidd(["image", "label"], prob=0.7),
    ],
    ids=["rigid"],
)
def test_determinism_with_set_random_state(make: Callable[[], MapTransform]) -> None:
    assert_deterministic(make)


INVALID = [
    (
        "rigid-rotation",
        lambda: RandRigidd("image", rotate_range_deg=(5, 200, 5)),
        ValueError,
        r"rotate_range_deg for axis 1 must be a number < 180.0 degrees, not 200",
    ),
    ("rigid-scale", lambda: RandRigid(scale_range=1.5), ValueError, r"scale_range for axis 0 must be a number < 1.0"),
    (
        "rigid-translation",
        lambda: RandRigid(translate_range_mm=-2),
        ValueError,
        r"translate_range_mm for axis 0 must be a number >= 0.0 mm, not -2",
    ),
    ("rigid-prob", lambda: RandRigidd("image", prob=2), ValueError, r"prob must be a number in \[0, 1\], not 2"),
    ("rigid-prob-type", lambda: RandRigid(prob="0.5"), TypeError, r"prob must be a number"),
]


@pytest.mark.parametrize(("make", "error", "match"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_argument(make: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()
