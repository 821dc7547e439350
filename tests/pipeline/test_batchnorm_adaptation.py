"""Test-time batch-norm adaptation (scripts/pipeline/batchnorm_adaptation.py): known answers with a one-layer network
whose output is its batch-norm's normalisation, TorchScript, restoration of the network, and the config wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.inferers import SimpleInferer, SlidingWindowInferer
from scripts.pipeline.batchnorm_adaptation import AdaptiveBatchNormInferer, batch_norm_layers
from scripts.pipeline.fitted_window import FittedSlidingWindowInferer
from scripts.pipeline.flip_ensemble import LeftRightFlipInferer

BUNDLE_ROOT = Path(__file__).resolve().parents[2]


def _norm_net(momentum: float | None = 0.1) -> torch.nn.Module:
    """x -> (x - running mean) / sqrt(running var + eps) in eval mode; trained statistics mean 5, variance 4."""
    net = torch.nn.Sequential(torch.nn.BatchNorm3d(1, affine=False, momentum=momentum))
    net[0].running_mean.fill_(5.0)
    net[0].running_var.fill_(4.0)
    net[0].num_batches_tracked.fill_(7)
    return net.eval()


def _image(seed: int, shape=(1, 1, 8, 6, 4), loc: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(loc, scale, shape)).float()


def _expected(x: np.ndarray, mean: float, var: float, eps: float = 1e-5) -> np.ndarray:
    return (x - mean) / np.sqrt(var + eps)


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_one_window_normalises_by_the_image_own_mean_and_unbiased_variance(momentum):
    x = _image(0, loc=30.0, scale=3.0)
    net = _norm_net(momentum)
    with torch.no_grad():
        out = AdaptiveBatchNormInferer(SimpleInferer())(x, net)
    v = x.numpy().ravel().astype(np.float64)
    want = _expected(x.numpy(), v.mean(), v.var(ddof=1))
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-4)
    # without adaptation the trained statistics (5, 4) would have been used: a very different output
    assert float(out.mean().abs()) < 1e-3 and float(SimpleInferer()(x, net).mean()) > 10


@pytest.mark.parametrize("statistics", ["windows", "volume"])
def test_several_windows_average_their_statistics(statistics):
    """Two windows (the halves along x, no overlap): the means and variances are averaged window by window; the
    volume pass takes them from the same boxes of its one pass (the first layer sees the image itself)."""
    x = torch.cat([_image(1, (1, 1, 4, 6, 4), 0.0, 1.0), _image(2, (1, 1, 4, 6, 4), 10.0, 2.0)], dim=2)
    net = _norm_net()
    sw = SlidingWindowInferer(roi_size=(4, 6, 4), sw_batch_size=1, overlap=0.0)
    with torch.no_grad():
        out = AdaptiveBatchNormInferer(SimpleInferer(), statistics_inferer=sw, statistics=statistics)(x, net)
    halves = [x[:, :, :4].numpy().ravel().astype(np.float64), x[:, :, 4:].numpy().ravel().astype(np.float64)]
    mean = np.mean([h.mean() for h in halves])
    var = np.mean([h.var(ddof=1) for h in halves])
    np.testing.assert_allclose(out.numpy(), _expected(x.numpy(), mean, var), rtol=1e-4, atol=1e-4)


def test_each_image_of_a_batch_is_adapted_on_its_own():
    a, b = _image(3, loc=1.0), _image(4, loc=50.0, scale=5.0)
    inferer = AdaptiveBatchNormInferer(SimpleInferer())
    net = _norm_net()
    with torch.no_grad():
        both = inferer(torch.cat([a, b]), net)
        torch.testing.assert_close(both[0:1], inferer(a, net))
        torch.testing.assert_close(both[1:2], inferer(b, net))


def test_the_network_is_left_as_it_was():
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 2, 3, padding=1),
        torch.nn.BatchNorm3d(2),
        torch.nn.ReLU(),
        torch.nn.Conv3d(2, 3, 1),
        torch.nn.BatchNorm3d(3, momentum=None),
    )
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = _image(5, loc=7.0)
    with torch.no_grad():
        plain = net(x)
        AdaptiveBatchNormInferer(SimpleInferer())(x, net)
    after = net.state_dict()
    for k, v in before.items():
        torch.testing.assert_close(after[k], v, msg=f"{k} changed")
    assert not any(m.training for m in net.modules())
    assert net[1].momentum == 0.1 and net[4].momentum is None
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain)


def test_the_network_is_restored_when_inference_fails():
    net = _norm_net()

    def failing(inputs, network):
        network(inputs)
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        AdaptiveBatchNormInferer(failing)(_image(6, loc=3.0), net)
    assert float(net[0].running_mean) == 5.0 and float(net[0].running_var) == 4.0
    assert int(net[0].num_batches_tracked) == 7 and not net[0].training


def test_torchscript_network_gives_the_eager_answer():
    """models/model.ts (what MONAI Deploy runs) holds momentum as a constant; the adaptation must work there too."""
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 2, 3, padding=1),
        torch.nn.BatchNorm3d(2),
        torch.nn.ReLU(),
        torch.nn.Conv3d(2, 2, 1),
        torch.nn.BatchNorm3d(2),
    ).eval()
    scripted = torch.jit.script(net).eval()
    assert len(batch_norm_layers(scripted)) == 2
    x = _image(7, (1, 1, 12, 10, 8), loc=4.0, scale=2.0)
    sw = SlidingWindowInferer(roi_size=(8, 8, 8), sw_batch_size=2, overlap=0.25)
    inferer = AdaptiveBatchNormInferer(sw, statistics="windows")
    with torch.no_grad():
        torch.testing.assert_close(inferer(x, scripted), inferer(x, net), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(inferer(x, net), sw(x, net), atol=1e-2)
        # "volume" needs hooks, which a TorchScript module does not take: it falls back to the windows
        volume = AdaptiveBatchNormInferer(sw, statistics="volume", pad_multiple=4)
        assert volume.source_for(x, batch_norm_layers(scripted)) == "windows"
        assert volume.source_for(x, batch_norm_layers(net)) == "volume"
        torch.testing.assert_close(volume(x, scripted), inferer(x, net), rtol=1e-5, atol=1e-5)


def test_disabled_returns_the_inner_inferer_output():
    x = _image(8, loc=30.0)
    net = _norm_net()
    for enabled in (False, "false", "0"):
        with torch.no_grad():
            torch.testing.assert_close(AdaptiveBatchNormInferer(SimpleInferer(), enabled=enabled)(x, net), net(x))
    assert AdaptiveBatchNormInferer(SimpleInferer(), enabled="True").enabled


def test_bad_arguments_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="enabled must be true or false"):
        AdaptiveBatchNormInferer(SimpleInferer(), enabled="yes please")
    with pytest.raises(TypeError, match="statistics_inferer must be callable"):
        AdaptiveBatchNormInferer(SimpleInferer(), statistics_inferer=3)
    no_bn = torch.nn.Sequential(torch.nn.Conv3d(1, 1, 1)).eval()
    with pytest.raises(ValueError, match="no batch-norm layer"):
        AdaptiveBatchNormInferer(SimpleInferer())(_image(9), no_bn)
    with pytest.raises(TypeError, match="needs a torch module"):
        AdaptiveBatchNormInferer(SimpleInferer())(_image(9), lambda x: x)


def test_inference_config_adapts_by_default_on_the_scan_and_its_mirror():
    parser = ConfigParser()
    parser.read_config(BUNDLE_ROOT / "configs" / "inference.json")
    assert parser["adapt_batch_norm"] is True
    inferer = parser.get_parsed_content("adaptive_inferer")
    assert isinstance(inferer, AdaptiveBatchNormInferer) and inferer.enabled
    # the outermost inferer only sets the CPU arithmetic (scripts/pipeline/cpu_precision.py)
    assert parser.get_parsed_content("inferer").inferer is inferer
    assert isinstance(inferer.inferer, LeftRightFlipInferer)
    # the statistics passes use the flip ensemble's own sliding window, on the scan and on its left-right mirror
    # (array axis 0 after Orientationd RAS), so that a mirrored scan gets the same statistics
    assert inferer.statistics_inferer is inferer.inferer.inferer
    assert isinstance(inferer.statistics_inferer, FittedSlidingWindowInferer)
    assert inferer.mirror_axis == inferer.inferer.spatial_axis == 0
    # the statistics: one pass of the whole scan per view, padded as the sliding window pads, to the UNet's stride
    assert parser["adapt_statistics"] == "volume" and inferer.statistics == "volume"
    assert inferer.padding_mode == inferer.statistics_inferer.padding_mode == "replicate"
    network_def = parser.get_parsed_content("network_def")
    assert inferer.pad_multiple == int(np.prod(network_def.strides)) == 16
    assert parser["run_record"]["segmentation_settings"]["adapt_statistics"] == "$@settings['adapt_statistics']"
    parser["adapt_statistics"] = "Windows"
    assert parser.get_parsed_content("adaptive_inferer", lazy=False).statistics == "windows"
    # the run record gets the typed value of the settings layer, not the raw override
    assert parser["run_record"]["segmentation_settings"]["adapt_batch_norm"] == "$@settings['adapt_batch_norm']"
    parser["adapt_batch_norm"] = "false"  # as a command-line override arrives
    assert not parser.get_parsed_content("adaptive_inferer", lazy=False).enabled
    # the shipped network has batch-norm layers to adapt
    assert len(batch_norm_layers(parser.get_parsed_content("network_def"))) > 0


def test_evaluate_overlay_adapts_and_training_validation_does_not():
    """evaluate.json scores a model as inference.json segments (adapted); train.json picks its best epoch on the
    validation subjects with the training statistics."""
    train = ConfigParser()
    train.read_config(BUNDLE_ROOT / "configs" / "train.json")
    # the plain (fitted) sliding window, no adaptation
    assert isinstance(train.get_parsed_content("validate#inferer"), FittedSlidingWindowInferer)
    evaluate = ConfigParser()
    evaluate.read_config([str(BUNDLE_ROOT / "configs" / "train.json"), str(BUNDLE_ROOT / "configs" / "evaluate.json")])
    assert evaluate["validate"]["evaluator"]["inferer"] == "@validate#inferer"
    inferer = evaluate.get_parsed_content("validate#inferer")
    assert isinstance(inferer, AdaptiveBatchNormInferer) and inferer.enabled
    assert isinstance(inferer.inferer, FittedSlidingWindowInferer) and inferer.statistics_inferer is inferer.inferer


def _small_segmenter() -> torch.nn.Module:
    """A conv - batch norm - conv network with the bundle's 9 output channels; training statistics far off."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.BatchNorm3d(4), torch.nn.ReLU(), torch.nn.Conv3d(4, 9, 1)
    )
    net[1].running_mean.fill_(3.0)
    return net.eval()


