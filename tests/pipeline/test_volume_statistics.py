"""Batch-norm statistics of the whole scan in one pass (scripts/pipeline/volume_statistics.py, the "volume" source of
scripts/pipeline/batchnorm_adaptation.py): known answers where the statistic is the image's own mean and variance
over its voxels (padding left out), at full and at half resolution, the fallback to windows above the voxel budget,
mirror equivariance with a real UNet, and the clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.inferers import SimpleInferer, SlidingWindowInferer
from monai.networks.nets import UNet
from scripts.configuration.settings import INFERENCE_OPTIONS, SettingsExit, validate_inference_settings
from scripts.pipeline.batchnorm_adaptation import STATISTICS_SOURCES, AdaptiveBatchNormInferer, batch_norm_layers
from scripts.pipeline.flip_ensemble import LeftRightFlipInferer
from scripts.pipeline.volume_statistics import padded_shape, volume_statistics, window_regions


def _image(seed: int, shape: tuple[int, ...], loc: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(loc, scale, shape)).float()


def _norm_net() -> torch.nn.Module:
    """x -> (x - running mean) / sqrt(running var + eps) in eval mode; trained statistics mean 5, variance 4."""
    net = torch.nn.Sequential(torch.nn.BatchNorm3d(1, affine=False))
    net[0].running_mean.fill_(5.0)
    net[0].running_var.fill_(4.0)
    return net.eval()


def test_padded_shape_rounds_each_axis_up_to_the_multiple():
    assert padded_shape((219, 175, 95), 16) == (224, 176, 96)
    assert padded_shape((16, 1, 32), 16) == (16, 16, 32)


@pytest.mark.parametrize("padding_mode", ["constant", "replicate"])
def test_first_layer_statistics_are_the_image_own_mean_and_variance_padding_left_out(padding_mode):
    """11 x 6 x 5 voxels padded to 12 x 8 x 8 (multiple 4): 52 % of the padded grid is padding, zeros or copies of
    the last slices, far from the image's mean 30; none of it may count."""
    x = _image(0, (1, 1, 11, 6, 5), loc=30.0, scale=3.0) * torch.linspace(1.0, 2.0, 5)
    net = _norm_net()
    [(mean, var)] = volume_statistics(net, batch_norm_layers(net), x, multiple=4, padding_mode=padding_mode)
    v = x.numpy().ravel().astype(np.float64)
    np.testing.assert_allclose(float(mean), v.mean(), rtol=1e-6)
    np.testing.assert_allclose(float(var), v.var(ddof=1), rtol=1e-5)
    # what counting the padding would have given: visibly other numbers
    padded = torch.nn.functional.pad(x, (0, 3, 0, 2, 0, 1), mode=padding_mode).numpy().ravel().astype(np.float64)
    assert abs(padded.mean() - v.mean()) > 0.5 or abs(padded.var(ddof=1) - v.var(ddof=1)) > 0.5
    # the hooks are gone and the layer is in evaluation mode
    assert not net[0]._forward_pre_hooks and not net[0].training


def test_the_inferer_normalises_by_the_image_own_statistics():
    """Through AdaptiveBatchNormInferer (scan and mirror: the same voxels, so the same mean and variance)."""
    x = _image(1, (1, 1, 9, 7, 5), loc=-12.0, scale=2.0)
    net = _norm_net()
    with torch.no_grad():
        out = AdaptiveBatchNormInferer(SimpleInferer(), statistics="volume", pad_multiple=8)(x, net)
    v = x.numpy().ravel().astype(np.float64)
    want = (x.numpy() - v.mean()) / np.sqrt(v.var(ddof=1) + 1e-5)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-4)
    assert float(net[0].running_mean) == 5.0 and float(net[0].running_var) == 4.0


