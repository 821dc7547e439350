"""Tests of the random B-spline deformation (scripts/transforms/spatial/bspline_deform.py, spatial/bspline.py,
spatial/folding.py): displacement bounded by the configured mm, never folding inside the safe bound, a warning
outside it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from monai.transforms import MapTransform
from scripts.transforms.spatial.bspline import bspline_displacement_field
from scripts.transforms.spatial.bspline_deform import RandBSplineDeform, RandBSplineDeformd
from scripts.transforms.spatial.folding import bspline_folding_bound_mm, jacobian_determinant

from tests.transforms.synthetic_volumes import KEYS3, MODES3, SPACING, phantom
from tests.transforms.transform_contract import assert_deterministic, assert_identity


def test_bspline_displacement_bounded_reached_and_never_folds() -> None:
    shape = (32, 32, 16)
    bound = bspline_folding_bound_mm(shape, SPACING, (6, 6, 5))
    # 0.4 * (31 * 1.1 / 3, 31 * 1.1 / 3, 15 * 2.6 / 2) = (4.55, 4.55, 7.8) mm
    np.testing.assert_allclose(bound, [4.5467, 4.5467, 7.8], atol=1e-3)
    max_mm = 0.95 * bound  # the configured magnitude, just inside the bound
    t = RandBSplineDeform((6, 6, 5), tuple(max_mm), locked_borders=0, prob=1.0).set_random_state(7)
    field_max = np.zeros(3)
    for _ in range(8):
        t.randomize()
        u = t.displacement_field_mm(shape)
        per_axis = u.abs().amax(dim=(1, 2, 3)).numpy()
        assert np.all(per_axis <= max_mm + 1e-4), (per_axis, max_mm)
        assert np.abs(t.control_points_mm).reshape(3, -1).max(1).min() > 0.8 * max_mm.min()
        field_max = np.maximum(field_max, per_axis)
        jac = jacobian_determinant(u, SPACING)
        assert jac.min() > 0.0, f"folding: min Jacobian {jac.min()}"
    # the dense field, a smooth average of control points, still gets near the configured maximum
    assert np.all(field_max > 0.5 * max_mm), (field_max, max_mm)


def test_bspline_constant_grid_is_a_translation_in_mm() -> None:
    img, lab = phantom()
    t = RandBSplineDeform((5, 5, 5), 1.0, locked_borders=0, prob=1.0, mode="nearest")
    t.randomize()
    # all control points displaced +2.2 mm along x -> every voxel samples 2 voxels (2.2 / 1.1) further along x
    t.control_points_mm = np.zeros((3, 5, 5, 5))
    t.control_points_mm[0] = 2.2
    torch.testing.assert_close(
        bspline_displacement_field(t.control_points_mm, (32, 32, 16))[0], torch.full((32, 32, 16), 2.2)
    )
    out = t(lab, randomize=False)
    assert torch.equal(out[0, :-2].as_tensor(), lab[0, 2:].as_tensor())


def test_bspline_folding_warning() -> None:
    img, _ = phantom()
    # x extent 31 * 1.1 = 34.1 mm over 6 - 3 = 3 intervals -> spacing 11.37 mm; bound 0.4 * 11.37 = 4.55 mm < 6 mm
    t = RandBSplineDeform((6, 6, 5), (6.0, 1.0, 1.0), locked_borders=1, prob=1.0)
    with pytest.warns(RuntimeWarning, match=r"folding-safe bound.*axes x \(6 > 4.55 mm\)"):
        t(img)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandBSplineDeformd(KEYS3, prob=0.0, mode=MODES3),
        lambda: RandBSplineDeformd(KEYS3, max_displacement_mm=0.0, prob=1.0, mode=MODES3),
    ],
    ids=["bspline-p0", "bspline-zero"],
)
def test_identity(make: Callable[[], MapTransform]) -> None:
    assert_identity(make)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandBSplineDeformd(["image", "label"], (6, 6, 5), 3.0, locked_borders=1, prob=0.7),
    ],
    ids=["bspline"],
)
def test_determinism_with_set_random_state(make: Callable[[], MapTransform]) -> None:
    assert_deterministic(make)


INVALID = [
    (
        "bspline-prob-high",
        lambda: RandBSplineDeformd("image", prob=1.5),
        ValueError,
        r"prob must be a number in \[0, 1\], not 1.5",
    ),
    ("bspline-prob-negative", lambda: RandBSplineDeform(prob=-0.1), ValueError, r"prob must be .* not -0.1"),
    (
        "bspline-cp-3",
        lambda: RandBSplineDeform(num_control_points=3, locked_borders=0),
        ValueError,
        r"num_control_points for axis 0 must be an integer >= 4, not 3",
    ),
    (
        "bspline-cp-float",
        lambda: RandBSplineDeform(num_control_points=(6, 6, 5.5)),
        ValueError,
        r"num_control_points for axis 2 must be an integer, not 5.5",
    ),
    (
        "bspline-cp-length",
        lambda: RandBSplineDeform(num_control_points=(6, 6)),
        ValueError,
        r"num_control_points must be a number or a sequence of 3",
    ),
    (
        "bspline-disp-negative",
        lambda: RandBSplineDeform(max_displacement_mm=(2.0, -1.0, 2.0)),
        ValueError,
        r"max_displacement_mm for axis 1 must be a number >= 0.0 mm, not -1.0",
    ),
    ("bspline-locked-3", lambda: RandBSplineDeform(locked_borders=3), ValueError, r"locked_borders must be 0, 1 or 2"),
    (
        "bspline-locked-identity",
        lambda: RandBSplineDeform(num_control_points=(6, 6, 4), locked_borders=2),
        ValueError,
        r"num_control_points for axis 2 must be > 4 when locked_borders is 2.*not 4",
    ),
    (
        "bspline-mode",
        lambda: RandBSplineDeformd(["image", "label"], mode=("bilinear", "cubic")),
        ValueError,
        r"mode must be one of .* not 'cubic'",
    ),
    ("bspline-mode-type", lambda: RandBSplineDeform(mode=1), TypeError, r"mode must be a string"),
    (
        "bspline-mode-count",
        lambda: RandBSplineDeformd(["image", "label"], mode=("bilinear",) * 3),
        ValueError,
        r"mode must be one value or one per key \(2\)",
    ),
    ("bspline-padding", lambda: RandBSplineDeform(padding_mode="wrap"), ValueError, r"padding_mode must be one of"),
]


@pytest.mark.parametrize(("make", "error", "match"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_argument(make: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()
