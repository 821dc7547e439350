"""BackgroundWeight(d): a muscle's weight before the argmax moves its borders with the background by the documented
two-class threshold ``w / (1 + w)``, one weight for all or one per muscle; keeps the prediction's meta; a weight
outside [1, 20] or an unknown muscle is refused by the setting, before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from scripts.configuration.muscle_weights import MAX_BACKGROUND_WEIGHT, muscle_weights
from scripts.configuration.settings import SettingsExit, validate_inference_settings
from scripts.pipeline.background_weight import BackgroundWeight, BackgroundWeightd, channel_factors

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
    assert torch.equal(out[0], p[0])  # the background channel is the reference
    assert torch.allclose(out[1:], p[1:] / 20.0)
    # the psoas/iliacus voxel: with one weight for all, the order between the two muscles is kept
    assert out[1, 4] > out[3, 4]


def test_one_weight_per_muscle_moves_only_that_muscle_s_borders():
    p = torch.zeros(9, 8, 1, 1)
    for value in range(1, 9):  # each muscle (both sides) against the background at p = 0.62
        p[value, value - 1], p[0, value - 1] = 0.62, 0.38
    out = BackgroundWeight({"psoas": 2.0, "iliacus": 1.5})(p)
    # psoas (1, 2) needs p > 0.667: lost; iliacus (3, 4) needs p > 0.6: kept; QL and ES+MF keep the plain argmax
    assert out.argmax(0).flatten().tolist() == [0, 0, 3, 4, 5, 6, 7, 8]
    assert channel_factors(muscle_weights({"psoas": 2.0}), 15)[:3] == [1.0, 0.5, 0.5]
    assert channel_factors(muscle_weights(2.0), 15)[9:] == [1.0] * 6  # the vertebral context is left as it is


def test_weight_one_is_the_plain_argmax_and_returns_the_same_object():
    p = _border_probabilities()
    assert BackgroundWeight(1.0)(p) is p


def test_the_dictionary_version_keeps_meta_and_applied_operations():
    affine = torch.diag(torch.tensor([2.0, 2.0, 4.0, 1.0], dtype=torch.float64))
    p = MetaTensor(_border_probabilities(), affine=affine)
    p.push_applied_operation({"class": "Spacingd", "id": 0})
    d = BackgroundWeightd("pred", weight=2.0)({"pred": p, "image": "kept"})
    assert isinstance(d["pred"], MetaTensor)
    assert torch.equal(d["pred"].affine, affine)
    assert [op["class"] for op in d["pred"].applied_operations] == ["Spacingd"]
    assert d["image"] == "kept"


@pytest.mark.parametrize(
    "bad, words",
    [
        (0.5, "out of range"),
        (21, "out of range"),
        ("abc", "must be a number"),
        (None, "must be a number"),
        (True, "must be a number"),
        ({"psoas": 0.9}, "['psoas']"),
        ({"gluteus": 2}, "gluteus is not a muscle"),
        ('{"psoas": 2', "not valid JSON"),
    ],
)
def test_bad_weights_are_refused_with_what_is_accepted(bad, words):
    with pytest.raises(ValueError, match="background_weight") as err:
        muscle_weights(bad)
    assert words in str(err.value) and "erector_spinae_multifidus" in str(err.value)


def test_weights_are_read_from_numbers_mappings_and_command_line_text():
    assert (
        muscle_weights(1.5)
        == muscle_weights("1.5")
        == dict.fromkeys(("psoas", "iliacus", "quadratus_lumborum", "erector_spinae_multifidus"), 1.5)
    )
    assert muscle_weights('{"psoas": 2, "iliacus": "1.5"}') == {
        "psoas": 2.0,
        "iliacus": 1.5,
        "quadratus_lumborum": 1.0,
        "erector_spinae_multifidus": 1.0,
    }
    assert muscle_weights(muscle_weights({"psoas": 2})) == muscle_weights({"psoas": 2})  # idempotent


def test_probabilities_need_a_channel_axis_with_a_label():
    with pytest.raises(ValueError, match=r"\(C, X, Y, Z\)"):
        BackgroundWeight(2.0)(torch.ones(1, 4, 4, 4))


def test_the_setting_types_the_weights_and_refuses_a_wrong_value_before_anything_runs():
    typed = validate_inference_settings(background_weight="2")["background_weight"]
    assert typed == dict.fromkeys(("psoas", "iliacus", "quadratus_lumborum", "erector_spinae_multifidus"), 2.0)
    with pytest.raises(SettingsExit, match="background_weight") as err:
        validate_inference_settings(background_weight=0.5)
    assert f"{MAX_BACKGROUND_WEIGHT:g}" in str(err.value)


def test_inference_json_weighs_after_the_confidence_and_before_the_argmax():
    config = json.loads((BUNDLE_ROOT / "configs" / "inference.json").read_text())
    # the default chosen on the validation phantoms (docs/studies/heldout_phantoms.md, "the border decision")
    assert config["background_weight"] == {"psoas": 1.5, "iliacus": 1.5}
    names = [s["_target_"].rsplit(".", 1)[-1] for s in config["postprocessing"]["transforms"]]
    at = names.index("BackgroundWeightd")
    assert names.index("NetworkConfidenced") < at < names.index("InvertedArgmaxd") == at + 1
    parser = ConfigParser()
    parser.read_config(BUNDLE_ROOT / "configs" / "inference.json")
    parser.update({"background_weight": '{"psoas": 2.5}'})
    steps = parser.get_parsed_content("postprocessing").transforms
    assert [s.t.weights["psoas"] for s in steps if isinstance(s, BackgroundWeightd)] == [2.5]
    record = parser.get_parsed_content("run_record")
    # a resumed run with other weights is a run with other settings
    assert record.settings_in_force["segmentation"]["background_weight"]["psoas"] == 2.5


def test_weighting_then_interpolating_equals_interpolating_then_weighting():
    # why the step may run on the working grid: a constant factor commutes with the linear interpolation back
    rng = np.random.default_rng(0)
    p = torch.softmax(torch.as_tensor(rng.normal(size=(9, 6, 5, 4)), dtype=torch.float32), 0)
    up = torch.nn.functional.interpolate(p[None], scale_factor=2, mode="trilinear", align_corners=False)[0]
    a = torch.nn.functional.interpolate(
        BackgroundWeight(1.7)(p)[None], scale_factor=2, mode="trilinear", align_corners=False
    )[0]
    assert torch.equal(a.argmax(0), BackgroundWeight(1.7)(up).argmax(0))
