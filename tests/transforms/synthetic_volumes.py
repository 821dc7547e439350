"""Tiny synthetic volumes shared by the transform tests (imported as ``tests.transforms.synthetic_volumes``).

Boxes placed in world millimetres (so "left" is the patient's left whatever the array orientation), anisotropic
voxels, and an image whose intensity equals the label value, so image/label alignment after a warp can be read off
voxel by voxel; and six ellipsoid label maps, smoothly deformed copies of one base, for the anatomical model.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from scripts.transforms.anatomical_variability import build_variability_model
from scripts.transforms.spatial.bspline_deform import RandBSplineDeform
from scripts.transforms.variability_model import AnatomicalVariabilityModel

SPACING = (1.1, 1.1, 2.6)


AFFINE_RAS = np.diag([*SPACING, 1.0])
AFFINE_RAS[:3, 3] = (-17.0, -20.0, 5.0)
AFFINE_LPS = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
AFFINE_LPS[:3, 3] = (17.0, 20.0, 5.0)
# World x (left-right) along array axis 1, world y along array axis 0: the flip must not assume axis 0.
AFFINE_PERMUTED = np.array([[0.0, 1.1, 0.0, -15.0], [1.1, 0.0, 0.0, -17.0], [0.0, 0.0, 2.6, 0.0], [0, 0, 0, 1.0]])

# value: (low corner, high corner) in mm relative to the volume's world centre; odd = patient's left (-x in RAS).
# Deliberately asymmetric, so a flip moves every centroid.
BOXES_MM = {
    1: ((-14.0, 2.0, -12.0), (-6.0, 10.0, 10.0)),
    2: ((3.0, 1.0, -8.0), (12.0, 9.0, 12.0)),
    5: ((-16.5, -6.0, -6.0), (-11.0, 0.0, 8.0)),
    7: ((-10.0, -14.0, -10.0), (-2.0, -5.0, 12.0)),
    8: ((2.0, -15.0, -12.0), (9.0, -7.0, 9.0)),
}


def phantom(
    affine: np.ndarray = AFFINE_RAS, shape: tuple[int, int, int] = (32, 32, 16), label_dtype: torch.dtype = torch.uint8
) -> tuple[MetaTensor, MetaTensor]:
    """(image, label) MetaTensors (1, X, Y, Z); image intensity == label value."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    centre = affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0) + affine[:3, 3]
    rel = world - centre
    label = np.zeros(shape, dtype=np.uint8)
    for value, (lo, hi) in BOXES_MM.items():
        inside = np.all((rel >= lo) & (rel < hi), axis=-1)
        label[inside] = value
    aff = torch.as_tensor(affine, dtype=torch.float64)
    lab = MetaTensor(torch.from_numpy(label)[None].to(label_dtype), affine=aff.clone())
    img = MetaTensor(torch.from_numpy(label)[None].float(), affine=aff.clone())
    return img, lab


def interior(label: torch.Tensor) -> torch.Tensor:
    """Voxels of (X, Y, Z) ``label`` whose 6 neighbours carry the same value (borders excluded)."""
    lab = label
    mask = torch.ones_like(lab, dtype=torch.bool)
    for axis in range(3):
        for shift in (1, -1):
            mask &= torch.roll(lab, shift, axis) == lab
    mask[0], mask[-1], mask[:, 0], mask[:, -1], mask[:, :, 0], mask[:, :, -1] = (False,) * 6
    return mask


def centroid_world(label: MetaTensor, value: int) -> np.ndarray:
    idx = np.argwhere(label[0].numpy() == value).mean(0)
    aff = label.affine.numpy()
    return aff[:3, :3] @ idx + aff[:3, 3]