@pytest.mark.parametrize("statistics", ["windows", "volume"])
@pytest.mark.parametrize("mirror_axis, exact", [(0, True), (None, False)])
def test_a_mirrored_scan_gets_the_mirrored_prediction_only_with_mirror_statistics(mirror_axis, exact, statistics):
    """Windows of 4 on 11 voxels fall asymmetrically (0, 3, 6, 7), and a convolution's kernel is not symmetric,
    so the scan alone gives other statistics than its mirror; the mean over both makes scan and mirror exact
    mirror images (labels exchanged)."""
    from scripts.labels import LEFT_RIGHT_SWAP

    x = _image(11, (1, 1, 11, 6, 4), loc=2.0) * torch.linspace(0.2, 3.0, 11)[None, None, :, None, None]
    sw = SlidingWindowInferer(roi_size=(4, 6, 4), sw_batch_size=1, overlap=0.25, mode="gaussian")
    inferer = AdaptiveBatchNormInferer(
        LeftRightFlipInferer(sw), statistics_inferer=sw, mirror_axis=mirror_axis, statistics=statistics, pad_multiple=4
    )
    net = _small_segmenter()
    order = [LEFT_RIGHT_SWAP.get(c, c) for c in range(9)]
    with torch.no_grad():
        out = inferer(x, net)
        out_mirrored = inferer(torch.flip(x, [2]), net)
    back = torch.flip(out_mirrored, [2])[:, order]
    assert torch.equal(back, out) is exact
    if not exact:
        assert float((back - out).abs().max()) > 1e-4  # the asymmetry this option exists to remove
