"""Tests of the deformations sampled from the anatomical-variability model
(scripts/transforms/spatial/anatomical_deform.py): labels stay aligned, the same world-space result for RAS and
LPS storage, no model means the identity.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scripts.transforms.spatial.anatomical_deform import RandAnatomicalDeformd
from scripts.transforms.spatial.folding import jacobian_determinant

from tests.transforms.synthetic_volumes import (
    ANAT_SPACING,
    KEYS3,
    MODES3,
    anatomy_data,
    assert_aligned,
    tiny_model,
    warp_dict,
)

AFFINE_LPS = np.diag([-1.5, -1.5, 4.0, 1.0])


@pytest.fixture(scope="module")
def anatomy() -> dict[str, Any]:
    """The six-subject anatomy and its model (built once per session, see ``anatomy_data``)."""
    return anatomy_data()


@pytest.mark.parametrize("affine", [np.diag([*ANAT_SPACING, 1.0]), np.diag([-2.0, -2.0, 4.0, 1.0])], ids=["ras", "lps"])
def test_anatomical_deformation_keeps_labels_aligned(
    anatomy: dict[str, Any], affine: np.ndarray, tmp_path: Path
) -> None:
    base = anatomy["base"]
    lab = MetaTensor(torch.from_numpy(base)[None], affine=torch.as_tensor(affine))
    img = MetaTensor(lab.as_tensor().float(), affine=torch.as_tensor(affine))
    path = anatomy["model"].save(tmp_path / "m.npz")
    t = RandAnatomicalDeformd(KEYS3, path, scale=2.0, prob=1.0, mode=MODES3).set_random_state(0)
    out = t(warp_dict(img, lab))
    assert_aligned(out, lab)
    # the field at this grid: non-trivial, smooth, no folding (world RAS mm == array axes for the RAS affine)
    if affine[0, 0] > 0:
        centre = t._call_kwargs({"label": lab})["center_mm"]
        u = t.warper.displacement_field_world_mm(base.shape, affine, centre)
        assert u.abs().max() > 0.5
        assert jacobian_determinant(u, ANAT_SPACING).min() > 0.0


def test_anatomical_deformation_is_the_same_in_world_space_for_ras_and_lps(anatomy: dict[str, Any]) -> None:
    # the same physical content stored RAS (index -> +x, +y) and LPS (index -> -x, -y): one draw, same world result
    ras = np.diag([*ANAT_SPACING, 1.0])
    ras[:3, 3] = (-39.0, -39.0, -38.0)
    shape = np.asarray(anatomy["base"].shape)
    lps = np.diag([-ANAT_SPACING[0], -ANAT_SPACING[1], ANAT_SPACING[2], 1.0])
    lps[:3, 3] = ras[:3, :3] @ np.array([shape[0] - 1, shape[1] - 1, 0]) + ras[:3, 3]
    arrays = {
        "ras": torch.from_numpy(anatomy["base"])[None],
        "lps": torch.from_numpy(anatomy["base"][::-1, ::-1].copy())[None],
    }
    out = {}
    for name, affine in (("ras", ras), ("lps", lps)):
        lab = MetaTensor(arrays[name], affine=torch.as_tensor(affine))
        t = RandAnatomicalDeformd("label", anatomy["model"], scale=2.0, prob=1.0, mode="nearest")
        out[name] = t.set_random_state(4)({"label": lab})["label"].as_tensor()
    back = out["lps"].flip(1, 2)
    assert not torch.equal(out["ras"], arrays["ras"])
    assert (back == out["ras"]).float().mean() > 0.995


def test_anatomical_deformation_without_model_is_identity() -> None:
    image = MetaTensor(torch.rand(1, 6, 6, 6), affine=torch.as_tensor(AFFINE_LPS))
    out = RandAnatomicalDeformd(["image"], model="", prob=1.0, mode="bilinear")({"image": image})
    assert torch.equal(out["image"].as_tensor(), image.as_tensor())


INVALID = [
    (
        "anatomical-scale",
        lambda: RandAnatomicalDeformd("image", tiny_model(), scale=-1.0),
        ValueError,
        r"scale must be a number >= 0, not -1.0",
    ),
    (
        "anatomical-max-std",
        lambda: RandAnatomicalDeformd("image", tiny_model(), max_std=0),
        ValueError,
        r"max_std must be a number > 0",
    ),
    (
        "anatomical-components",
        lambda: RandAnatomicalDeformd("image", tiny_model(), num_components=5),
        ValueError,
        r"num_components must be None or an integer in \[1, 2\], not 5",
    ),
    ("anatomical-model-type", lambda: RandAnatomicalDeformd("image", 3.0), TypeError, r"model must be"),
    (
        "anatomical-model-missing",
        lambda: RandAnatomicalDeformd("image", "/nonexistent/model.npz"),
        FileNotFoundError,
        r"not found",
    ),
]


@pytest.mark.parametrize(("make", "error", "match"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_argument(make: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()
