"""The sliding window fitted to short scans (scripts/pipeline/fitted_window.py): known windows, what the network is
shown, equality with MONAI's fixed window where nothing is fitted, the batch-norm statistics and the config wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.inferers import SlidingWindowInferer
from scripts.configuration.settings import SettingsExit
from scripts.pipeline.batchnorm_adaptation import AdaptiveBatchNormInferer
from scripts.pipeline.fitted_window import FittedSlidingWindowInferer, fitted_roi

BUNDLE_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "shape, want",
    [
        ((120, 98, 22), (128, 128, 32)),  # the MuscleMap sample on the 2x2x4 mm grid: 88 mm
        ((88, 68, 15), (128, 128, 16)),  # the TotalSegmentator sample: 60 mm
        ((200, 160, 16), (128, 128, 16)),
        ((200, 160, 17), (128, 128, 32)),
        ((200, 160, 1), (128, 128, 16)),
        ((200, 160, 59), (128, 128, 64)),  # the CHAOS scan: 234 mm
        ((200, 160, 64), (128, 128, 64)),
        ((200, 160, 145), (128, 128, 64)),
    ],
)
def test_the_window_is_cut_to_the_scan_cranio_caudally_only(shape, want):
    assert fitted_roi(shape, (128, 128, 64)) == want


def test_other_axes_and_strides_fit_the_same_way():
    assert fitted_roi((20, 50, 22), (64, 64, 64), fit_axes=(0, 2), multiple=8) == (24, 64, 24)
    assert fitted_roi((20, 50, 22), (64, 64, 64), fit_axes=()) == (64, 64, 64)
    # a configured window that is no multiple of the stride is the configuration's own; only a cut one is rounded
    assert fitted_roi((20, 50, 60), (64, 64, 40)) == (64, 64, 40)
    assert fitted_roi((20, 50, 22), (64, 64, 40)) == (64, 64, 32)


@pytest.mark.parametrize(
    "args, message",
    [
        (((10, 10), (16, 16, 16)), "differ in length"),
        (((10, 10, 10), (16, 0, 16)), "must be positive"),
        (((10, 10, 10), (16, 16, 16), (2,), 0), "must be positive"),
        (((10, 10, 10), (16, 16, 16), (3,)), "fit_axes"),
        (((10, 0, 10), (16, 16, 16)), "empty axis"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(args, message):
    with pytest.raises(ValueError, match=message):
        fitted_roi(*args)
    if len(args) == 2 and len(args[1]) == 3 and 0 in args[1]:
        with pytest.raises(ValueError, match=message):
            FittedSlidingWindowInferer(args[1])


class _Recorder(torch.nn.Module):
    """Returns each window's mean over the window as its output, so padded slices change it; records the
    window shapes it is shown."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape[2:]))
        return x * 0 + x.mean(dim=(2, 3, 4), keepdim=True)


def _ramp(shape) -> torch.Tensor:
    """An image that grows faster and faster along z, so repeating its end slices changes a window's mean."""
    z = torch.arange(shape[2], dtype=torch.float32)
    return (z**2).expand(*shape)[None, None].clone()


def test_a_short_scan_is_shown_in_the_fitted_window_and_gets_that_window_answer():
    x = _ramp((40, 36, 22))
    net = _Recorder()
    fitted = FittedSlidingWindowInferer((32, 32, 64), overlap=0.25, padding_mode="replicate")
    out = fitted(x, net)
    assert set(net.shapes) == {(32, 32, 32)}
    want = SlidingWindowInferer((32, 32, 32), overlap=0.25, mode="gaussian", padding_mode="replicate")(x, _Recorder())
    torch.testing.assert_close(out, want)
    # the fixed window repeats the last slice 21 times and the first 21 times: another answer
    fixed = FittedSlidingWindowInferer((32, 32, 64), fit=False)
    net_fixed = _Recorder()
    assert not torch.allclose(fixed(x, net_fixed), out)
    assert set(net_fixed.shapes) == {(32, 32, 64)}


def test_a_scan_as_long_as_the_window_gets_monai_answer_to_the_bit():
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 1, 40, 36, 70))).float()
    conv = torch.nn.Conv3d(1, 2, 3, padding=1).eval()
    fitted = FittedSlidingWindowInferer((32, 32, 64), overlap=0.25)
    monai_fixed = SlidingWindowInferer((32, 32, 64), overlap=0.25, mode="gaussian", padding_mode="replicate")
    with torch.no_grad():
        assert torch.equal(fitted(x, conv), monai_fixed(x, conv))
    assert fitted.roi_for(x.shape[2:]) == (32, 32, 64)


