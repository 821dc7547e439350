"""Tests of the training augmentations (scripts/transforms/augmentation.py,
scripts/transforms/anatomical_variability.py).

Tiny synthetic volumes built here: boxes placed in world millimetres (so "left" is the patient's left whatever the
array orientation), anisotropic voxels, and an image whose intensity equals the label value, so image/label
alignment after a warp can be read off voxel by voxel.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scripts.labels import LEFT_RIGHT_SWAP
from scripts.tools.augmentation_figure import save_augmentation_figure
from scripts.transforms.anatomical_variability import (
    AnatomicalVariabilityModel,
    build_variability_model,
    build_variability_model_from_datalist,
)
from scripts.transforms.augmentation import (
    RandAnatomicalDeformd,
    RandBSplineDeform,
    RandBSplineDeformd,
    RandIntensityRemap,
    RandIntensityRemapd,
    RandLeftRightFlipd,
    RandLowResolutionAxis,
    RandLowResolutionAxisd,
    RandRigid,
    RandRigidd,
    bspline_displacement_field,
    bspline_folding_bound_mm,
    intensity_augmentations,
    jacobian_determinant,
    left_right_axis,
)

SPACING = (1.1, 1.1, 2.6)
AFFINE_RAS = np.diag([*SPACING, 1.0])
AFFINE_RAS[:3, 3] = (-17.0, -20.0, 5.0)
AFFINE_LPS = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
AFFINE_LPS[:3, 3] = (17.0, 20.0, 5.0)
# World x (left-right) along array axis 1, world y along array axis 0: the flip must not assume axis 0.
AFFINE_PERMUTED = np.array([[0.0, 1.1, 0.0, -15.0], [1.1, 0.0, 0.0, -17.0], [0.0, 0.0, 2.6, 0.0], [0, 0, 0, 1.0]])

# value: (low corner, high corner) in mm relative to the volume's world centre; odd = patient's left (-x in RAS).
# Deliberately asymmetric, so a flip moves every centroid.
BOXES_MM = {
    1: ((-14.0, 2.0, -12.0), (-6.0, 10.0, 10.0)),
    2: ((3.0, 1.0, -8.0), (12.0, 9.0, 12.0)),
    5: ((-16.5, -6.0, -6.0), (-11.0, 0.0, 8.0)),
    7: ((-10.0, -14.0, -10.0), (-2.0, -5.0, 12.0)),
    8: ((2.0, -15.0, -12.0), (9.0, -7.0, 9.0)),
}


def _phantom(
    affine: np.ndarray = AFFINE_RAS, shape: tuple[int, int, int] = (32, 32, 16), label_dtype: torch.dtype = torch.uint8
) -> tuple[MetaTensor, MetaTensor]:
    """(image, label) MetaTensors (1, X, Y, Z); image intensity == label value."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    centre = affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0) + affine[:3, 3]
    rel = world - centre
    label = np.zeros(shape, dtype=np.uint8)
    for value, (lo, hi) in BOXES_MM.items():
        inside = np.all((rel >= lo) & (rel < hi), axis=-1)
        label[inside] = value
    aff = torch.as_tensor(affine, dtype=torch.float64)
    lab = MetaTensor(torch.from_numpy(label)[None].to(label_dtype), affine=aff.clone())
    img = MetaTensor(torch.from_numpy(label)[None].float(), affine=aff.clone())
    return img, lab


def _interior(label: torch.Tensor) -> torch.Tensor:
    """Voxels of (X, Y, Z) ``label`` whose 6 neighbours carry the same value (borders excluded)."""
    lab = label
    mask = torch.ones_like(lab, dtype=torch.bool)
    for axis in range(3):
        for shift in (1, -1):
            mask &= torch.roll(lab, shift, axis) == lab
    mask[0], mask[-1], mask[:, 0], mask[:, -1], mask[:, :, 0], mask[:, :, -1] = (False,) * 6
    return mask


def _centroid_world(label: MetaTensor, value: int) -> np.ndarray:
    idx = np.argwhere(label[0].numpy() == value).mean(0)
    aff = label.affine.numpy()
    return aff[:3, :3] @ idx + aff[:3, 3]


