"""What every dictionary transform of scripts/transforms must do, checked the same way for each of them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform

from tests.transforms.synthetic_volumes import phantom, warp_dict


def assert_identity(make: Callable[[], MapTransform]) -> None:
    """A transform that does nothing (probability 0, or factor 1) returns its inputs unchanged, dtype and affine too."""
    img, lab = phantom()
    out = make().set_random_state(0)(warp_dict(img, lab))
    for key, ref in (("image", img), ("label", lab), ("image_nn", img)):
        assert isinstance(out[key], MetaTensor)
        assert out[key].dtype == ref.dtype
        assert torch.equal(out[key].as_tensor(), ref.as_tensor())
        torch.testing.assert_close(out[key].affine, ref.affine)


def assert_deterministic(make: Callable[[], MapTransform]) -> None:
    """The same seed gives the same draws; successive calls draw anew."""
    img, lab = phantom()
    runs = []
    for _ in range(2):
        t = make().set_random_state(123)
        runs.append([t({"image": img.clone(), "label": lab.clone()}) for _ in range(4)])
    for a, b in zip(*runs):
        assert torch.equal(a["image"].as_tensor(), b["image"].as_tensor())
        assert torch.equal(a["label"].as_tensor(), b["label"].as_tensor())
    # successive calls differ (fresh draws), so the seed is what makes the runs equal
    assert any(not torch.equal(r["image"].as_tensor(), runs[0][0]["image"].as_tensor()) for r in runs[0][1:])
