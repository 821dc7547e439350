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


def _parser(cohort: Path, synthesis_prob: float) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(BUNDLE_ROOT / "configs" / "train.json"))
    parser.update(
        {
            "bundle_root": str(BUNDLE_ROOT),
            "dataset_dir": str(cohort),
            "synthesis_prob": synthesis_prob,
            "working_spacing": [8.0, 8.0, 12.0],
            "patch_size": [32, 32, 16],
        }
    )
    return parser


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