def _assert_aligned(out: dict[str, Any], original_label: MetaTensor) -> None:
    """Image (linear), its nearest copy and the label come from one draw and one resampling each."""
    lab, img, img_nn = out["label"], out["image"], out["image_nn"]
    assert isinstance(lab, MetaTensor) and isinstance(img, MetaTensor)
    assert lab.dtype == original_label.dtype and img.dtype == torch.float32
    torch.testing.assert_close(lab.affine, original_label.affine)
    torch.testing.assert_close(img.affine, original_label.affine)
    assert set(torch.unique(lab).tolist()) <= set(torch.unique(original_label).tolist())
    # nearest-sampled image == label everywhere: same sampling positions for every key
    assert torch.equal(img_nn.as_tensor().long(), lab.as_tensor().long())
    inner = _interior(lab[0].as_tensor())
    assert inner.sum() > 100
    err = (img[0].as_tensor() - lab[0].as_tensor().float()).abs()[inner]
    assert (err < 0.5).float().mean() > 0.98, f"linear image off the label inside structures: {err.max()}"
    assert not torch.equal(lab.as_tensor(), original_label.as_tensor()), "the transform did nothing"


def _warp_dict(img: MetaTensor, lab: MetaTensor) -> dict[str, Any]:
    return {"image": img.clone(), "label": lab.clone(), "image_nn": img.clone()}


KEYS3 = ["image", "label", "image_nn"]
MODES3 = ("bilinear", "nearest", "nearest")


# ----------------------------------------------------------------------------------------------------------------
# Spatial transforms: alignment, physics, identity, determinism
# ----------------------------------------------------------------------------------------------------------------


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
    img, lab = _phantom(affine)
    for seed in (0, 1):
        out = make().set_random_state(seed)(_warp_dict(img, lab))
        _assert_aligned(out, lab)


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
    img, lab = _phantom()
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
    img, _ = _phantom()
    # x extent 31 * 1.1 = 34.1 mm over 6 - 3 = 3 intervals -> spacing 11.37 mm; bound 0.4 * 11.37 = 4.55 mm < 6 mm
    t = RandBSplineDeform((6, 6, 5), (6.0, 1.0, 1.0), locked_borders=1, prob=1.0)
    with pytest.warns(RuntimeWarning, match=r"folding-safe bound.*axes x \(6 > 4.55 mm\)"):
        t(img)


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
        lambda: RandBSplineDeformd(KEYS3, prob=0.0, mode=MODES3),
        lambda: RandBSplineDeformd(KEYS3, max_displacement_mm=0.0, prob=1.0, mode=MODES3),
        lambda: RandLeftRightFlipd(KEYS3, label_keys="label", prob=0.0),
        lambda: RandIntensityRemapd("image", prob=0.0),
        lambda: RandLowResolutionAxisd("image", prob=0.0),
        lambda: RandLowResolutionAxisd("image", factor_range=1.0, prob=1.0),
    ],
    ids=["rigid-p0", "rigid-zero", "bspline-p0", "bspline-zero", "flip-p0", "remap-p0", "lowres-p0", "lowres-f1"],
)
def test_identity(make: Callable[[], MapTransform]) -> None:
    img, lab = _phantom()
    out = make().set_random_state(0)(_warp_dict(img, lab))
    for key, ref in (("image", img), ("label", lab), ("image_nn", img)):
        assert isinstance(out[key], MetaTensor)
        assert out[key].dtype == ref.dtype
        assert torch.equal(out[key].as_tensor(), ref.as_tensor())
        torch.testing.assert_close(out[key].affine, ref.affine)


def test_plain_array_input_gives_metatensor() -> None:
    img, lab = _phantom()
    out = RandBSplineDeformd(["image", "label"], (6, 6, 5), 3.0, locked_borders=1, prob=1.0).set_random_state(0)(
        {"image": img.numpy(), "label": lab.as_tensor()}
    )
    assert isinstance(out["image"], MetaTensor) and out["label"].dtype == torch.uint8


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandRigidd(["image", "label"], prob=0.7),
        lambda: RandBSplineDeformd(["image", "label"], (6, 6, 5), 3.0, locked_borders=1, prob=0.7),
        lambda: RandLeftRightFlipd(["image", "label"], prob=0.5),
        lambda: RandIntensityRemapd("image", prob=0.7),
        lambda: RandLowResolutionAxisd("image", prob=0.7),
    ],
    ids=["rigid", "bspline", "flip", "remap", "lowres"],
)
def test_determinism_with_set_random_state(make: Callable[[], MapTransform]) -> None:
    img, lab = _phantom()
    runs = []
    for _ in range(2):
        t = make().set_random_state(123)
        runs.append([t({"image": img.clone(), "label": lab.clone()}) for _ in range(4)])
    for a, b in zip(*runs):
        assert torch.equal(a["image"].as_tensor(), b["image"].as_tensor())
        assert torch.equal(a["label"].as_tensor(), b["label"].as_tensor())
    # successive calls differ (fresh draws), so the seed is what makes the runs equal
    assert any(not torch.equal(r["image"].as_tensor(), runs[0][0]["image"].as_tensor()) for r in runs[0][1:])


