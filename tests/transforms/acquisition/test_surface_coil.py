"""Tests of the surface-coil profile (scripts/transforms/acquisition/surface_coil.py): the gain falls
exponentially with depth from the patient's back, found from the affine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scripts.transforms.acquisition.surface_coil import RandSurfaceCoil, RandSurfaceCoild


def _body(affine: np.ndarray) -> MetaTensor:
    """A uniform box of value 100 inside a zero background: array axis 1 spans indices 10-39 (body)."""
    img = np.zeros((1, 20, 50, 4), np.float32)
    img[:, 2:18, 10:40, :] = 100.0
    return MetaTensor(img, affine=torch.as_tensor(affine))


@pytest.mark.parametrize(
    "affine, posterior_index", [(np.diag([2.0, 2.0, 3.0, 1.0]), 10), (np.diag([-2.0, -2.0, 3.0, 1.0]), 39)]
)
def test_surface_coil_gain_falls_exponentially_with_depth_from_the_back(affine, posterior_index) -> None:
    """RAS: a higher index is more anterior, so the back is index 10; stored LPS-like (y flipped) it is index 39."""
    coil = RandSurfaceCoil(prob=1.0, decay_range_mm=(80.0, 80.0), floor_range=(0.2, 0.2), anterior_prob=0.0)
    out = coil(_body(affine))[0, 10, :, 0].numpy()
    depth_mm = 2.0 * np.abs(np.arange(50) - posterior_index)
    expected = 100.0 * (0.2 + 0.8 * np.exp(-depth_mm / 80.0))
    np.testing.assert_allclose(out[10:40], expected[10:40], rtol=1e-5)
    assert np.all(out[:10] == 0) and np.all(out[40:] == 0)


def test_surface_coil_anterior_coil_brightens_the_front_and_dictionary_shares_one_profile() -> None:
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    coil = RandSurfaceCoild(
        ["image", "water"],
        prob=1.0,
        decay_range_mm=(60.0, 60.0),
        floor_range=(0.0, 0.0),
        anterior_prob=1.0,
        anterior_weight_range=(1.0, 1.0),
    )
    body = _body(affine)
    out = coil({"image": body, "water": body * 0.5, "label": torch.ones(1, 20, 50, 4)})
    row = out["image"][0, 10, :, 0].numpy()
    y = 2.0 * np.arange(50)
    gain = np.exp(-(y - 20.0) / 60.0) + np.exp(-(78.0 - y) / 60.0)
    np.testing.assert_allclose(row[10:40], 100.0 * gain[10:40] / gain[10:40].max(), rtol=1e-5)
    assert row[39] > row[10:40].min() + 5.0  # the front rises again towards the anterior coil
    np.testing.assert_allclose(out["water"].numpy(), 0.5 * out["image"].numpy(), rtol=1e-6)
    assert torch.equal(out["label"], torch.ones(1, 20, 50, 4))  # not a key: untouched


def test_surface_coil_draws_within_ranges_and_refuses_bad_arguments() -> None:
    coil = RandSurfaceCoil(prob=1.0, decay_range_mm=(60.0, 250.0), floor_range=(0.0, 0.3))
    coil.set_random_state(3)
    for _ in range(20):
        coil.randomize()
        assert 60.0 <= coil.decay_mm <= 250.0 and 0.0 <= coil.floor <= 0.3
    off = RandSurfaceCoild(["image"], prob=0.0)({"image": _body(np.eye(4))})
    assert torch.equal(off["image"].as_tensor(), _body(np.eye(4)).as_tensor())
    for kwargs, match in [
        ({"decay_range_mm": (0.0, 10.0)}, "decay_range_mm"),
        ({"floor_range": (0.0, 1.0)}, "floor_range"),
        ({"body_threshold": 1.5}, "body_threshold"),
        ({"prob": 2.0}, "prob"),
    ]:
        with pytest.raises(ValueError, match=match):
            RandSurfaceCoil(**kwargs)
