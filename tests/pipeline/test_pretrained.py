"""load_pretrained: a 9-class checkpoint starts a 15-class network with the old classes' outputs unchanged."""

import pytest
import torch
from monai.networks.nets import UNet
from scripts.pipeline.pretrained import adapt_state_dict, load_pretrained


def _unet(classes: int) -> UNet:
    torch.manual_seed(classes)
    return UNet(3, 1, classes, (4, 8, 16), (2, 2), num_res_units=2, norm="batch").eval()


def test_widening_keeps_the_old_outputs(tmp_path) -> None:
    old = _unet(9)
    torch.save(old.state_dict(), tmp_path / "old.pt")
    new = _unet(15)
    adapted = load_pretrained(new, tmp_path / "old.pt")
    assert adapted and all(name.startswith("model.") for name in adapted)
    x = torch.randn(1, 1, 16, 16, 8)
    with torch.no_grad():
        assert torch.allclose(new(x)[:, :9], old(x), atol=1e-6)


def test_narrowing_and_checkpoint_dict(tmp_path) -> None:
    wide = _unet(15)
    torch.save({"model": wide.state_dict()}, tmp_path / "wide.pt")  # CheckpointSaver's layout
    narrow = _unet(9)
    load_pretrained(narrow, tmp_path / "wide.pt")
    ref = wide.state_dict()
    for name, value in narrow.state_dict().items():
        region = tuple(slice(0, s) for s in value.shape)
        assert torch.equal(value, ref[name][region]), name


def test_skip_and_refusals(tmp_path) -> None:
    net = _unet(9)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert load_pretrained(net, "", skip=False) == [] and load_pretrained(net, tmp_path / "none.pt", skip=True) == []
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    other = UNet(3, 1, 9, (4, 8), (2,), num_res_units=1).state_dict()
    with pytest.raises(ValueError, match="another architecture"):
        adapt_state_dict(net.state_dict(), other)
    bad = dict(net.state_dict())
    name = next(k for k, v in bad.items() if v.ndim == 5)
    bad[name] = torch.zeros(bad[name].shape[0], bad[name].shape[1], 1, 1, 1)
    with pytest.raises(ValueError, match="cannot be adapted"):
        adapt_state_dict(net.state_dict(), bad)