# ----------------------------------------------------------------------------------------------------------------
# Left-right flip
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("affine", "shape", "axis"),
    [(AFFINE_RAS, (32, 32, 16), 0), (AFFINE_LPS, (32, 32, 16), 0), (AFFINE_PERMUTED, (30, 34, 16), 1)],
    ids=["ras", "lps", "x-on-array-axis-1"],
)
def test_flip_swaps_left_and_right(affine: np.ndarray, shape: tuple[int, int, int], axis: int) -> None:
    img, lab = _phantom(affine, shape)
    assert left_right_axis(affine) == axis
    mid_x = (affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0) + affine[:3, 3])[0]
    out = RandLeftRightFlipd(["image", "label"], label_keys="label", prob=1.0)({"image": img, "label": lab})
    for left in (1, 5, 7):
        right = LEFT_RIGHT_SWAP[left]
        before_left = _centroid_world(lab, left)
        assert before_left[0] < mid_x  # the phantom's left labels are on the patient's left (-x)
        after_right = _centroid_world(out["label"], right)
        mirrored = before_left.copy()
        mirrored[0] = 2 * mid_x - before_left[0]
        np.testing.assert_allclose(after_right, mirrored, atol=1e-6)
    assert set(torch.unique(out["label"]).tolist()) == {LEFT_RIGHT_SWAP[v] for v in torch.unique(lab).tolist()}
    # the image moved with the label: it still carries the old label value, i.e. the swapped-back new one
    swapped_back = out["label"].as_tensor().long().apply_(lambda v: LEFT_RIGHT_SWAP[v])
    assert torch.equal(out["image"].as_tensor(), swapped_back.float())
    torch.testing.assert_close(out["label"].affine, lab.affine)


def test_flip_permutes_one_hot_channels() -> None:
    _, lab = _phantom()
    onehot = MetaTensor(
        torch.nn.functional.one_hot(lab[0].as_tensor().long(), 9).permute(3, 0, 1, 2).float(), affine=lab.affine.clone()
    )
    out = RandLeftRightFlipd(["label"], label_keys="label", prob=1.0)({"label": onehot})["label"]
    flipped = RandLeftRightFlipd(["label"], label_keys="label", prob=1.0)({"label": lab})["label"]
    assert torch.equal(out.argmax(0), flipped[0].long())


# ----------------------------------------------------------------------------------------------------------------
# Invalid arguments: one test each, TorchIO style (parameter, axis, rule, value in the message)
# ----------------------------------------------------------------------------------------------------------------


