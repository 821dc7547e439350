"""Tests of the random intensity remap (scripts/transforms/intensity/intensity_remap.py): order and range kept,
inverted when drawn so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from monai.transforms import MapTransform
from scripts.transforms.intensity.intensity_remap import RandIntensityRemap, RandIntensityRemapd

from tests.transforms.synthetic_volumes import smooth_image
from tests.transforms.transform_contract import assert_deterministic, assert_identity


@pytest.mark.parametrize(("invert", "sign"), [(0.0, 1.0), (1.0, -1.0)], ids=["monotonic", "inverted"])
def test_intensity_remap_order_and_range(invert: float, sign: float) -> None:
    image = smooth_image()
    t = RandIntensityRemap(prob=1.0, invert_prob=invert, non_monotonic_prob=0.0).set_random_state(0)
    out = t(image)
    v_in, v_out = image.flatten().numpy(), out.flatten().numpy()
    order = np.argsort(v_in, kind="stable")
    steps = np.diff(v_out[order]) * sign
    assert steps.min() >= -1e-4  # monotonic (increasing, or decreasing when inverted)
    assert v_out.min() >= v_in.min() - 1e-4 and v_out.max() <= v_in.max() + 1e-4
    assert t.kind == ("inverted" if invert else "monotonic")


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandIntensityRemapd("image", prob=0.0),
    ],
    ids=["remap-p0"],
)
def test_identity(make: Callable[[], MapTransform]) -> None:
    assert_identity(make)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandIntensityRemapd("image", prob=0.7),
    ],
    ids=["remap"],
)
def test_determinism_with_set_random_state(make: Callable[[], MapTransform]) -> None:
    assert_deterministic(make)


INVALID = [
    (
        "remap-probs-sum",
        lambda: RandIntensityRemapd("image", invert_prob=0.8, non_monotonic_prob=0.5),
        ValueError,
        r"invert_prob \+ non_monotonic_prob must be <= 1",
    ),
    (
        "remap-knots",
        lambda: RandIntensityRemap(num_control_points=2),
        ValueError,
        r"num_control_points must be an integer >= 3, not 2",
    ),
]


@pytest.mark.parametrize(("make", "error", "match"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_argument(make: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()
