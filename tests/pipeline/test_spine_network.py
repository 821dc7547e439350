"""The spine network's steps in inference.json: loading by ``vertebral_outputs``, the network pass on the working
grid, and the counted bodies merged into the muscle label map on the input grid (the box spine of level_cases.py)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SimpleInferer
from monai.networks.nets import UNet
from scripts.configuration.settings import INFERENCE_OPTIONS
from scripts.pipeline.keys import SPINE_KEY, VERTEBRA_NAMING_KEY
from scripts.pipeline.spine_labels import MergeSpineLabelsd
from scripts.pipeline.spine_network import VERTEBRAL_OUTPUTS, SpineSegmentd, load_spine_network
from scripts.quantification.levels import assign_levels

from tests.quantification.level_cases import affine, cut_above_sacrum, spine_label

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "inference.json"


def _net() -> UNet:
    cfg = json.loads(CONFIG.read_text())["spine_network_def"]
    kwargs = {k: v for k, v in cfg.items() if k != "_target_"}
    return UNet(**kwargs)


def _meta(arr: np.ndarray) -> MetaTensor:
    return MetaTensor(torch.as_tensor(arr[None].astype(np.float32)), affine=torch.as_tensor(affine()))


def test_the_setting_lists_the_modes():
    option = INFERENCE_OPTIONS["vertebral_outputs"]
    assert option.kind == "bool" and tuple(option.choices) + ("true", "false") == VERTEBRAL_OUTPUTS


def test_loading_follows_the_setting(tmp_path, caplog):
    missing = tmp_path / "none.pt"
    assert load_spine_network(_net(), missing, "false") is None
    with caplog.at_level(logging.INFO, logger="scripts.pipeline.spine_network"):
        assert load_spine_network(_net(), missing, "auto") is None
    assert "no spine network at" in caplog.text and "per-level" in caplog.text
    with pytest.raises(FileNotFoundError, match="spine_train.json"):
        load_spine_network(_net(), missing, True)
    good = tmp_path / "spine_model.pt"
    trained = _net()
    torch.save(trained.state_dict(), good)
    net = load_spine_network(_net(), good, "auto")
    assert net is not None and not net.training
    for a, b in zip(net.state_dict().values(), trained.state_dict().values()):
        assert torch.equal(a, b)
    # a 15-output muscle model or a two-channel input: no spine network (an error when it is required)
    assert load_spine_network(_net(), good, "auto", num_classes=15) is None
    assert load_spine_network(_net(), good, "auto", channels="water_fat") is None
    with pytest.raises(ValueError, match="15 outputs"):
        load_spine_network(_net(), good, "true", num_classes=15)
    wrong = tmp_path / "muscles.pt"
    torch.save(UNet(3, 1, 9, (16, 32), (2,)).state_dict(), wrong)
    with pytest.raises(ValueError, match="muscles.pt: these weights do not fit"):
        load_spine_network(_net(), wrong, "auto")
    with pytest.raises(ValueError, match="vertebral_outputs must be"):
        load_spine_network(_net(), good, "sometimes")


def test_the_pass_writes_probabilities_on_the_working_grid_with_the_image_meta():
    torch.manual_seed(0)
    img = MetaTensor(torch.rand(1, 32, 24, 16), affine=torch.diag(torch.tensor([2.0, 2.0, 4.0, 1.0])))
    img.applied_operations.append({"class": "Spacingd"})
    step = SpineSegmentd("image", _net().eval(), SimpleInferer())
    out = step({"image": img})
    probs = out[SPINE_KEY]
    assert probs.shape == (3, 32, 24, 16) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(0), torch.ones(32, 24, 16))
    assert torch.equal(probs.affine, img.affine) and probs.applied_operations == img.applied_operations
    assert SpineSegmentd("image", None, SimpleInferer())({"image": img}).keys() == {"image"}
    with pytest.raises(ValueError, match="one channel"):
        step({"image": MetaTensor(torch.rand(2, 8, 8, 8))})


def test_counted_bodies_go_where_the_muscle_map_is_background():
    truth = spine_label()
    muscles = np.where(truth <= 8, truth, 0)
    spine = np.where((truth >= 9) & (truth <= 13), 1, np.where(truth == 14, 2, 0))
    spine[2:6, 4:10, 40] = 1  # a body voxel claimed where the psoas is: the muscle stands
    d = MergeSpineLabelsd("pred")({"pred": _meta(muscles), SPINE_KEY: _meta(spine)})
    out = d["pred"][0].numpy().astype(np.uint8)
    np.testing.assert_array_equal(out, truth)
    assert SPINE_KEY not in d and isinstance(d["pred"], MetaTensor)
    assert d[VERTEBRA_NAMING_KEY]["status"] == "counted" and d[VERTEBRA_NAMING_KEY]["source"] == "spine network"
    assert assign_levels(out, affine()).status == "ok"
    # no spine network in the run: untouched, no record
    plain = MergeSpineLabelsd("pred")({"pred": _meta(muscles)})
    assert VERTEBRA_NAMING_KEY not in plain and torch.equal(plain["pred"], _meta(muscles))
    # no sacrum in view: the bodies are not named, the record says why
    no_sacrum = np.where(spine == 2, 0, spine)
    d = MergeSpineLabelsd("pred")({"pred": _meta(muscles), SPINE_KEY: _meta(no_sacrum)})
    np.testing.assert_array_equal(d["pred"][0].numpy(), muscles)
    assert d[VERTEBRA_NAMING_KEY]["status"] == "not named" and "no sacrum" in d[VERTEBRA_NAMING_KEY]["reasons"][0]
    with pytest.raises(ValueError, match="already holds vertebral labels"):
        MergeSpineLabelsd("pred")({"pred": _meta(truth), SPINE_KEY: _meta(spine)})
    with pytest.raises(ValueError, match="not on one grid"):
        MergeSpineLabelsd("pred")({"pred": _meta(muscles), SPINE_KEY: _meta(spine[:, :, :50])})


def test_inference_config_runs_the_spine_steps_in_order():
    steps = [t["_target_"].rsplit(".", 1)[-1] for t in json.loads(CONFIG.read_text())["postprocessing"]["transforms"]]
    assert steps.index("SpineSegmentd") < steps.index("InvertedArgmaxd") < steps.index("MergeSpineLabelsd")
    assert steps.index("MergeSpineLabelsd") < steps.index("KeepLargestComponentPerLabeld")


def test_the_run_record_names_the_spine_weights(tmp_path):
    weights = tmp_path / "spine_model.pt"
    torch.save(_net().state_dict(), weights)
    net = load_spine_network(_net(), weights, "auto")
    assert net.fingerprint["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    record = json.loads(CONFIG.read_text())["run_record"]["segmentation_settings"]
    assert record["spine_model"] == "$getattr(@spine_network, 'fingerprint', None)"


def test_a_stated_lowest_vertebra_names_the_bodies_of_a_scan_without_the_sacrum():
    truth, aff = cut_above_sacrum(spine_label())  # from the L5/S1 disc up: no sacrum in view
    muscles = np.where(truth <= 8, truth, 0)
    spine = np.where((truth >= 9) & (truth <= 13), 1, 0)

    def meta(arr):
        return MetaTensor(torch.as_tensor(arr[None].astype(np.float32)), affine=torch.as_tensor(aff))

    d = MergeSpineLabelsd("pred")({"pred": meta(muscles), SPINE_KEY: meta(spine)})
    assert d[VERTEBRA_NAMING_KEY]["status"] == "not named"
    d = MergeSpineLabelsd("pred", lowest_vertebra="L5")({"pred": meta(muscles), SPINE_KEY: meta(spine)})
    np.testing.assert_array_equal(d["pred"][0].numpy().astype(np.uint8), truth)
    record = d[VERTEBRA_NAMING_KEY]
    assert record["status"] == "counted" and record["anchor"] == "stated lowest body L5"
    assert record["rule"].startswith("counted up from the stated lowest body L5")
    with pytest.raises(ValueError, match="lowest_vertebra must be one of"):
        MergeSpineLabelsd("pred", lowest_vertebra="T12")