def _tiny_model() -> AnatomicalVariabilityModel:
    comps = np.zeros((2, 3, 4, 4, 4), dtype=np.float32)
    comps[0, 0] = comps[1, 1] = 1.0 / 8.0  # unit norm: 64 voxels * (1/8)^2 = 1
    return AnatomicalVariabilityModel(
        comps, np.array([4.0, 1.0]), np.diag([5.0, 5.0, 5.0, 1.0]), np.zeros(3), np.zeros((3, 4, 4, 4)), 3
    )


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
    (
        "flip-label-keys",
        lambda: RandLeftRightFlipd(["image"], label_keys="label"),
        ValueError,
        r"label_keys must be a subset of keys",
    ),
    ("flip-prob", lambda: RandLeftRightFlipd(["image"], label_keys=(), prob=-1), ValueError, r"prob must be"),
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
    (
        "lowres-factor",
        lambda: RandLowResolutionAxisd("image", factor_range=(0.5, 2.0)),
        ValueError,
        r"factor_range must have low >= 1.0",
    ),
    ("lowres-order", lambda: RandLowResolutionAxis(factor_range=(3.0, 2.0)), ValueError, r"low <= high"),
    ("lowres-axes", lambda: RandLowResolutionAxis(world_axes=(3,)), ValueError, r"world_axes must be"),
    (
        "anatomical-scale",
        lambda: RandAnatomicalDeformd("image", _tiny_model(), scale=-1.0),
        ValueError,
        r"scale must be a number >= 0, not -1.0",
    ),
    (
        "anatomical-max-std",
        lambda: RandAnatomicalDeformd("image", _tiny_model(), max_std=0),
        ValueError,
        r"max_std must be a number > 0",
    ),
    (
        "anatomical-components",
        lambda: RandAnatomicalDeformd("image", _tiny_model(), num_components=5),
        ValueError,
        r"num_components must be None or an integer in \[1, 2\], not 5",
    ),
    ("anatomical-model-type", lambda: RandAnatomicalDeformd("image", 3.0), TypeError, r"model must be"),
    (
        "anatomical-model-missing",
        lambda: RandAnatomicalDeformd("image", "/nonexistent/model.npz"),
        FileNotFoundError,
        r"not found",
    ),
    (
        "model-shapes",
        lambda: AnatomicalVariabilityModel(
            np.zeros((2, 3, 4, 4, 4)), np.ones(3), np.eye(4), np.zeros(3), np.zeros((3, 4, 4, 4)), 3
        ),
        ValueError,
        r"eigenvalues_mm2 must have shape \(2,\)",
    ),
    ("build-one-subject", lambda: build_variability_model([np.ones((4, 4, 4))]), ValueError, r"at least 2"),
    (
        "build-reference",
        lambda: build_variability_model([np.ones((4, 4, 4))] * 2, reference_index=2),
        ValueError,
        r"reference_index must be in \[0, 1\], not 2",
    ),
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


def test_invalid_input_shape_and_missing_draw() -> None:
    with pytest.raises(ValueError, match=r"shape \(C, X, Y, Z\), got shape \(32, 32\)"):
        RandBSplineDeform(prob=1.0)(torch.zeros(32, 32))
    img, _ = _phantom()
    with pytest.raises(RuntimeError, match="call randomize"):
        RandRigid(prob=1.0)(img, randomize=False)


# ----------------------------------------------------------------------------------------------------------------
# Anatomical variability model
# ----------------------------------------------------------------------------------------------------------------

ANAT_SPACING = (2.0, 2.0, 4.0)


def _ellipsoid_label(shape: tuple[int, int, int] = (40, 40, 20)) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, ANAT_SPACING)], indexing="ij")
    centre = [(n - 1) * s / 2 for n, s in zip(shape, ANAT_SPACING)]
    label = np.zeros(shape, np.uint8)
    specs = [
        (1, (-12, 5, 0), (6, 6, 25)),
        (2, (12, 5, 0), (6, 6, 25)),
        (5, (-20, -8, 0), (5, 4, 20)),
        (6, (20, -8, 0), (5, 4, 20)),
        (7, (-8, -22, 0), (7, 7, 28)),
        (8, (8, -22, 0), (7, 7, 28)),
    ]
    for value, offset, radius in specs:
        inside = sum(((g - (c + o)) / r) ** 2 for g, c, o, r in zip(grids, centre, offset, radius)) <= 1
        label[inside] = value
    return label


def _subject_affine(rng: np.random.RandomState) -> np.ndarray:
    affine = np.diag([*ANAT_SPACING, 1.0])
    affine[:3, 3] = np.array([-40.0, -40.0, -40.0]) + rng.uniform(-5, 5, 3)
    return affine


@pytest.fixture(scope="module")
def anatomy() -> dict[str, Any]:
    """Six subjects: a base label map and five smoothly deformed, translated copies; the model built from them."""
    base = _ellipsoid_label()
    rng = np.random.RandomState(0)
    deform = RandBSplineDeform((6, 6, 5), (5.0, 5.0, 4.0), locked_borders=1, prob=1.0, mode="nearest")
    deform.set_random_state(3)
    labels = []
    for i in range(6):
        lab = MetaTensor(torch.from_numpy(base)[None], affine=torch.as_tensor(np.diag([*ANAT_SPACING, 1.0])))
        out = deform(lab) if i else lab
        labels.append(MetaTensor(out.as_tensor(), affine=torch.as_tensor(_subject_affine(rng))))
    start = time.perf_counter()
    model = build_variability_model(labels, model_spacing_mm=4.0, mesh_size=3, bspline_iterations=20)
    seconds = time.perf_counter() - start
    return {"base": base, "labels": labels, "model": model, "seconds": seconds}