def test_a_layer_at_half_resolution_counts_the_voxels_centred_on_the_scan():
    """A stride-2 convolution (kernel 3, padding 1) then batch norm: along an axis of 11 scan voxels padded to 12,
    the coarse grid has 6 voxels, centred on scan voxels 0, 2, .., 10: all 6 count (ceil(11 / 2)); along 6 padded
    to 8, 3 of 4 count; along 5 padded to 8, 3 of 4. Computed directly on the padded image's features."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(1, 3, 3, stride=2, padding=1)
    net = torch.nn.Sequential(conv, torch.nn.BatchNorm3d(3)).eval()
    x = _image(2, (1, 1, 11, 6, 5), loc=4.0, scale=2.0)
    [(mean, var)] = volume_statistics(net, batch_norm_layers(net), x, multiple=4)
    with torch.no_grad():
        features = conv(torch.nn.functional.pad(x, (0, 3, 0, 2, 0, 1), mode="replicate"))
    assert tuple(features.shape[2:]) == (6, 4, 4)
    own = features[:, :, :6, :3, :3].double()
    torch.testing.assert_close(mean.double(), own.mean(dim=(0, 2, 3, 4)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(var.double(), own.var(dim=(0, 2, 3, 4), unbiased=True), rtol=1e-4, atol=1e-6)
    with_padding = features.double().mean(dim=(0, 2, 3, 4))
    assert float((with_padding - mean.double()).abs().max()) > 1e-3


def test_window_regions_are_the_sliding_window_patches():
    """The reference geometry's working grid: 2 windows per axis, the last moved to the end (8 in all)."""
    boxes = window_regions((219, 175, 95), (128, 128, 64), 0.25)
    assert len(boxes) == 8 and boxes[0] == ((0, 128), (0, 128), (0, 64))
    assert boxes[-1] == ((91, 219), (47, 175), (31, 95))
    with pytest.raises(ValueError, match="smaller than the window"):
        window_regions((100, 175, 95), (128, 128, 64), 0.25)


def test_the_volume_pass_gives_the_sliding_window_statistics_of_a_first_layer():
    """A network whose first layer is batch norm sees the image itself, so the volume pass must give the windows'
    statistics: 3 overlapping windows along x, and y shorter than the window (both sides replicate-padded by the
    sliding window, and those voxels counted, as the windows count them)."""
    x = _image(6, (1, 1, 20, 5, 8), loc=3.0) * torch.linspace(0.5, 4.0, 20)[None, None, :, None, None]
    sw = SlidingWindowInferer(roi_size=(8, 8, 8), sw_batch_size=1, overlap=0.25, padding_mode="replicate")
    net = _norm_net()
    with torch.no_grad():
        volume = AdaptiveBatchNormInferer(SimpleInferer(), statistics_inferer=sw, pad_multiple=8)
        windows = AdaptiveBatchNormInferer(SimpleInferer(), statistics_inferer=sw, statistics="windows")
        assert volume.source_for(x, batch_norm_layers(net)) == "volume"
        torch.testing.assert_close(volume(x, net), windows(x, net), rtol=1e-5, atol=1e-5)
    # the known answer: per window (x from 0, 6, 12; y padded 1 before and 2 after), mean and unbiased variance
    padded = torch.nn.functional.pad(x, (0, 0, 1, 2, 0, 0), mode="replicate").double()
    parts = [padded[..., s : s + 8, :, :] for s in (0, 6, 12)]
    mean = float(torch.stack([p.mean() for p in parts]).mean())
    var = float(torch.stack([p.var() for p in parts]).mean())
    want = (x.double() - mean) / math.sqrt(var + 1e-5)
    torch.testing.assert_close(volume(x, net).double(), want, rtol=1e-4, atol=1e-4)


def _unet() -> torch.nn.Module:
    """The shipped architecture at a toy size (two stride-2 levels: multiple 4), statistics far from the data."""
    torch.manual_seed(1)
    net = UNet(3, 1, 9, channels=(4, 8, 8), strides=(2, 2), num_res_units=2, norm="batch")
    for m in batch_norm_layers(net):
        m.running_mean.fill_(2.0)
    return net.eval()


def test_a_mirrored_scan_gets_exactly_the_mirrored_prediction_with_a_unet():
    from scripts.labels import LEFT_RIGHT_SWAP

    x = _image(3, (1, 1, 13, 10, 7), loc=3.0) * torch.linspace(0.3, 2.0, 13)[None, None, :, None, None]
    sw = SlidingWindowInferer(roi_size=(8, 8, 8), sw_batch_size=1, overlap=0.25, mode="gaussian")
    inferer = AdaptiveBatchNormInferer(LeftRightFlipInferer(sw), statistics_inferer=sw, pad_multiple=4)
    net = _unet()
    assert inferer.source_for(x, batch_norm_layers(net)) == "volume"
    order = [LEFT_RIGHT_SWAP.get(c, c) for c in range(9)]
    with torch.no_grad():
        out = inferer(x, net)
        mirrored = inferer(torch.flip(x, [2]), net)
    assert torch.equal(torch.flip(mirrored, [2])[:, order], out)


