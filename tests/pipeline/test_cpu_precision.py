"""scripts.pipeline.cpu_precision: the network's CPU arithmetic chosen, validated and reported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from monai.inferers import SimpleInferer
from monai.networks.nets import UNet
from scripts.configuration.settings import INFERENCE_OPTIONS
from scripts.pipeline.cpu_precision import (
    CPU_PRECISIONS,
    CpuPrecisionInferer,
    native_bfloat16,
    resolve_cpu_precision,
)

BUNDLE_ROOT = Path(__file__).resolve().parents[2]


def _unet() -> torch.nn.Module:
    torch.manual_seed(0)
    return UNet(3, 1, 9, (8, 16, 32), (2, 2), num_res_units=1, norm="batch").eval()


def test_settings_accept_exactly_the_precisions():
    assert INFERENCE_OPTIONS["cpu_precision"].choices == CPU_PRECISIONS


def test_auto_follows_the_processor_and_explicit_values_stay():
    assert resolve_cpu_precision("auto") == ("bfloat16" if native_bfloat16() else "float32")
    assert resolve_cpu_precision("float32") == "float32"
    assert resolve_cpu_precision("bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match="cpu_precision must be one of auto, float32, bfloat16, not 'half'"):
        resolve_cpu_precision("half")
    with pytest.raises(TypeError, match="inferer must be callable"):
        CpuPrecisionInferer(3, "float32")


def test_float32_passes_through_unchanged():
    net, x = _unet(), torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        expected = net(x)
        out = CpuPrecisionInferer(SimpleInferer(), "float32")(x, net)
    assert torch.equal(out, expected)


def test_bfloat16_runs_the_network_in_bfloat16_and_returns_float32():
    net, x = _unet(), torch.rand(1, 1, 16, 16, 16)
    seen = []
    net.model[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.no_grad():
        expected = net(x)
        out = CpuPrecisionInferer(SimpleInferer(), "bfloat16")(x, net)
    assert seen == [torch.float32, torch.bfloat16]  # the convolutions ran in bfloat16 the second time
    assert out.dtype == torch.float32 and out.shape == expected.shape
    # bfloat16 keeps 8 mantissa bits: logits close, not equal
    assert not torch.equal(out, expected)
    torch.testing.assert_close(out, expected, atol=0.1, rtol=0.05)


def test_inference_config_wraps_the_adaptation_and_records_the_precision_that_ran():
    parser = ConfigParser()
    parser.read_config(BUNDLE_ROOT / "configs" / "inference.json")
    assert parser["cpu_precision"] == "auto"
    inferer = parser.get_parsed_content("inferer")
    assert isinstance(inferer, CpuPrecisionInferer)
    assert inferer.inferer is parser.get_parsed_content("adaptive_inferer")
    # the run record holds what ran ("auto" resolved), so a resumed run on another processor is not mixed in
    assert parser["run_record"]["segmentation_settings"]["cpu_precision"] == "$@inferer.precision"
    assert inferer.precision == resolve_cpu_precision("auto")
    parser["cpu_precision"] = "float32"
    assert parser.get_parsed_content("inferer", lazy=False).precision == "float32"