def test_anatomical_model_recovers_variance(anatomy: dict[str, Any], tmp_path: Path) -> None:
    model: AnatomicalVariabilityModel = anatomy["model"]
    assert anatomy["seconds"] < 20.0
    assert model.num_subjects == 6 and model.num_components >= 3
    assert np.all(np.diff(model.eigenvalues_mm2) <= 0)
    flat = model.components.reshape(model.num_components, -1).astype(np.float64)
    np.testing.assert_allclose(flat @ flat.T, np.eye(model.num_components), atol=1e-4)
    # deformed copies: clearly non-zero shape variability (rms std of the displacement over the grid, mm) ...
    assert model.rms_std_mm > 0.2, model.rms_std_mm
    # ... whereas translated, undeformed copies give none: the affine part is removed
    rng = np.random.RandomState(1)
    rigid = [
        MetaTensor(torch.from_numpy(anatomy["base"])[None], affine=torch.as_tensor(_subject_affine(rng)))
        for _ in range(3)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "no non-linear variability" may or may not fire
        rigid_model = build_variability_model(rigid, model_spacing_mm=4.0, mesh_size=3, bspline_iterations=20)
    assert rigid_model.rms_std_mm < 0.1 * model.rms_std_mm
    # round trip through .npz
    path = model.save(tmp_path / "model.npz")
    loaded = AnatomicalVariabilityModel.load(path)
    np.testing.assert_array_equal(loaded.components, model.components)
    np.testing.assert_array_equal(loaded.eigenvalues_mm2, model.eigenvalues_mm2)
    np.testing.assert_array_equal(loaded.affine, model.affine)
    assert loaded.info["mesh_size"] == [3, 3, 3]


@pytest.mark.parametrize("affine", [np.diag([*ANAT_SPACING, 1.0]), np.diag([-2.0, -2.0, 4.0, 1.0])], ids=["ras", "lps"])
def test_anatomical_deformation_keeps_labels_aligned(
    anatomy: dict[str, Any], affine: np.ndarray, tmp_path: Path
) -> None:
    base = anatomy["base"]
    lab = MetaTensor(torch.from_numpy(base)[None], affine=torch.as_tensor(affine))
    img = MetaTensor(lab.as_tensor().float(), affine=torch.as_tensor(affine))
    path = anatomy["model"].save(tmp_path / "m.npz")
    t = RandAnatomicalDeformd(KEYS3, path, scale=2.0, prob=1.0, mode=MODES3).set_random_state(0)
    out = t(_warp_dict(img, lab))
    _assert_aligned(out, lab)
    # the field at this grid: non-trivial, smooth, no folding (world RAS mm == array axes for the RAS affine)
    if affine[0, 0] > 0:
        centre = t._call_kwargs({"label": lab})["center_mm"]
        u = t.warper.displacement_field_world_mm(base.shape, affine, centre)
        assert u.abs().max() > 0.5
        assert jacobian_determinant(u, ANAT_SPACING).min() > 0.0


def test_anatomical_deformation_is_the_same_in_world_space_for_ras_and_lps(anatomy: dict[str, Any]) -> None:
    # the same physical content stored RAS (index -> +x, +y) and LPS (index -> -x, -y): one draw, same world result
    ras = np.diag([*ANAT_SPACING, 1.0])
    ras[:3, 3] = (-39.0, -39.0, -38.0)
    shape = np.asarray(anatomy["base"].shape)
    lps = np.diag([-ANAT_SPACING[0], -ANAT_SPACING[1], ANAT_SPACING[2], 1.0])
    lps[:3, 3] = ras[:3, :3] @ np.array([shape[0] - 1, shape[1] - 1, 0]) + ras[:3, 3]
    arrays = {
        "ras": torch.from_numpy(anatomy["base"])[None],
        "lps": torch.from_numpy(anatomy["base"][::-1, ::-1].copy())[None],
    }
    out = {}
    for name, affine in (("ras", ras), ("lps", lps)):
        lab = MetaTensor(arrays[name], affine=torch.as_tensor(affine))
        t = RandAnatomicalDeformd("label", anatomy["model"], scale=2.0, prob=1.0, mode="nearest")
        out[name] = t.set_random_state(4)({"label": lab})["label"].as_tensor()
    back = out["lps"].flip(1, 2)
    assert not torch.equal(out["ras"], arrays["ras"])
    assert (back == out["ras"]).float().mean() > 0.995


def test_build_model_from_datalist(tmp_path: Path, anatomy: dict[str, Any]) -> None:
    entries = []
    for i, lab in enumerate(anatomy["labels"][:3]):
        nib.save(nib.Nifti1Image(lab[0].numpy(), lab.affine.numpy()), tmp_path / f"s{i}_label.nii.gz")
        entries.append({"image": f"s{i}_image.nii.gz", "label": f"s{i}_label.nii.gz"})
    (tmp_path / "datalist.json").write_text(json.dumps({"training": entries}))
    out = build_variability_model_from_datalist(
        str(tmp_path / "datalist.json"),
        str(tmp_path / "model.npz"),
        model_spacing_mm=4.0,
        mesh_size=3,
        bspline_iterations=10,
    )
    model = AnatomicalVariabilityModel.load(out)
    assert model.num_subjects == 3 and model.rms_std_mm > 0.0
    assert model.info["sources"][0].endswith("s0_label.nii.gz")


# ----------------------------------------------------------------------------------------------------------------
# Intensity
# ----------------------------------------------------------------------------------------------------------------


def _smooth_image() -> MetaTensor:
    img, _ = _phantom()
    x = torch.linspace(0.0, 1.0, 32).view(32, 1, 1)
    return MetaTensor((img.as_tensor() * 10.0 + 5.0 + x * 3.0).float(), affine=img.affine.clone())


def test_intensity_augmentations_apply_to_image_only() -> None:
    img, lab = _phantom()
    image = _smooth_image()
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


@pytest.mark.parametrize(("invert", "sign"), [(0.0, 1.0), (1.0, -1.0)], ids=["monotonic", "inverted"])
def test_intensity_remap_order_and_range(invert: float, sign: float) -> None:
    image = _smooth_image()
    t = RandIntensityRemap(prob=1.0, invert_prob=invert, non_monotonic_prob=0.0).set_random_state(0)
    out = t(image)
    v_in, v_out = image.flatten().numpy(), out.flatten().numpy()
    order = np.argsort(v_in, kind="stable")
    steps = np.diff(v_out[order]) * sign
    assert steps.min() >= -1e-4  # monotonic (increasing, or decreasing when inverted)
    assert v_out.min() >= v_in.min() - 1e-4 and v_out.max() <= v_in.max() + 1e-4
    assert t.kind == ("inverted" if invert else "monotonic")


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


# ----------------------------------------------------------------------------------------------------------------
# Documentation figure
# ----------------------------------------------------------------------------------------------------------------


def test_augmentation_figure_writes_png(tmp_path: Path, anatomy: dict[str, Any]) -> None:
    img, lab = _phantom(AFFINE_LPS)
    model_path = anatomy["model"].save(tmp_path / "m.npz")
    out = save_augmentation_figure(img, lab, str(tmp_path / "fig" / "aug.png"), model=str(model_path), dpi=40)
    data = Path(out).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_augmentation_figure_with_dixon_contrasts_has_more_rows(tmp_path: Path) -> None:
    from scripts.tools.augmentation_figure import augmentation_examples

    img, lab = _phantom(AFFINE_LPS)
    water, fat = img * 0.8, img * 0.2 + 1.0
    plain = save_augmentation_figure(img, lab, str(tmp_path / "plain.png"), dpi=30)
    dixon = save_augmentation_figure(img, lab, str(tmp_path / "dixon.png"), water=water, fat=fat, dpi=30)
    height = {p: int.from_bytes(Path(p).read_bytes()[20:24], "big") for p in (plain, dixon)}
    assert height[dixon] > height[plain]
    titles = [t for t, _ in augmentation_examples(dixon=True)]
    assert "Dixon contrast: fat image" in titles and "short field of view (z)" in titles
    with pytest.raises(ValueError, match="share the image's grid"):
        save_augmentation_figure(img, lab, str(tmp_path / "bad.png"), water=water[:, :-1], fat=fat[:, :-1])
