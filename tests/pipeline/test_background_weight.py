"""BackgroundWeight(d): the background's factor before the argmax moves only muscle/background borders, by the
documented two-class threshold ``w / (1 + w)``, keeps the prediction's meta, and is refused outside [1, 20]."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from scripts.configuration.settings import INFERENCE_OPTIONS, SettingsExit, validate_inference_settings
from scripts.pipeline.background_weight import (
    MAX_BACKGROUND_WEIGHT,
    BackgroundWeight,
    BackgroundWeightd,
    check_background_weight,
)

BUNDLE_ROOT = Path(__file__).resolve().parents[2]


def _border_probabilities() -> torch.Tensor:
    """(9, 5, 1, 1): muscle 1 against background at p = 0.9, 0.7, 0.62, 0.55; the last voxel psoas 0.50 / iliacus
    0.40 / background 0.10 (a border between two muscles)."""
    p = torch.zeros(9, 5, 1, 1)
    for i, q in enumerate((0.9, 0.7, 0.62, 0.55)):
        p[1, i], p[0, i] = q, 1 - q
    p[1, 4], p[3, 4], p[0, 4] = 0.50, 0.40, 0.10
    return p


@pytest.mark.parametrize(
    "weight, labels",
    [
        (1.0, [1, 1, 1, 1, 1]),
        (1.5, [1, 1, 1, 0, 1]),  # threshold 0.6
        (2.0, [1, 1, 0, 0, 1]),  # threshold 0.667
        (3.0, [1, 0, 0, 0, 1]),  # threshold 0.75; the muscle/muscle voxel keeps psoas (0.50 > 3 x 0.10)
    ],
)
def test_known_borders_move_by_the_two_class_threshold(weight, labels):
    out = BackgroundWeight(weight)(_border_probabilities())
    assert out.argmax(0).flatten().tolist() == labels


def test_muscle_to_muscle_borders_and_the_input_are_untouched():
    p = _border_probabilities()
    before = p.clone()
    out = BackgroundWeight(20.0)(p)
    assert torch.equal(p, before)
    assert torch.equal(out[1:], p[1:])  # only the background channel changes
    assert torch.allclose(out[0], 20.0 * p[0])
    # the psoas/iliacus voxel: the order between the two muscles is kept whatever the weight
    assert out[1, 4] > out[3, 4]


def test_weight_one_is_the_plain_argmax_and_returns_the_same_object():
    p = _border_probabilities()
    assert BackgroundWeight(1.0)(p) is p


def test_the_dictionary_version_keeps_meta_and_applied_operations():
    affine = torch.diag(torch.tensor([2.0, 2.0, 4.0, 1.0]))
    p = MetaTensor(_border_probabilities(), affine=affine)
    p.push_applied_operation({"class": "Spacingd", "id": 0})
    d = BackgroundWeightd("pred", weight=2.0)({"pred": p, "image": "kept"})
    assert isinstance(d["pred"], MetaTensor)
    assert torch.equal(d["pred"].affine, affine)
    assert [op["class"] for op in d["pred"].applied_operations] == ["Spacingd"]
    assert d["image"] == "kept"


@pytest.mark.parametrize("bad", [0.5, 0.99, 21, "abc", None])
def test_out_of_range_weights_are_refused_with_what_is_accepted(bad):
    with pytest.raises(ValueError, match="background_weight") as err:
        check_background_weight(bad)
    assert "20" in str(err.value)


def test_probabilities_need_a_channel_axis_with_a_label():
    with pytest.raises(ValueError, match=r"\(C, X, Y, Z\)"):
        BackgroundWeight(2.0)(torch.ones(1, 4, 4, 4))


def test_the_setting_has_the_transform_s_bounds_and_refuses_a_wrong_value():
    option = INFERENCE_OPTIONS["background_weight"]
    assert (option.low, option.high) == (1.0, MAX_BACKGROUND_WEIGHT)
    assert validate_inference_settings(background_weight="2")["background_weight"] == 2.0
    with pytest.raises(SettingsExit, match="background_weight"):
        validate_inference_settings(background_weight=0.5)


def test_inference_json_weighs_after_the_confidence_and_before_the_argmax():
    config = json.loads((BUNDLE_ROOT / "configs" / "inference.json").read_text())
    assert config["background_weight"] == 1.0  # the default: unchanged labels
    names = [s["_target_"].rsplit(".", 1)[-1] for s in config["postprocessing"]["transforms"]]
    at = names.index("BackgroundWeightd")
    assert names.index("NetworkConfidenced") < at < names.index("InvertedArgmaxd") == at + 1
    parser = ConfigParser()
    parser.read_config(BUNDLE_ROOT / "configs" / "inference.json")
    parser.update({"background_weight": "2.5"})
    steps = parser.get_parsed_content("postprocessing").transforms
    assert [s.t.weight for s in steps if isinstance(s, BackgroundWeightd)] == [2.5]
    record = parser.get_parsed_content("run_record")
    assert record.settings_in_force["segmentation"]["background_weight"] == 2.5


def test_weighting_then_interpolating_equals_interpolating_then_weighting():
    # why the step may run on the working grid: a constant factor commutes with the linear interpolation back
    rng = np.random.default_rng(0)
    p = torch.softmax(torch.as_tensor(rng.normal(size=(9, 6, 5, 4)), dtype=torch.float32), 0)
    up = torch.nn.functional.interpolate(p[None], scale_factor=2, mode="trilinear", align_corners=False)[0]
    a = torch.nn.functional.interpolate(
        BackgroundWeight(1.7)(p)[None], scale_factor=2, mode="trilinear", align_corners=False
    )[0]
    assert torch.equal(a.argmax(0), BackgroundWeight(1.7)(up).argmax(0))