def assert_aligned(out: dict[str, Any], original_label: MetaTensor) -> None:
    """Image (linear), its nearest copy and the label come from one draw and one resampling each."""
    lab, img, img_nn = out["label"], out["image"], out["image_nn"]
    assert isinstance(lab, MetaTensor) and isinstance(img, MetaTensor)
    assert lab.dtype == original_label.dtype and img.dtype == torch.float32
    torch.testing.assert_close(lab.affine, original_label.affine)
    torch.testing.assert_close(img.affine, original_label.affine)
    assert set(torch.unique(lab).tolist()) <= set(torch.unique(original_label).tolist())
    # nearest-sampled image == label everywhere: same sampling positions for every key
    assert torch.equal(img_nn.as_tensor().long(), lab.as_tensor().long())
    inner = interior(lab[0].as_tensor())
    assert inner.sum() > 100
    err = (img[0].as_tensor() - lab[0].as_tensor().float()).abs()[inner]
    assert (err < 0.5).float().mean() > 0.98, f"linear image off the label inside structures: {err.max()}"
    assert not torch.equal(lab.as_tensor(), original_label.as_tensor()), "the transform did nothing"


def warp_dict(img: MetaTensor, lab: MetaTensor) -> dict[str, Any]:
    return {"image": img.clone(), "label": lab.clone(), "image_nn": img.clone()}


KEYS3 = ["image", "label", "image_nn"]

MODES3 = ("bilinear", "nearest", "nearest")


def smooth_image() -> MetaTensor:
    img, _ = phantom()
    x = torch.linspace(0.0, 1.0, 32).view(32, 1, 1)
    return MetaTensor((img.as_tensor() * 10.0 + 5.0 + x * 3.0).float(), affine=img.affine.clone())


def tiny_model() -> AnatomicalVariabilityModel:
    comps = np.zeros((2, 3, 4, 4, 4), dtype=np.float32)
    comps[0, 0] = comps[1, 1] = 1.0 / 8.0  # unit norm: 64 voxels * (1/8)^2 = 1
    return AnatomicalVariabilityModel(
        comps, np.array([4.0, 1.0]), np.diag([5.0, 5.0, 5.0, 1.0]), np.zeros(3), np.zeros((3, 4, 4, 4)), 3
    )


ANAT_SPACING = (2.0, 2.0, 4.0)


def ellipsoid_label(shape: tuple[int, int, int] = (40, 40, 20)) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, ANAT_SPACING)], indexing="ij")
    centre = [(n - 1) * s / 2 for n, s in zip(shape, ANAT_SPACING)]
    label = np.zeros(shape, np.uint8)
    specs = [
        (1, (-12, 5, 0), (6, 6, 25)),
        (2, (12, 5, 0), (6, 6, 25)),
        (5, (-20, -8, 0), (5, 4, 20)),
        (6, (20, -8, 0), (5, 4, 20)),
        (7, (-8, -22, 0), (7, 7, 28)),
        (8, (8, -22, 0), (7, 7, 28)),
    ]
    for value, offset, radius in specs:
        inside = sum(((g - (c + o)) / r) ** 2 for g, c, o, r in zip(grids, centre, offset, radius)) <= 1
        label[inside] = value
    return label


def subject_affine(rng: np.random.RandomState) -> np.ndarray:
    affine = np.diag([*ANAT_SPACING, 1.0])
    affine[:3, 3] = np.array([-40.0, -40.0, -40.0]) + rng.uniform(-5, 5, 3)
    return affine


@functools.cache
def anatomy_data() -> dict[str, Any]:
    """Six subjects: a base label map and five smoothly deformed, translated copies; the model built from them.

    Built once per test session (every test module that needs it shares this result; do not modify it).
    """
    base = ellipsoid_label()
    rng = np.random.RandomState(0)
    deform = RandBSplineDeform((6, 6, 5), (5.0, 5.0, 4.0), locked_borders=1, prob=1.0, mode="nearest")
    deform.set_random_state(3)
    labels = []
    for i in range(6):
        lab = MetaTensor(torch.from_numpy(base)[None], affine=torch.as_tensor(np.diag([*ANAT_SPACING, 1.0])))
        out = deform(lab) if i else lab
        labels.append(MetaTensor(out.as_tensor(), affine=torch.as_tensor(subject_affine(rng))))
    start = time.perf_counter()
    model = build_variability_model(labels, model_spacing_mm=4.0, mesh_size=3, bspline_iterations=20)
    seconds = time.perf_counter() - start
    return {"base": base, "labels": labels, "model": model, "seconds": seconds}
