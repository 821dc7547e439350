"""Tests of the Dixon contrast synthesis (scripts/transforms/acquisition/dixon_contrast.py) and of the acquisition
augmentations' place in train.json.

Known answers: a water/fat pair with constant tissue values, so every synthesised contrast can be computed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scripts.transforms.acquisition.dixon_contrast import DIXON_CONTRASTS, RandDixonContrast, RandDixonContrastd

BUNDLE = Path(__file__).resolve().parents[3]

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
