"""AddVertebralContext(d): the vertebral map merged into the muscle label map for 15-class training."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scripts.transforms.label_maps.vertebral_context import AddVertebralContext, AddVertebralContextd


def _maps() -> tuple[MetaTensor, MetaTensor]:
    label = torch.zeros(1, 4, 4, 3, dtype=torch.uint8)
    label[0, 0, :, :] = 1  # a psoas column
    vertebrae = torch.zeros(1, 4, 4, 3, dtype=torch.uint8)
    vertebrae[0, :2, :2, 0] = 11  # L3, overlapping the psoas at x = 0
    vertebrae[0, 2:, 2:, 2] = 14
    affine = torch.diag(torch.tensor([2.0, 2.0, 4.0, 1.0]))
    return MetaTensor(label, affine=affine), MetaTensor(vertebrae, affine=affine)


def test_merge_keeps_muscles_and_adds_context() -> None:
    label, vertebrae = _maps()
    out = AddVertebralContext()(label, vertebrae)
    assert isinstance(out, MetaTensor) and out.dtype == torch.uint8 and torch.equal(out.affine, label.affine)
    assert int((out == 1).sum()) == int((label == 1).sum())  # a muscle voxel is never overwritten
    assert int((out == 11).sum()) == 2  # 4 L3 voxels, 2 of them under the psoas
    assert int((out == 14).sum()) == 4
    np_out = AddVertebralContext()(label.numpy(), vertebrae.numpy())
    assert isinstance(np_out, np.ndarray) and np.array_equal(np_out, out.numpy())


def test_dictionary_version_removes_the_vertebral_key() -> None:
    label, vertebrae = _maps()
    out = AddVertebralContextd(keys="label")({"label": label, "vertebrae": vertebrae, "image": 0})
    assert "vertebrae" not in out and set(torch.unique(out["label"]).tolist()) == {0, 1, 11, 14}


def test_labels_that_carry_the_context_already_pass() -> None:
    label, vertebrae = _maps()
    merged = AddVertebralContext()(label, vertebrae)  # as a 15-class model's corrected output is saved
    out = AddVertebralContextd(keys="label")({"label": merged})
    assert torch.equal(out["label"], merged)


def test_refusals_name_the_problem() -> None:
    label, vertebrae = _maps()
    with pytest.raises(KeyError, match="--vertebral_context false"):
        AddVertebralContextd(keys="label")({"label": label})
    with pytest.raises(ValueError, match="expected 0 and 9-14"):
        AddVertebralContext()(label, vertebrae * 0 + 3)
    with pytest.raises(ValueError, match="merged already"):
        AddVertebralContext()(label + 11, vertebrae)
    with pytest.raises(ValueError, match="one grid"):
        AddVertebralContext()(label, vertebrae[:, :2])
    with pytest.raises(ValueError, match="vertebrae_key"):
        AddVertebralContextd(keys="label", vertebrae_key="")
