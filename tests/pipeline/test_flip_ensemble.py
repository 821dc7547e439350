"""Left-right flip ensembling (scripts/pipeline/flip_ensemble.py): known answers with hand-made 'networks'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from monai.inferers import SimpleInferer, SlidingWindowInferer
from scripts.labels import LEFT_RIGHT_SWAP, NUM_CLASSES, NUM_CLASSES_WITH_CONTEXT
from scripts.pipeline.flip_ensemble import LeftRightFlipInferer


def _sided(x: torch.Tensor) -> torch.Tensor:
    """A mirror-consistent 'network': the patient's left half (low x index in RAS) -> class 1, right -> class 2."""
    out = torch.zeros(x.shape[0], NUM_CLASSES, *x.shape[2:])
    half = x.shape[2] // 2
    out[:, 1, :half] = x[:, 0, :half]
    out[:, 2, half:] = x[:, 0, half:]
    return out


def _blind(x: torch.Tensor) -> torch.Tensor:
    """A network that calls everything class 1 whatever the side."""
    out = torch.zeros(x.shape[0], NUM_CLASSES, *x.shape[2:])
    out[:, 1] = x[:, 0]
    return out


def test_mirror_consistent_network_is_unchanged() -> None:
    x = torch.rand(1, 1, 8, 6, 4) + 0.5
    out = LeftRightFlipInferer(SimpleInferer())(x, _sided)
    assert torch.allclose(torch.as_tensor(out), _sided(x), atol=1e-6)


def test_side_blind_network_is_split_between_the_pair() -> None:
    x = torch.rand(2, 1, 8, 6, 4)
    out = torch.as_tensor(LeftRightFlipInferer(SimpleInferer())(x, _blind))
    assert torch.allclose(out[:, 1], x[:, 0] / 2) and torch.allclose(out[:, 2], x[:, 0] / 2)
    assert torch.count_nonzero(out[:, 3:]) == 0


def test_sliding_window_inner_inferer_gives_the_same_for_a_voxelwise_network() -> None:
    x = torch.rand(1, 1, 12, 10, 8)
    sliding = LeftRightFlipInferer(SlidingWindowInferer(roi_size=(4, 4, 4), sw_batch_size=2, overlap=0.5))(x, _blind)
    simple = LeftRightFlipInferer(SimpleInferer())(x, _blind)
    assert torch.allclose(torch.as_tensor(sliding), torch.as_tensor(simple), atol=1e-5)


def test_disabled_is_one_pass() -> None:
    calls = []

    def network(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return _blind(x)

    out = LeftRightFlipInferer(SimpleInferer(), enabled=False)(torch.ones(1, 1, 4, 4, 4), network)
    assert len(calls) == 1
    # command-line overrides arrive as strings
    assert LeftRightFlipInferer(SimpleInferer(), enabled="false").enabled is False
    assert LeftRightFlipInferer(SimpleInferer(), enabled="True").enabled is True
    with pytest.raises(ValueError, match="true or false"):
        LeftRightFlipInferer(SimpleInferer(), enabled="maybe") and torch.equal(
            torch.as_tensor(out), _blind(torch.ones(1, 1, 4, 4, 4))
        )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="spatial_axis"):
        LeftRightFlipInferer(SimpleInferer(), spatial_axis=3)
    with pytest.raises(ValueError, match="permute"):
        LeftRightFlipInferer(SimpleInferer(), label_swap={1: 2}, num_classes=9)
    with pytest.raises(ValueError, match="permute"):  # without num_classes the swap is checked on the output
        LeftRightFlipInferer(SimpleInferer(), label_swap={1: 2})(
            torch.ones(1, 1, 4, 4, 4), lambda x: torch.zeros(1, 9, 4, 4, 4)
        )
    with pytest.raises(ValueError, match="channels"):
        LeftRightFlipInferer(SimpleInferer(), num_classes=9)(
            torch.ones(1, 1, 4, 4, 4), lambda x: torch.zeros(1, 3, 4, 4, 4)
        )
    assert LEFT_RIGHT_SWAP[1] == 2


