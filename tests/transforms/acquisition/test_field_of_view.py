"""Tests of the field-of-view augmentation (scripts/transforms/acquisition/field_of_view.py): boxes in world
millimetres and LPS storage, so the slab is checked along the patient's axis.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scripts.transforms.acquisition.field_of_view import RandFieldOfView, RandFieldOfViewd

AFFINE_LPS = np.diag([-1.5, -1.5, 4.0, 1.0])


@pytest.mark.parametrize("world_axis, array_axis", [(0, 0), (1, 1), (2, 2)])
def test_field_of_view_blanks_outside_one_slab_along_the_patient_axis(world_axis: int, array_axis: int) -> None:
    shape = (20, 16, 12)
    image = MetaTensor(torch.rand(1, *shape) + 1.0, affine=torch.as_tensor(AFFINE_LPS))
    label = MetaTensor(torch.randint(1, 9, (1, *shape), dtype=torch.uint8), affine=torch.as_tensor(AFFINE_LPS))
    t = RandFieldOfViewd(
        ["image", "label"], label_keys=["label"], prob=1.0, world_axes=[world_axis], extent_range=(0.4, 0.6)
    ).set_random_state(5)
    out = t({"image": image, "label": label})
    axis, start, stop = t.blanker.slab(image)
    assert axis == array_axis
    n = shape[axis]
    assert 0.4 * n - 1 <= stop - start <= 0.6 * n + 1 and 0 <= start < stop <= n
    kept = (out["image"] > 0).squeeze(0)
    other_axes = tuple(a for a in range(3) if a != axis)
    profile = kept.all(dim=other_axes).numpy()
    assert profile.tolist() == [start <= i < stop for i in range(n)]
    # labels blanked exactly where the image is, and kept inside
    assert torch.equal(out["label"][0] > 0, kept)
    assert out["label"].dtype == torch.uint8
    inside = [slice(None)] * 4
    inside[1 + axis] = slice(start, stop)
    assert torch.equal(out["image"][tuple(inside)], image[tuple(inside)])
    assert np.allclose(out["image"].affine.numpy(), AFFINE_LPS)


@pytest.mark.parametrize("world_axis", [0, 2])
def test_field_of_view_replicate_repeats_the_slab_edges_in_image_and_label(world_axis: int) -> None:
    # what sliding-window inference with replicate padding shows around a scan shorter than its window
    shape = (20, 16, 12)
    image = MetaTensor(torch.rand(1, *shape) + 1.0, affine=torch.as_tensor(AFFINE_LPS))
    label = MetaTensor(torch.randint(0, 9, (1, *shape), dtype=torch.uint8), affine=torch.as_tensor(AFFINE_LPS))
    t = RandFieldOfViewd(
        ["image", "label"],
        label_keys=["label"],
        prob=1.0,
        world_axes=[world_axis],
        extent_range=(0.3, 0.5),
        outside="replicate",
    ).set_random_state(3)
    out = t({"image": image, "label": label})
    axis, start, stop = t.blanker.slab(image)
    assert 0 < stop - start < shape[axis] and (start > 0 or stop < shape[axis])
    for key, ref in (("image", image), ("label", label)):
        o = out[key]
        assert o.shape == ref.shape and o.dtype == ref.dtype
        assert np.allclose(o.affine.numpy(), AFFINE_LPS)
        for i in range(shape[axis]):
            src = min(max(i, start), stop - 1)  # the slab keeps its slices; outside, the nearest edge slice
            assert torch.equal(o.select(1 + axis, i), ref.select(1 + axis, src)), (key, i, start, stop)


def test_field_of_view_probability_zero_and_bad_arguments() -> None:
    image = torch.ones(1, 4, 4, 4)
    out = RandFieldOfViewd("image", prob=0.0)({"image": image})
    assert torch.equal(out["image"], image)
    with pytest.raises(ValueError, match="extent_range"):
        RandFieldOfView(extent_range=(0.0, 0.5))
    with pytest.raises(ValueError, match="extent_range"):
        RandFieldOfView(extent_range=(0.5, 1.5))
    with pytest.raises(ValueError, match="world_axes"):
        RandFieldOfView(world_axes=[3])
    with pytest.raises(ValueError, match="outside must be 'fill' or 'replicate'"):
        RandFieldOfView(outside="reflect")
