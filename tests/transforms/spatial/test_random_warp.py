"""Tests of the shared spatial-warp machinery (scripts/transforms/spatial/random_warp.py): one draw, one resampling
per key, image and label aligned; MetaTensor output; input checks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scripts.transforms.spatial.bspline_deform import RandBSplineDeform, RandBSplineDeformd
from scripts.transforms.spatial.rigid import RandRigid, RandRigidd

from tests.transforms.synthetic_volumes import AFFINE_LPS, AFFINE_RAS, KEYS3, MODES3, assert_aligned, phantom, warp_dict


@pytest.mark.parametrize("affine", [AFFINE_RAS, AFFINE_LPS], ids=["ras", "lps"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: RandRigidd(
            KEYS3, rotate_range_deg=(8, 8, 15), scale_range=0.08, translate_range_mm=4, prob=1.0, mode=MODES3
        ),
        lambda: RandBSplineDeformd(
            KEYS3,
            num_control_points=(6, 6, 5),
            max_displacement_mm=(4.0, 4.0, 4.0),
            locked_borders=1,
            prob=1.0,
            mode=MODES3,
        ),
    ],
    ids=["rigid", "bspline"],
)
def test_spatial_transform_keeps_image_and_label_aligned(make: Callable[[], MapTransform], affine: np.ndarray) -> None:
    img, lab = phantom(affine)
    for seed in (0, 1):
        out = make().set_random_state(seed)(warp_dict(img, lab))
        assert_aligned(out, lab)


def test_plain_array_input_gives_metatensor() -> None:
    img, lab = phantom()
    out = RandBSplineDeformd(["image", "label"], (6, 6, 5), 3.0, locked_borders=1, prob=1.0).set_random_state(0)(
        {"image": img.numpy(), "label": lab.as_tensor()}
    )
    assert isinstance(out["image"], MetaTensor) and out["label"].dtype == torch.uint8


def test_invalid_input_shape_and_missing_draw() -> None:
    with pytest.raises(ValueError, match=r"shape \(C, X, Y, Z\), got shape \(32, 32\)"):
        RandBSplineDeform(prob=1.0)(torch.zeros(32, 32))
    img, _ = phantom()
    with pytest.raises(RuntimeError, match="call randomize"):
        RandRigid(prob=1.0)(img, randomize=False)
