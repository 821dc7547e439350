"""Tests of the thick-slice simulation (scripts/transforms/intensity/low_resolution.py): it acts along the
patient's axis found from the affine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scripts.transforms.intensity.low_resolution import RandLowResolutionAxis, RandLowResolutionAxisd

from tests.transforms.synthetic_volumes import AFFINE_RAS
from tests.transforms.transform_contract import assert_deterministic, assert_identity


def test_low_resolution_acts_along_the_world_axis() -> None:
    # world z on array axis 2 (RAS) vs on array axis 0 (permuted affine): the smoothing follows the patient axis
    z_stripes = (torch.arange(16) % 2).float().view(1, 1, 1, 16).expand(1, 16, 16, 16).clone()
    permuted = np.array([[0, 0, 2.6, 0], [0, 1.1, 0, 0], [1.1, 0, 0, 0], [0, 0, 0, 1.0]])
    for affine, stripes in ((AFFINE_RAS, z_stripes), (permuted, z_stripes.permute(0, 3, 2, 1).contiguous())):
        img = MetaTensor(stripes, affine=torch.as_tensor(affine))
        t = RandLowResolutionAxis(prob=1.0, factor_range=(2.0, 2.0), world_axes=2).set_random_state(0)
        out = t(img)
        assert out.std() < 0.5 * img.std()  # the stripes along world z are averaged away
        # stripes along the other end axis (world x in both layouts) are left alone
        along_x = MetaTensor(stripes.transpose(1, 3).contiguous(), affine=torch.as_tensor(affine))
        assert torch.allclose(t(along_x, randomize=False).as_tensor(), along_x.as_tensor(), atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandLowResolutionAxisd("image", prob=0.0),
        lambda: RandLowResolutionAxisd("image", factor_range=1.0, prob=1.0),
    ],
    ids=["lowres-p0", "lowres-f1"],
)
def test_identity(make: Callable[[], MapTransform]) -> None:
    assert_identity(make)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandLowResolutionAxisd("image", prob=0.7),
    ],
    ids=["lowres"],
)
def test_determinism_with_set_random_state(make: Callable[[], MapTransform]) -> None:
    assert_deterministic(make)


INVALID = [
    (
        "lowres-factor",
        lambda: RandLowResolutionAxisd("image", factor_range=(0.5, 2.0)),
        ValueError,
        r"factor_range must have low >= 1.0",
    ),
    ("lowres-order", lambda: RandLowResolutionAxis(factor_range=(3.0, 2.0)), ValueError, r"low <= high"),
    ("lowres-axes", lambda: RandLowResolutionAxis(world_axes=(3,)), ValueError, r"world_axes must be"),
]


@pytest.mark.parametrize(("make", "error", "match"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_argument(make: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()
