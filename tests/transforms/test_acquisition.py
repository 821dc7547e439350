"""Tests of the acquisition augmentations (scripts/transforms/acquisition.py) and of their place in train.json.

Known answers: a water/fat pair with constant tissue values, so every synthesised contrast can be computed by
hand; boxes in world millimetres and LPS storage, so the field-of-view slab is checked along the patient's axis.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scripts.transforms.acquisition import (
    DIXON_CONTRASTS,
    RandDixonContrast,
    RandDixonContrastd,
    RandFieldOfView,
    RandFieldOfViewd,
    RandSurfaceCoil,
    RandSurfaceCoild,
)
from scripts.transforms.augmentation import RandAnatomicalDeformd

BUNDLE = Path(__file__).resolve().parents[2]
AFFINE_LPS = np.diag([-1.5, -1.5, 4.0, 1.0])


def _dixon_pair() -> tuple[MetaTensor, MetaTensor]:
    """Water and fat of 3 tissues along x: muscle (FF 0.1), fat (FF 0.95), background; 10 arbitrary units."""
    water = np.zeros((1, 9, 6, 5), np.float32)
    fat = np.zeros_like(water)
    water[:, 0:3], fat[:, 0:3] = 9.0, 1.0  # muscle
    water[:, 3:6], fat[:, 3:6] = 0.5, 9.5  # fat
    return MetaTensor(water, affine=torch.as_tensor(AFFINE_LPS)), MetaTensor(fat, affine=torch.as_tensor(AFFINE_LPS))


@pytest.mark.parametrize("kind", sorted(DIXON_CONTRASTS))
def test_dixon_contrast_known_answer(kind: str) -> None:
    water, fat = _dixon_pair()
    mixer = RandDixonContrast(prob=1.0, kinds=[kind])
    mixer.set_random_state(7)
    out = mixer(water, fat)
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32
    assert np.allclose(out.affine.numpy(), AFFINE_LPS)
    if kind == "opposed":
        expected_muscle, expected_fat = 8.0, 9.0
    else:
        w_w, w_f = mixer.weights
        (lo_w, hi_w), (lo_f, hi_f) = DIXON_CONTRASTS[kind]
        assert lo_w <= w_w <= hi_w and lo_f <= w_f <= hi_f
        expected_muscle, expected_fat = 9.0 * w_w + 1.0 * w_f, 0.5 * w_w + 9.5 * w_f
    assert float(out[0, 1, 2, 2]) == pytest.approx(expected_muscle, rel=1e-6)
    assert float(out[0, 4, 2, 2]) == pytest.approx(expected_fat, rel=1e-6)
    assert float(out[0, 8, 2, 2]) == 0.0


def test_dixon_contrast_kinds_cover_fat_dark_and_fat_bright_muscle() -> None:
    """Muscle/fat signal ratio (muscle FF 0.1): below 0.2 for the fat image, above 1 for the water image."""
    water, fat = _dixon_pair()
    ratios = {}
    for kind in ("fat", "in_phase", "water"):
        mixer = RandDixonContrast(1.0, [kind])
        mixer.set_random_state(0)
        out = mixer(water, fat)
        ratios[kind] = float(out[0, 1, 0, 0] / out[0, 4, 0, 0])
    assert ratios["fat"] < 0.2 < 0.8 < ratios["in_phase"] < 1.3 < 3.0 < ratios["water"]


def test_dixon_contrast_dictionary_replaces_image_or_passes_through() -> None:
    water, fat = _dixon_pair()
    image = MetaTensor(torch.full(water.shape, 5.0), affine=torch.as_tensor(AFFINE_LPS))
    t = RandDixonContrastd("image", prob=1.0, kinds=["fat"])
    t.set_random_state(1)
    out = t({"image": image, "water": water, "fat": fat, "label": torch.zeros(water.shape)})
    assert torch.allclose(out["image"], t.mixer.weights[0] * water + fat)
    assert out["water"] is water
    # no water/fat in the datalist (single-contrast training data): the image is kept
    single = t({"image": image})
    assert single["image"] is image
    never = RandDixonContrastd("image", prob=0.0)({"image": image, "water": water, "fat": fat})
    assert never["image"] is image


def test_dixon_contrast_draws_every_kind_and_is_seeded() -> None:
    water, fat = _dixon_pair()
    t = RandDixonContrastd("image", prob=1.0).set_random_state(3)
    kinds = set()
    for _ in range(60):
        t({"image": water, "water": water, "fat": fat})
        kinds.add(t.mixer.kind)
    assert kinds == set(DIXON_CONTRASTS)
    a = RandDixonContrastd("image", prob=1.0).set_random_state(11)({"image": water, "water": water, "fat": fat})
    b = RandDixonContrastd("image", prob=1.0).set_random_state(11)({"image": water, "water": water, "fat": fat})
    assert torch.equal(a["image"], b["image"])


def test_dixon_contrast_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kinds must be a non-empty subset"):
        RandDixonContrast(kinds=["t2"])
    with pytest.raises(ValueError, match="prob"):
        RandDixonContrast(prob=1.5)
    water, fat = _dixon_pair()
    with pytest.raises(ValueError, match="differ in shape"):
        RandDixonContrast(1.0)(water, fat[:, :4])


@pytest.mark.parametrize("world_axis, array_axis", [(0, 0), (1, 1), (2, 2)])
def test_field_of_view_blanks_outside_one_slab_along_the_patient_axis(world_axis: int, array_axis: int) -> None:
    shape = (20, 16, 12)
    image = MetaTensor(torch.rand(1, *shape) + 1.0, affine=torch.as_tensor(AFFINE_LPS))
    label = MetaTensor(torch.randint(1, 9, (1, *shape), dtype=torch.uint8), affine=torch.as_tensor(AFFINE_LPS))
    t = RandFieldOfViewd(
        ["image", "label"], label_keys=["label"], prob=1.0, world_axes=[world_axis], extent_range=(0.4, 0.6)
    ).set_random_state(5)
    out = t({"image": image, "label": label})
    axis, start, stop = t.blanker.slab(image)
    assert axis == array_axis
    n = shape[axis]
    assert 0.4 * n - 1 <= stop - start <= 0.6 * n + 1 and 0 <= start < stop <= n
    kept = (out["image"] > 0).squeeze(0)
    other_axes = tuple(a for a in range(3) if a != axis)
    profile = kept.all(dim=other_axes).numpy()
    assert profile.tolist() == [start <= i < stop for i in range(n)]
    # labels blanked exactly where the image is, and kept inside
    assert torch.equal(out["label"][0] > 0, kept)
    assert out["label"].dtype == torch.uint8
    inside = [slice(None)] * 4
    inside[1 + axis] = slice(start, stop)
    assert torch.equal(out["image"][tuple(inside)], image[tuple(inside)])
    assert np.allclose(out["image"].affine.numpy(), AFFINE_LPS)


@pytest.mark.parametrize("world_axis", [0, 2])
def test_field_of_view_replicate_repeats_the_slab_edges_in_image_and_label(world_axis: int) -> None:
    # what sliding-window inference with replicate padding shows around a scan shorter than its window
    shape = (20, 16, 12)
    image = MetaTensor(torch.rand(1, *shape) + 1.0, affine=torch.as_tensor(AFFINE_LPS))
    label = MetaTensor(torch.randint(0, 9, (1, *shape), dtype=torch.uint8), affine=torch.as_tensor(AFFINE_LPS))
    t = RandFieldOfViewd(
        ["image", "label"],
        label_keys=["label"],
        prob=1.0,
        world_axes=[world_axis],
        extent_range=(0.3, 0.5),
        outside="replicate",
    ).set_random_state(3)
    out = t({"image": image, "label": label})
    axis, start, stop = t.blanker.slab(image)
    assert 0 < stop - start < shape[axis] and (start > 0 or stop < shape[axis])
    for key, ref in (("image", image), ("label", label)):
        o = out[key]
        assert o.shape == ref.shape and o.dtype == ref.dtype
        assert np.allclose(o.affine.numpy(), AFFINE_LPS)
        for i in range(shape[axis]):
            src = min(max(i, start), stop - 1)  # the slab keeps its slices; outside, the nearest edge slice
            assert torch.equal(o.select(1 + axis, i), ref.select(1 + axis, src)), (key, i, start, stop)


def test_field_of_view_probability_zero_and_bad_arguments() -> None:
    image = torch.ones(1, 4, 4, 4)
    out = RandFieldOfViewd("image", prob=0.0)({"image": image})
    assert torch.equal(out["image"], image)
    with pytest.raises(ValueError, match="extent_range"):
        RandFieldOfView(extent_range=(0.0, 0.5))
    with pytest.raises(ValueError, match="extent_range"):
        RandFieldOfView(extent_range=(0.5, 1.5))
    with pytest.raises(ValueError, match="world_axes"):
        RandFieldOfView(world_axes=[3])
    with pytest.raises(ValueError, match="outside must be 'fill' or 'replicate'"):
        RandFieldOfView(outside="reflect")


def test_anatomical_deformation_without_model_is_identity() -> None:
    image = MetaTensor(torch.rand(1, 6, 6, 6), affine=torch.as_tensor(AFFINE_LPS))
    out = RandAnatomicalDeformd(["image"], model="", prob=1.0, mode="bilinear")({"image": image})
    assert torch.equal(out["image"].as_tensor(), image.as_tensor())


def test_train_json_uses_water_and_fat_only_when_listed(tmp_path: Path) -> None:
    """The configured preprocessing on a Dixon datalist entry and on an image-only entry: same keys out."""
    import nibabel as nib
    from monai.bundle import ConfigParser

    rng = np.random.default_rng(0)
    shape = (40, 36, 20)
    label = np.zeros(shape, np.uint8)
    for value in range(1, 9):
        x0 = 2 + 4 * (value - 1)
        label[x0 : x0 + 3, 10:20, 4:16] = value
    water = (100 + 10 * rng.random(shape)).astype(np.float32) * (label > 0)
    fat = (300 * (label == 0) + 20 * (label > 0)).astype(np.float32)
    affine = np.diag([2.0, 2.0, 4.0, 1.0])
    for name, arr in {"water": water, "fat": fat, "image": water + fat, "label": label}.items():
        nib.save(nib.Nifti1Image(arr, affine), str(tmp_path / f"{name}.nii.gz"))
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    # intensity randomisation off, so the [0, 1] scaling after the contrast synthesis can be checked
    parser.update(
        {"patch_size": [32, 32, 16], "contrast_prob": 1.0, "coil_prob": 1.0, "intensity_prob": 0.0, "remap_prob": 0.0}
    )
    preprocessing = parser.get_parsed_content("train#preprocessing")
    validation = parser.get_parsed_content("validate#preprocessing")
    dixon = {k: str(tmp_path / f"{k}.nii.gz") for k in ("image", "water", "fat", "label")}
    single = {k: dixon[k] for k in ("image", "label")}
    for entry in (dixon, single):
        for sample in preprocessing(entry):
            assert set(sample) == {"image", "label"}
            assert tuple(sample["image"].shape) == (1, 32, 32, 16)
            assert float(sample["image"].max()) <= 1.0 + 1e-6
        val = validation(entry)
        assert set(val) == {"image", "label"}
        assert float(val["image"].min()) >= 0.0 and float(val["image"].max()) == pytest.approx(1.0)
    # the shipped model's recipe: the acquisition augmentations are opt-in (docs/studies/real_scans.md)
    defaults = json.loads((BUNDLE / "configs" / "train.json").read_text())
    assert defaults["contrast_prob"] == 0.0 and defaults["field_of_view_prob"] == 0.0 and defaults["coil_prob"] == 0.0


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