def test_above_the_voxel_budget_the_windows_give_the_statistics():
    x = _image(4, (1, 1, 13, 10, 7), loc=3.0)
    sw = SlidingWindowInferer(roi_size=(8, 8, 8), sw_batch_size=1, overlap=0.25)
    net = _unet()
    voxels = math.prod(padded_shape((13, 10, 7), 4))  # 16 * 12 * 8
    at_budget = AdaptiveBatchNormInferer(sw, pad_multiple=4, max_volume_voxels=voxels)
    over_budget = AdaptiveBatchNormInferer(sw, pad_multiple=4, max_volume_voxels=voxels - 1)
    windows = AdaptiveBatchNormInferer(sw, statistics="windows")
    layers = batch_norm_layers(net)
    assert at_budget.source_for(x, layers) == "volume" and over_budget.source_for(x, layers) == "windows"
    with torch.no_grad():
        torch.testing.assert_close(over_budget(x, net), windows(x, net), rtol=0, atol=0)
        volume = at_budget(x, net)
        assert float((volume - windows(x, net)).abs().max()) > 1e-4  # the two sources are different numbers


def test_bad_settings_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="adapt_statistics must be one of volume, windows, not 'patches'"):
        AdaptiveBatchNormInferer(SimpleInferer(), statistics="patches")
    with pytest.raises(ValueError, match="pad_multiple must be a positive whole number"):
        AdaptiveBatchNormInferer(SimpleInferer(), pad_multiple=0)
    with pytest.raises(ValueError, match="max_volume_voxels must be a positive whole number"):
        AdaptiveBatchNormInferer(SimpleInferer(), max_volume_voxels=2.5)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        AdaptiveBatchNormInferer(SimpleInferer(), padding_mode="mirror")
    with pytest.raises(SettingsExit, match="adapt_statistics"):
        validate_inference_settings(adapt_statistics="patches")
    assert INFERENCE_OPTIONS["adapt_statistics"].choices == STATISTICS_SOURCES
    # a padding multiple that is not the network's total stride: refused before the pass (a MONAI UNet says its
    # strides) or, for another network, when a layer's grid does not divide the padded grid
    with pytest.raises(ValueError, match="pad_multiple 2 is not a multiple of the network's total stride 4"):
        AdaptiveBatchNormInferer(SimpleInferer(), pad_multiple=2)(_image(5, (1, 1, 6, 6, 6)), _unet())
    stride_3 = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, stride=3, padding=1), torch.nn.BatchNorm3d(2)).eval()
    with pytest.raises(ValueError, match="sees 3 voxels along an axis padded to 8: not a whole factor.*'windows'"):
        volume_statistics(stride_3, batch_norm_layers(stride_3), _image(5, (1, 1, 7, 7, 7)), multiple=4)
    with pytest.raises(ValueError, match="one image of shape"):
        volume_statistics(_unet(), batch_norm_layers(_unet()), _image(5, (2, 1, 8, 8, 8)), multiple=4)


def test_under_bfloat16_autocast_the_statistics_are_float32_sums_of_the_bfloat16_features():
    """cpu_precision bfloat16: the convolution hands the batch-norm layer bfloat16 features; their mean and
    variance must be those of the features summed in float32 (bfloat16 sums would be off by about 1e-3)."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.BatchNorm3d(4)).eval()
    x = _image(4, (1, 1, 16, 12, 8), loc=3.0, scale=2.0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        features = net[0](x)
        [(mean, var)] = volume_statistics(net, batch_norm_layers(net), x, multiple=4)
    assert features.dtype == torch.bfloat16
    assert mean.dtype == var.dtype == torch.float32
    f = features.double().numpy()
    np.testing.assert_allclose(mean.numpy(), f.mean(axis=(0, 2, 3, 4)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var.numpy(), f.var(axis=(0, 2, 3, 4), ddof=1), rtol=1e-5)