def test_batch_norm_statistics_come_from_the_fitted_windows():
    """The volume pass pads and cuts its statistics boxes with the window the scan gets, as the windows pass does."""
    # batch norm first: its input is the image itself, so the two passes must agree (batchnorm_adaptation.py)
    net = torch.nn.Sequential(torch.nn.BatchNorm3d(1), torch.nn.Conv3d(1, 2, 3, padding=1)).eval()
    x = _ramp((24, 20, 10)) + torch.from_numpy(np.random.default_rng(1).normal(size=(1, 1, 24, 20, 10))).float()
    fitted = FittedSlidingWindowInferer((16, 16, 64), overlap=0.25)
    with torch.no_grad():
        windows = AdaptiveBatchNormInferer(fitted, statistics="windows")(x, net)
        volume = AdaptiveBatchNormInferer(fitted, statistics="volume", pad_multiple=16)(x, net)
        torch.testing.assert_close(volume, windows, rtol=1e-4, atol=1e-4)
        fixed = FittedSlidingWindowInferer((16, 16, 64), overlap=0.25, fit=False)
        assert not torch.allclose(AdaptiveBatchNormInferer(fixed, statistics="windows")(x, net), windows, atol=1e-3)


def test_inference_config_fits_by_default_and_the_setting_turns_it_off():
    parser = ConfigParser()
    parser.read_config(str(BUNDLE_ROOT / "configs" / "inference.json"))
    parser["bundle_root"] = str(BUNDLE_ROOT)
    sw = parser.get_parsed_content("sliding_window_inferer", lazy=False)
    assert isinstance(sw, FittedSlidingWindowInferer) and sw.fit
    assert sw.roi_for((200, 160, 22)) == (128, 128, 32)
    # the muscle network's statistics and the spine network slide the same window
    stats = parser.get_parsed_content("adaptive_inferer", lazy=False).statistics_inferer
    assert isinstance(stats, FittedSlidingWindowInferer) and stats.fit
    parser["sw_fit_to_scan"] = "false"
    assert not parser.get_parsed_content("sliding_window_inferer", lazy=False).fit
    parser["sw_fit_to_scan"] = "sometimes"
    with pytest.raises(SettingsExit, match="sw_fit_to_scan must be one of true/false"):
        parser.get_parsed_content("sliding_window_inferer", lazy=False)


def test_training_validation_and_evaluation_slide_the_same_fitted_window():
    """Checkpoint choice and evaluate.json on a user's short annotated stacks see what inference shows them."""
    parser = ConfigParser()
    parser.read_config([str(BUNDLE_ROOT / "configs" / "train.json"), str(BUNDLE_ROOT / "configs" / "evaluate.json")])
    parser["bundle_root"] = str(BUNDLE_ROOT)
    sw = parser.get_parsed_content("validate#sliding_window_inferer", lazy=False)
    assert isinstance(sw, FittedSlidingWindowInferer) and sw.fit
    assert sw.roi_size == (96, 96, 48) and sw.roi_for((200, 160, 22)) == (96, 96, 32)
    # the phantom cohorts' validation scans (240 mm and longer, 60 working slices) keep the 48-slice window
    assert sw.roi_for((200, 160, 60)) == (96, 96, 48)
    evaluator_inferer = parser.get_parsed_content("validate#inferer", lazy=False)
    assert isinstance(evaluator_inferer, AdaptiveBatchNormInferer)
    assert isinstance(evaluator_inferer.inferer, FittedSlidingWindowInferer)
    parser["sw_fit_to_scan"] = "no"
    assert not parser.get_parsed_content("validate#sliding_window_inferer", lazy=False).fit


def test_training_validation_window_keeps_monai_blend_for_long_scans():
    """train.json's window blended with MONAI's default (constant weights): it still does, so a long scan's
    validation Dice is what it was."""
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(1, 1, 40, 36, 70))).float()
    conv = torch.nn.Conv3d(1, 2, 3, padding=1).eval()
    fitted = FittedSlidingWindowInferer((32, 32, 48), sw_batch_size=2, overlap=0.25, mode="constant")
    with torch.no_grad():
        want = SlidingWindowInferer((32, 32, 48), sw_batch_size=2, overlap=0.25, padding_mode="replicate")(x, conv)
        assert torch.equal(fitted(x, conv), want)
