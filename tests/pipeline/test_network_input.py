"""Network input channels: in-phase (one channel) or water + fat (two), in training, inference and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.networks.nets import UNet
from scripts.io.dixon_scan import DixonScan
from scripts.io.errors import DixonInputError
from scripts.pipeline.load_dixon import LoadDixond
from scripts.pipeline.network_input import (
    StackWaterFat,
    StackWaterFatd,
    check_checkpoint_channels,
    network_input,
    num_network_channels,
)


def _scan(images: dict[str, np.ndarray]) -> DixonScan:
    shape = next(iter(images.values())).shape
    return DixonScan(
        subject="s1",
        images=images,
        affine=np.eye(4),
        shape=shape,
        files={r: f"/data/s1_{r}.nii.gz" for r in images},
        dixon_set="test",
        spacing_mm=(1.0, 1.0, 1.0),
        slice_axis=2,
        slice_tilt_deg=0.0,
        reference="water",
    )


@pytest.fixture()
def water_fat() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    water = rng.uniform(50, 100, (6, 5, 4)).astype(np.float32)
    fat = rng.uniform(0, 40, (6, 5, 4)).astype(np.float32)  # water-dominant everywhere
    return water, fat


def test_channel_counts_and_an_unknown_setting():
    assert num_network_channels("inphase") == 1 and num_network_channels("water_fat") == 2
    with pytest.raises(ValueError, match="network_channels must be one of"):
        num_network_channels("fat")
    with pytest.raises(ValueError, match="network_channels must be one of"):
        StackWaterFatd(channels="rgb")


def test_stack_puts_water_first_and_keeps_the_metadata(water_fat):
    water, fat = water_fat
    affine = torch.diag(torch.tensor([2.0, 2.0, 4.0, 1.0]))
    out = StackWaterFat()(MetaTensor(torch.from_numpy(water)[None], affine=affine), torch.from_numpy(fat)[None])
    assert isinstance(out, MetaTensor) and out.shape == (2, 6, 5, 4)
    np.testing.assert_array_equal(out[0].numpy(), water)
    np.testing.assert_array_equal(out[1].numpy(), fat)
    assert torch.equal(out.affine, affine.double())
    with pytest.raises(ValueError, match="one shape"):
        StackWaterFat()(water, fat[:, :, :3])


def test_dict_version_passes_through_or_stacks_and_names_the_entry(water_fat):
    water, fat = water_fat
    image = MetaTensor(torch.ones(1, 6, 5, 4), meta={"filename_or_obj": "/data/sub-01_inphase.nii.gz"})
    d = {"image": image, "water": torch.from_numpy(water)[None], "fat": torch.from_numpy(fat)[None]}
    assert StackWaterFatd(channels="inphase")(d)["image"] is image
    stacked = StackWaterFatd(channels="water_fat")(d)["image"]
    assert stacked.shape == (2, 6, 5, 4)
    np.testing.assert_array_equal(stacked[1].numpy(), fat)
    with pytest.raises(KeyError, match="sub-01_inphase.nii.gz.*has no fat"):
        StackWaterFatd(channels="water_fat")({"image": image, "water": d["water"]})


def test_scan_network_input_from_each_dixon_set(water_fat):
    water, fat = water_fat
    ip, op = water + fat, water - fat
    one = network_input(_scan({"water": water, "fat": fat}))
    np.testing.assert_allclose(one, water + fat)  # no in-phase image: water + fat
    np.testing.assert_array_equal(network_input(_scan({"water": water, "fat": fat, "inphase": ip})), ip)
    two = network_input(_scan({"water": water, "fat": fat, "inphase": ip}), "water_fat")
    assert two.shape == (2, 6, 5, 4) and two.dtype == np.float32
    np.testing.assert_array_equal(two[0], water)
    # in-phase + opposed-phase: W = (IP + OP) / 2, F = (IP - OP) / 2 (water-dominant, true here by construction)
    derived = network_input(_scan({"inphase": ip, "opposed": op}), "water_fat")
    np.testing.assert_allclose(derived[0], water, rtol=1e-5)
    np.testing.assert_allclose(derived[1], fat, rtol=1e-4, atol=1e-4)
    # vendor FF map (fraction) + in-phase: W = IP (1 - FF), F = IP FF
    ff = (fat / (water + fat)).astype(np.float32)
    from_map = network_input(_scan({"inphase": ip, "ff": ff}), "water_fat")
    np.testing.assert_allclose(from_map[1], ip * ff, rtol=1e-5)
    np.testing.assert_allclose(from_map[0] + from_map[1], ip, rtol=1e-5)
    with pytest.raises(DixonInputError, match="two-channel.*inphase"):
        network_input(_scan({"inphase": ip}), "water_fat")


def test_loader_refuses_a_bare_image_for_a_two_channel_model(tmp_path):
    with pytest.raises(DixonInputError, match="two-channel.*scan.nii.gz"):
        LoadDixond("image", channels="water_fat")({"image": str(tmp_path / "scan.nii.gz")})


def test_checkpoint_channels_are_checked_with_the_setting_that_fits(tmp_path):
    net = UNet(spatial_dims=3, in_channels=2, out_channels=9, channels=(4, 8), strides=(2,), num_res_units=1)
    path = tmp_path / "model.pt"
    torch.save(net.state_dict(), path)
    check_checkpoint_channels(path, "water_fat")  # agrees: nothing raised
    with pytest.raises(
        ValueError, match=r"model.pt: the model reads 2 input channel\(s\).*--network_channels water_fat"
    ):
        check_checkpoint_channels(path, "inphase")
    check_checkpoint_channels(tmp_path / "absent.pt", "inphase")  # left to the checkpoint loader
    check_checkpoint_channels(path, "water_fat", num_classes=9)
    with pytest.raises(ValueError, match=r"outputs 9 classes, but num_classes=15; run with --num_classes 9"):
        check_checkpoint_channels(path, "water_fat", num_classes=15)
