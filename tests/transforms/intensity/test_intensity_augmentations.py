"""Tests of the configured intensity list (scripts/transforms/intensity/intensity_augmentations.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scripts.transforms.intensity.intensity_augmentations import intensity_augmentations

from tests.transforms.synthetic_volumes import phantom, smooth_image


def test_intensity_augmentations_apply_to_image_only() -> None:
    img, lab = phantom()
    image = smooth_image()
    pipeline = intensity_augmentations("image", prob=1.0, remap_prob=1.0)
    assert len(pipeline) == 6 and all(isinstance(t, MapTransform) for t in pipeline)
    results = []
    for _ in range(2):
        d = {"image": image.clone(), "label": lab.clone()}
        for t in intensity_augmentations("image", prob=1.0, remap_prob=1.0):
            d = t.set_random_state(5)(d)
        results.append(d)
    out = results[0]
    assert isinstance(out["image"], MetaTensor) and out["image"].shape == image.shape
    assert out["image"].dtype == torch.float32 and torch.isfinite(out["image"]).all()
    torch.testing.assert_close(out["image"].affine, image.affine)
    assert torch.equal(out["label"].as_tensor(), lab.as_tensor())
    assert not torch.allclose(out["image"].as_tensor(), image.as_tensor())
    assert torch.equal(results[0]["image"].as_tensor(), results[1]["image"].as_tensor())


INVALID = [
    (
        "intensity-gamma",
        lambda: intensity_augmentations(gamma_range=(0.0, 1.0)),
        ValueError,
        r"gamma_range must be > 0",
    ),
    (
        "intensity-noise",
        lambda: intensity_augmentations(noise_std_relative=-0.1),
        ValueError,
        r"noise_std_relative must be a number >= 0",
    ),
]


@pytest.mark.parametrize(("make", "error", "match"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_argument(make: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()