def test_vertebral_context_channels_mirror_onto_themselves() -> None:
    # 15 outputs: muscle pairs swap, the midline vertebral bodies and sacrum (9-14) keep their channel
    x = torch.zeros(1, 1, 6, 4, 4)
    x[:, :, :3] = 1.0  # an image whose left half (low x) differs from its right

    def network(t: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(1, NUM_CLASSES_WITH_CONTEXT, *t.shape[2:])
        out[:, 1] = t[:, 0]  # "psoas_left" wherever the image is bright
        out[:, 11] = t[:, 0]  # "L3" wherever the image is bright
        return out

    out = LeftRightFlipInferer(SimpleInferer())(x, network)
    assert out.shape[1] == NUM_CLASSES_WITH_CONTEXT
    # the mirrored pass's "psoas_left", mirrored back, is the psoas_right channel; L3 stays L3 in both passes
    assert torch.equal(out[0, 1], x[0, 0] / 2) and torch.equal(out[0, 2], x[0, 0] / 2)
    assert torch.equal(out[0, 11], x[0, 0])


@pytest.mark.parametrize("enabled", [True, False])
def test_float16_overflow_is_refused_not_turned_into_background(enabled: bool) -> None:
    # activations of 4e4 scaled once more overflow float16 (max 65504), as the shipped network's did under
    # float16 autocast on a GPU; bfloat16 keeps them
    def network(x: torch.Tensor) -> torch.Tensor:
        return (_sided(x) * 4e4 * 2).to(torch.float16)

    x = torch.ones(1, 1, 4, 4, 4)
    with pytest.raises(FloatingPointError, match=r"non-finite values \(NaN or inf\).*--amp false"):
        LeftRightFlipInferer(SimpleInferer(), enabled=enabled)(x, network)
    out = LeftRightFlipInferer(SimpleInferer(), enabled=enabled)(x, lambda t: (_sided(t) * 8e4).to(torch.bfloat16))
    assert torch.isfinite(out).all()
    assert out.float().argmax(1)[0, 0, 0, 0] == 1


def test_configs_run_float32_unless_asked_and_autocast_in_bfloat16() -> None:
    root = Path(__file__).resolve().parents[2]
    infer = json.loads((root / "configs" / "inference.json").read_text())
    train = json.loads((root / "configs" / "train.json").read_text())
    # float32 unless asked: the GPU pass is under 1 % of a subject's time, GPU training is loader-bound, and the one
    # bfloat16-trained model measured (cross-validation split 0) was less accurate; autocast, if asked, bfloat16
    assert infer["amp"] is False and train["amp"] is False
    assert infer["evaluator"]["amp_kwargs"] == "@amp_kwargs"
    for cfg in (infer, train):
        assert cfg["amp_kwargs"] == {"dtype": "$torch.bfloat16"}
    assert train["train"]["trainer"]["amp_kwargs"] == "@amp_kwargs"
    assert train["validate"]["evaluator"]["amp_kwargs"] == "@amp_kwargs"


def _window_mean(x: torch.Tensor) -> torch.Tensor:
    """A 'network' whose every output voxel is the mean of its whole input window (maximal context)."""
    return x.mean(dim=(2, 3, 4), keepdim=True).expand(x.shape[0], NUM_CLASSES, *x.shape[2:]).clone()


@pytest.mark.parametrize("config", ["inference.json", "train.json"])
def test_configured_window_pads_short_scans_by_replication_not_zeros(config: str) -> None:
    """A scan shorter than the window (a truncated field of view) must not show the network a slab of zeros."""
    parser = ConfigParser()
    parser.read_config(Path(__file__).resolve().parents[2] / "configs" / config)
    if config == "inference.json":
        parser["roi_size"] = [16, 16, 16]  # the settings layer wants multiples of 16 (the UNet's 4 strides of 2)
        parser["flip_ensemble"] = False
        parser["adapt_batch_norm"] = False  # the stand-in network below is a function, without batch norm
        inferer = parser.get_parsed_content("inferer")
    else:
        parser["patch_size"] = [16, 16, 16]
        inferer = parser.get_parsed_content("validate#inferer")
    scan = torch.ones(1, 1, 16, 16, 4)  # 4 slices in a 16-slice window
    out = inferer(scan, _window_mean)
    assert out.shape == (1, NUM_CLASSES, 16, 16, 4)
    # zero padding would give 4/16 = 0.25 here
    torch.testing.assert_close(out, torch.ones_like(out))
