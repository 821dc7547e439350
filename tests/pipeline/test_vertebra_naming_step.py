"""NameVertebraeFromSacrumd in inference.json's post-processing: renames a 15-class label MetaTensor, records it
for the per-level JSON, leaves a 9-class map untouched, and runs before the largest-component step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scripts.pipeline.keys import VERTEBRA_NAMING_KEY
from scripts.pipeline.postprocess import KeepLargestComponentPerLabeld
from scripts.pipeline.vertebra_naming import NameVertebraeFromSacrum, NameVertebraeFromSacrumd

from tests.quantification.level_cases import BODIES, affine, spine_label

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "inference.json"


def _shifted() -> np.ndarray:
    """The box spine with every body named one level too high (the two top bodies both L1)."""
    lab = spine_label({14: BODIES[14], 12: BODIES[13], 11: BODIES[12], 10: BODIES[11], 9: BODIES[10]})
    lab[8:12, 4:9, BODIES[9][0] : BODIES[9][1]] = 9
    return lab


def _meta(lab: np.ndarray) -> MetaTensor:
    return MetaTensor(torch.as_tensor(lab[None].astype(np.float32)), affine=torch.as_tensor(affine()))


def test_renamed_before_the_largest_component_keeps_every_body():
    d = {"pred": _meta(_shifted())}
    named = NameVertebraeFromSacrumd("pred")(d)
    assert named[VERTEBRA_NAMING_KEY]["status"] == "renamed"
    assert named[VERTEBRA_NAMING_KEY]["rule"] == "counted up from the sacrum"
    cleaned = KeepLargestComponentPerLabeld("pred", labels=range(1, 15))(named)
    out = cleaned["pred"][0].numpy().astype(np.uint8)
    np.testing.assert_array_equal(out, spine_label())
    assert isinstance(cleaned["pred"], MetaTensor) and torch.equal(cleaned["pred"].affine, named["pred"].affine)
    # the other order loses a body: the two "L1" pieces are one label until renamed
    lost = KeepLargestComponentPerLabeld("pred", labels=range(1, 15))({"pred": _meta(_shifted())})
    assert (lost["pred"][0].numpy() == 9).sum() < (_shifted() == 9).sum()


def test_nine_class_map_passes_through_without_a_record():
    lab = spine_label()
    lab[lab > 8] = 0
    img = _meta(lab)
    d = NameVertebraeFromSacrumd("pred")({"pred": img})
    assert d["pred"] is img and VERTEBRA_NAMING_KEY not in d


def test_confirmed_names_return_the_same_tensor():
    img = _meta(spine_label())
    t = NameVertebraeFromSacrum()
    assert t(img) is img and t.last_result.status == "confirmed"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="min_piece_share"):
        NameVertebraeFromSacrum(min_piece_share=1.0)
    with pytest.raises(ValueError, match=r"\(1, X, Y, Z\)"):
        NameVertebraeFromSacrum()(torch.zeros(2, 4, 4, 4))


def test_inference_config_names_the_bodies_before_the_largest_component_step():
    steps = [t["_target_"] for t in json.loads(CONFIG.read_text())["postprocessing"]["transforms"]]
    naming = steps.index("scripts.pipeline.vertebra_naming.NameVertebraeFromSacrumd")
    assert steps.index("scripts.pipeline.inverted_argmax.InvertedArgmaxd") < naming
    # the spine network's bodies are counted (and merged) between the two: neither step sees the other's bodies
    assert naming + 1 == steps.index("scripts.pipeline.spine_labels.MergeSpineLabelsd")
    assert naming + 2 == steps.index("scripts.pipeline.postprocess.KeepLargestComponentPerLabeld")
