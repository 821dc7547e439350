"""SpineTarget(d): tissue-id, vertebral and 15-class label maps mapped to the spine network's 0/1/2 classes."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scripts.phantom.tissue_ids import TISSUE_IDS
from scripts.transforms.label_maps.spine_target import (
    BODY_VALUES,
    SACRUM_VALUES,
    SPINE_CLASSES,
    SpineTarget,
    SpineTargetd,
    spine_target_array,
)

AFFINE = torch.diag(torch.tensor([2.0, 2.0, 4.0, 1.0]))


def _tissue() -> MetaTensor:
    """One voxel of every tissue id of the phantom (and background), in a (1, N, 1, 1) map."""
    ids = [0, *sorted(TISSUE_IDS)]
    return MetaTensor(torch.tensor(ids, dtype=torch.int16).reshape(1, -1, 1, 1), affine=AFFINE)


def test_the_phantoms_bodies_t11_to_l5_and_its_sacrum_are_the_classes():
    tissue = _tissue()
    out = SpineTarget()(tissue)
    assert isinstance(out, MetaTensor) and out.dtype == tissue.dtype and torch.equal(out.affine, AFFINE)
    got = {int(i): int(c) for i, c in zip(tissue.flatten(), out.flatten())}
    bodies = {i for i, name in TISSUE_IDS.items() if name.startswith("vertebral_body")}
    assert bodies == set(BODY_VALUES)
    assert {i for i, c in got.items() if c == 1} == bodies
    assert {i for i, c in got.items() if c == 2} == set(SACRUM_VALUES) == {14}
    assert TISSUE_IDS[14] == "sacrum" and set(got.values()) == set(SPINE_CLASSES)


def test_a_fifteen_class_label_map_loses_its_muscles_and_names():
    label = np.array([0, 1, 4, 8, 9, 11, 13, 14], dtype=np.uint8).reshape(1, -1, 1, 1)
    out = SpineTarget()(label)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    assert out.ravel().tolist() == [0, 0, 0, 0, 1, 1, 1, 2]
    assert spine_target_array(label[0]).ravel().tolist() == [0, 0, 0, 0, 1, 1, 1, 2]


def test_the_dictionary_version_reads_a_source_key_and_drops_it():
    tissue = _tissue()
    muscles = MetaTensor(torch.zeros_like(tissue), affine=AFFINE)
    d = SpineTargetd("label", source_key="tissue")({"label": muscles, "tissue": tissue, "image": 1})
    assert "tissue" not in d and d["image"] == 1
    assert torch.equal(d["label"], SpineTarget()(tissue))
    in_place = SpineTargetd("label")({"label": tissue})
    assert torch.equal(in_place["label"], SpineTarget()(tissue))
    with pytest.raises(KeyError, match="tissue-id map"):
        SpineTargetd("label", source_key="tissue")({"label": muscles})
    with pytest.raises(ValueError, match="not on one grid"):
        SpineTargetd("label", source_key="tissue")({"label": muscles[:, :3], "tissue": tissue})


def test_maps_of_another_convention_are_refused_with_the_way_forward():
    with pytest.raises(ValueError, match="none of the vertebral body values"):
        SpineTarget()(torch.tensor([0, 3, 40]).reshape(1, 3, 1, 1))
    with pytest.raises(ValueError, match="mode 'nearest'"):
        SpineTarget()(torch.tensor([0.0, 9.5]).reshape(1, 2, 1, 1))
    with pytest.raises(ValueError, match="negative"):
        SpineTarget()(torch.tensor([0, -1]).reshape(1, 2, 1, 1))
    with pytest.raises(ValueError, match="in both"):
        SpineTarget(body_values=(9, 14))
    with pytest.raises(ValueError, match="non-empty"):
        SpineTarget(sacrum_values=())
    # a muscle-only map (nothing above 8) is all background without complaint: a crop may hold no bone
    assert not SpineTarget()(torch.tensor([0, 1, 8]).reshape(1, 3, 1, 1)).any()
