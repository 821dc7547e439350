"""RandTissueSynthesis(d): known answers, determinism, mm-based blur, validation, and the train.json step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import Compose
from scripts.configuration.settings import SettingsExit, validate_train_settings
from scripts.transforms.tissue_synthesis import DEFAULT_TISSUE_GROUPS, RandTissueSynthesis, RandTissueSynthesisd

BUNDLE_ROOT = Path(__file__).resolve().parents[2]
#: every random effect switched off: each tissue gets exactly its drawn mean
PLAIN = dict(
    std_range=(0.0, 0.0),
    invert_prob=0.0,
    gamma_range=(1.0, 1.0),
    bias_std=0.0,
    noise_range=(0.0, 0.0),
    inplane_fwhm_mm=(0.0, 0.0),
    slice_thickness_mm=(0.0, 0.0),
)


def _tissue(spacing=(1.0, 1.0, 1.0), shape=(12, 10, 8), ids=(0, 1, 2, 40, 31, 32, 60)) -> MetaTensor:
    """Stripes of ``ids`` along x on a grid of ``spacing`` mm, RAS affine."""
    arr = np.zeros((1, *shape), dtype=np.int16)
    for k, i in enumerate(ids):
        arr[0, k * shape[0] // len(ids) :] = i
    return MetaTensor(
        torch.as_tensor(arr),
        affine=torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64)),
        meta={"filename_or_obj": "tissue.nii.gz"},
    )


def _image(shape=(12, 10, 8)) -> MetaTensor:
    return MetaTensor(
        torch.arange(np.prod(shape), dtype=torch.float32).reshape(1, *shape),
        affine=torch.eye(4, dtype=torch.float64),
        meta={"filename_or_obj": "inphase.nii.gz"},
    )


def test_known_answer_one_value_per_tissue_tied_groups_dark_background():
    tissue = _tissue()
    synth = RandTissueSynthesis(prob=1.0, group_spread=0.0, **PLAIN).set_random_state(4)
    out = synth(tissue)
    assert out.dtype == torch.float32 and out.shape == tissue.shape
    t, o = tissue.numpy(), out.numpy()
    assert np.all(o[t == 0] == 0)
    for i in np.unique(t):
        values = np.unique(o[t == i])
        assert values.size == 1 and values[0] == np.float32(synth.means[i])
    # 1, 2 (psoas) and 40 (rectus abdominis) are muscles: one value; 31, 32 fat: one value
    assert o[t == 1][0] == o[t == 2][0] == o[t == 40][0]
    assert o[t == 31][0] == o[t == 32][0] != o[t == 1][0]


def test_group_spread_gives_related_means():
    synth = RandTissueSynthesis(prob=1.0, group_spread=0.02, mean_range=(0.0, 1.0)).set_random_state(0)
    synth.randomize()
    muscle = synth.means[list(DEFAULT_TISSUE_GROUPS["muscle"])]
    assert 0 < muscle.std() < 0.05


def test_deterministic_for_a_seed_and_varies_between_seeds():
    tissue = _tissue()
    a = RandTissueSynthesis(prob=1.0).set_random_state(7)(tissue)
    b = RandTissueSynthesis(prob=1.0).set_random_state(7)(tissue)
    c = RandTissueSynthesis(prob=1.0).set_random_state(8)(tissue)
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = RandTissueSynthesisd("image", prob=1.0).set_random_state(7)({"image": _image(), "tissue": tissue})
    assert torch.equal(d["image"], a)


def test_prob_zero_leaves_the_image_byte_identical():
    image = _image()
    data = {"image": image, "tissue": _tissue()}
    out = RandTissueSynthesisd("image", prob=0.0).set_random_state(1)(data)
    assert out["image"] is image
    assert RandTissueSynthesis(prob=0.0)(_tissue(), image) is image


def test_dictionary_output_keeps_the_image_meta_and_shape():
    image = _image()
    out = RandTissueSynthesisd("image", prob=1.0).set_random_state(2)({"image": image, "tissue": _tissue()})
    assert out["image"].dtype == torch.float32 and out["image"].shape == image.shape
    assert out["image"].meta["filename_or_obj"] == "inphase.nii.gz"
    assert torch.equal(out["image"].affine, image.affine)
    assert not torch.equal(out["image"], image)


def test_missing_tissue_key_when_allowed_or_not():
    image = _image()
    out = RandTissueSynthesisd("image", prob=1.0, allow_missing_keys=True)({"image": image, "label": 1})
    assert out["image"] is image and set(out) == {"image", "label"}
    with pytest.raises(KeyError, match="no 'tissue' in the data"):
        RandTissueSynthesisd("image", prob=1.0)({"image": image})


def test_slice_thickness_in_mm_is_the_same_physical_smoothing_on_two_grids():
    # an edge at z = 20 mm on a 1 mm and a 2 mm grid (voxel k covers [k * s, (k + 1) * s) mm)
    profiles = {}
    for s in (1.0, 2.0):
        n = int(40 / s)
        arr = np.zeros((1, 4, 4, n), dtype=np.int16)
        arr[..., : int(20 / s)] = 2  # psoas
        arr[..., int(20 / s) :] = 31  # fat
        affine = torch.diag(torch.tensor([1.0, 1.0, s, 1.0], dtype=torch.float64))
        affine[2, 3] = s / 2  # voxel centres at (k + 0.5) * s mm
        tissue = MetaTensor(torch.as_tensor(arr), affine=affine)
        synth = RandTissueSynthesis(prob=1.0, **{**PLAIN, "slice_thickness_mm": (8.0, 8.0)}).set_random_state(3)
        out = synth(tissue)[0, 1, 1].numpy()
        low, high = synth.means[2], synth.means[31]
        profiles[s] = (out - low) / (high - low)  # 0 in psoas, 1 in fat
    fine, coarse = profiles[1.0], profiles[2.0]
    fine_at_coarse_centres = (fine[0::2] + fine[1::2]) / 2  # centres (2k + 1) mm
    assert 0.3 < coarse[10] < 0.7 and 0.1 < coarse[9] < 0.4  # smoothed over a few mm, not a step
    np.testing.assert_allclose(coarse, fine_at_coarse_centres, atol=0.02)


def test_inplane_blur_leaves_the_slice_axis_alone():
    arr = np.zeros((1, 8, 8, 8), dtype=np.int16)
    arr[:, :4] = 2
    arr[:, 4:] = 31
    tissue = MetaTensor(torch.as_tensor(arr), affine=torch.eye(4, dtype=torch.float64))
    out = RandTissueSynthesis(prob=1.0, **{**PLAIN, "inplane_fwhm_mm": (3.0, 3.0)}).set_random_state(0)(tissue)
    assert torch.allclose(out[..., 0], out[..., 5])  # constant along z: nothing mixed between slices
    assert len(torch.unique(out[0, :, 0, 0])) > 2  # the x edge is smoothed


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prob": 1.5}, "prob must be a number in \\[0, 1\\]"),
        ({"mean_range": (1.0, 0.0)}, "mean_range must satisfy low <= high"),
        ({"std_range": (-0.1, 0.1)}, "std_range must have low >= 0"),
        ({"gamma_range": (0.0, 1.0)}, "gamma_range must satisfy 0 < low"),
        ({"group_spread": -1}, "group_spread must be >= 0"),
        ({"bias_spacing_mm": 0}, "bias_spacing_mm must be > 0 mm"),
        ({"slice_thickness_mm": (-1.0, 2.0)}, "slice_thickness_mm \\(mm\\) must have low >= 0"),
        ({"inplane_fwhm_mm": "wide"}, "inplane_fwhm_mm \\(mm\\) must be a number or a \\(low, high\\) pair"),
        ({"slice_axis": 3}, "slice_axis must be a world axis"),
        ({"invert_prob": 2}, "invert_prob must be a number in \\[0, 1\\]"),
        ({"max_id": 0}, "max_id must be an integer in \\[1, 65535\\]"),
        ({"groups": {"muscle": [0, 1]}}, "0 is the background"),
        ({"groups": {"a": [1, 2], "b": [2]}}, "tissue id 2 is in two groups, 'a' and 'b'"),
        ({"groups": {"a": []}}, "groups\\['a'\\] must be a non-empty sequence"),
    ],
)
def test_parameters_are_validated_with_clear_messages(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        RandTissueSynthesis(**kwargs)


def test_bad_tissue_maps_are_refused():
    synth = RandTissueSynthesis(prob=1.0, max_id=50)
    with pytest.raises(ValueError, match="found \\[0, 60\\]"):
        synth(_tissue())
    with pytest.raises(ValueError, match="fractional values"):
        synth(_tissue().float() + 0.5)
    with pytest.raises(ValueError, match="share the spatial shape"):
        synth(_tissue(), _image(shape=(12, 10, 9)))
    with pytest.raises(ValueError, match="tissue_key must be a non-empty string"):
        RandTissueSynthesisd("image", tissue_key="")


def test_synthesis_prob_is_a_validated_train_setting():
    assert validate_train_settings(synthesis_prob="0.5")["synthesis_prob"] == 0.5
    with pytest.raises(SettingsExit, match="synthesis_prob = 1.5 is out of range"):
        validate_train_settings(synthesis_prob=1.5)
    with pytest.raises(SettingsExit, match="needs network_channels inphase"):
        validate_train_settings(synthesis_prob=0.5, network_channels="water_fat")


@pytest.fixture(scope="module")
def complete_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("complete")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.phantom",
            "cohort",
            "--out_dir",
            str(out),
            "--n",
            "2",
            "--seed",
            "1",
            "--n_validation",
            "1",
            "--geometry",
            "tiny",
            "--variety",
            "false",
            "--anatomy",
            "complete",
            "--progress",
            "false",
        ],
        cwd=BUNDLE_ROOT,
        check=True,
        capture_output=True,
    )
    return out


def _parser(cohort: Path, synthesis_prob: float, fat_mix: bool = False) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(BUNDLE_ROOT / "configs" / "train.json"))
    parser.update(
        {
            "bundle_root": str(BUNDLE_ROOT),
            "dataset_dir": str(cohort),
            "synthesis_prob": synthesis_prob,
            "synthesis_fat_mix": fat_mix,
            "working_spacing": [8.0, 8.0, 12.0],
            "patch_size": [32, 32, 16],
        }
    )
    return parser


def test_train_json_fat_mix_reads_the_dixon_fat_fraction(complete_cohort):
    assert validate_train_settings(synthesis_fat_mix="true")["synthesis_fat_mix"] is True
    for mix in (False, True):
        parser = _parser(complete_cohort, 1.0, fat_mix=mix)
        step = parser.get_parsed_content("train#synthesis_transforms")[0]
        assert (step.water_key, step.fat_key) == (("water", "fat") if mix else (None, None))
        for name, value in PLAIN.items():  # no noise, blur or bias: each voxel is its mean
            setattr(step.synthesis, name, value)
        item = parser.get_parsed_content("train_datalist")[0]
        data = Compose(
            parser.get_parsed_content("train#deterministic_transforms")
            + parser.get_parsed_content("train#tissue_transforms")
        )(dict(item))
        image = step.set_random_state(11)(dict(data))["image"].as_tensor()
        means = step.synthesis.means
        psoas = data["tissue"].as_tensor() == 2
        f = (data["fat"] / (data["water"] + data["fat"])).as_tensor()
        fat_mean = float(means[list(DEFAULT_TISSUE_GROUPS["fat"])].mean())
        expected = (1 - f) * means[2] + f * fat_mean if mix else torch.full_like(f, float(means[2]))
        # the phantom's psoas holds some fat (asserted below): the mixed image follows it voxel by voxel
        assert torch.allclose(image[psoas], expected[psoas].float(), atol=1e-5)
        assert float(f[psoas].std()) > 0.005


def test_train_json_leaves_the_step_out_at_zero_and_replaces_the_image_when_on(complete_cohort):
    names = {
        p: [type(t).__name__ for t in _parser(complete_cohort, p).get_parsed_content("train#preprocessing").transforms]
        for p in (0.0, 0.5)
    }
    assert "RandTissueSynthesisd" not in names[0.0] and "RandTissueSynthesisd" in names[0.5]
    parser = _parser(complete_cohort, 1.0)
    item = parser.get_parsed_content("train_datalist")[0]
    load = parser.get_parsed_content("train#deterministic_transforms")
    dixon = Compose(load)(dict(item))
    synth = Compose(
        load
        + parser.get_parsed_content("train#tissue_transforms")
        + parser.get_parsed_content("train#synthesis_transforms")
    )(dict(item))
    assert "tissue" not in synth and synth["image"].shape == dixon["image"].shape
    assert synth["image"].dtype == torch.float32 and not torch.equal(synth["image"], dixon["image"])
    no_tissue = {k: v for k, v in item.items() if k != "tissue"}
    kept = Compose(
        load
        + parser.get_parsed_content("train#tissue_transforms")
        + parser.get_parsed_content("train#synthesis_transforms")
    )(no_tissue)
    assert torch.equal(kept["image"], dixon["image"])


def test_train_command_runs_with_synthesis(complete_cohort, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        "configs/train.json",
        "--dataset_dir",
        str(complete_cohort),
        "--synthesis_prob",
        "0.5",
        "--synthesis_fat_mix",  # the guide's command with the mix: the water and fat keys reach the step
        "true",
        "--epochs",
        "1",
        "--val_interval",
        "1",
        "--patch_size",
        "[32,32,16]",
        "--working_spacing",
        "[8.0,8.0,12.0]",
        "--num_workers",
        "0",
        "--loader_workers",
        "0",
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        str(tmp_path / "eval"),
    ]
    res = subprocess.run(cmd, cwd=BUNDLE_ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "models" / "model.pt").is_file()


def _fat_fraction(tissue: MetaTensor, by_id: dict[int, float]) -> torch.Tensor:
    f = torch.zeros(tissue.shape, dtype=torch.float32)
    for i, value in by_id.items():
        f[tissue.as_tensor() == i] = value
    return f


def test_fat_fraction_mix_known_answer_lean_part_of_fat_from_the_nearest_lean_tissue():
    # stripes along x: background, psoas (2), subcutaneous fat (31), rectus abdominis (40)
    tissue = _tissue(shape=(8, 4, 3), ids=(0, 2, 31, 40))
    x = torch.arange(8)[:, None, None].expand(8, 4, 3)[None]
    f = _fat_fraction(tissue, {2: 0.2, 40: 0.1})
    f[(tissue.as_tensor() == 31) & (x == 4)] = 0.6  # the fat voxel next to the psoas: 40 % psoas
    f[(tissue.as_tensor() == 31) & (x == 5)] = 0.7  # the one next to the rectus: 30 % rectus
    synth = RandTissueSynthesis(prob=1.0, group_spread=0.05, **PLAIN).set_random_state(3)
    out = synth(tissue, fat_fraction=f)[0].numpy()
    m = synth.means
    m_fat = m[list(DEFAULT_TISSUE_GROUPS["fat"])].mean()
    assert np.all(out[0:2] == 0)  # background stays dark whatever its fat fraction
    np.testing.assert_allclose(out[2:4], 0.8 * m[2] + 0.2 * m_fat, rtol=1e-5)
    np.testing.assert_allclose(out[4], 0.4 * m[2] + 0.6 * m_fat, rtol=1e-5)
    np.testing.assert_allclose(out[5], 0.3 * m[40] + 0.7 * m_fat, rtol=1e-5)
    np.testing.assert_allclose(out[6:8], 0.9 * m[40] + 0.1 * m_fat, rtol=1e-5)
    # without the map the same draw gives each id its own mean
    plain = synth(tissue, randomize=False)[0].numpy()
    np.testing.assert_allclose(plain[4:6], m[31], rtol=1e-6)


def test_dictionary_fat_mix_uses_the_water_and_fat_images():
    tissue = _tissue(shape=(8, 4, 3), ids=(0, 2, 31, 40))
    f = _fat_fraction(tissue, {2: 0.25, 31: 0.9, 40: 0.5})
    fat = MetaTensor(f * 200.0, affine=tissue.affine)
    water = MetaTensor((1.0 - f) * 200.0, affine=tissue.affine)
    water[tissue.as_tensor() == 0] = 0.0
    fat[tissue.as_tensor() == 0] = 0.0  # background: no signal, fat fraction 0, no division by zero
    data = {"image": _image(shape=(8, 4, 3)), "tissue": tissue, "water": water, "fat": fat}
    out = RandTissueSynthesisd("image", prob=1.0, water_key="water", fat_key="fat").set_random_state(5)(data)
    expected = RandTissueSynthesis(prob=1.0).set_random_state(5)(tissue, fat_fraction=f)
    assert torch.allclose(out["image"].as_tensor(), expected.as_tensor(), atol=1e-6)
    assert torch.isfinite(out["image"]).all()
    unmixed = RandTissueSynthesisd("image", prob=1.0).set_random_state(5)(dict(data))
    assert not torch.allclose(unmixed["image"].as_tensor(), out["image"].as_tensor())


def test_fat_mix_parameters_and_inputs_are_checked():
    with pytest.raises(ValueError, match="water_key and fat_key go together"):
        RandTissueSynthesisd("image", water_key="water")
    with pytest.raises(KeyError, match="needs the water and fat images"):
        RandTissueSynthesisd("image", prob=1.0, water_key="water", fat_key="fat")(
            {"image": _image(), "tissue": _tissue()}
        )
    with pytest.raises(ValueError, match="must have the same shape"):
        RandTissueSynthesis(prob=1.0)(_tissue(), fat_fraction=torch.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError, match="fat_group 'fat' is not one of the groups"):
        RandTissueSynthesis(prob=1.0, groups={"muscle": [1, 2]})(
            _tissue(ids=(0, 1, 2)), fat_fraction=torch.zeros(1, 12, 10, 8)
        )
