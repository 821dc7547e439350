"""Working-grid probabilities to input-grid labels slab by slab (scripts/pipeline/inverted_argmax.py): the labels,
affine and meta of ``Invertd`` + ``AsDiscreted(argmax=True)``, voxel for voxel, with bounded slabs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import AsDiscreted, Compose, Invertd, Orientationd, Spacingd
from scripts.pipeline import inverted_argmax as ia
from scripts.pipeline.inverted_argmax import (
    UNDECIDED,
    InvertedArgmax,
    InvertedArgmaxd,
    interior_labels,
    resample_argmax,
    slab_planes,
)

from tests.conftest import BUNDLE_ROOT


def _lps_image(shape=(46, 38, 21), rotate_deg: float = 0.0) -> MetaTensor:
    """An LPS (x and y reversed against RAS), anisotropic 1.3 x 0.9 x 3.1 mm input, optionally a little oblique."""
    aff = np.diag([-1.3, -0.9, 3.1, 1.0])
    a = np.deg2rad(rotate_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    aff[:3, :3] = rot @ aff[:3, :3]
    aff[:3, 3] = [40.0, 30.0, -50.0]
    img = MetaTensor(torch.rand(1, *shape), affine=torch.as_tensor(aff))
    img.meta.update({"original_affine": torch.as_tensor(aff), "spatial_shape": np.array(shape), "filename_or_obj": "x"})
    return img


def _preprocess(img: MetaTensor, pixdim=(2.0, 2.0, 4.0)) -> tuple[Compose, MetaTensor]:
    pre = Compose([Orientationd("image", axcodes="RAS"), Spacingd("image", pixdim=pixdim, mode="bilinear")])
    return pre, pre({"image": img})["image"]


def _probabilities(shape, ties: bool = False, seed: int = 0) -> MetaTensor:
    """Smooth 9-channel softmax probabilities (blobs, like a network's), optionally rounded to 0.05 for many ties."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.nn.functional.interpolate(
        torch.randn(1, 9, 5, 4, 3, generator=g) * 5, size=tuple(shape), mode="trilinear"
    )
    p = torch.softmax(logits[0], 0)
    return MetaTensor(torch.round(p * 20) / 20 if ties else p)


def _reference(pre: Compose, image: MetaTensor, probs: MetaTensor) -> MetaTensor:
    d = Invertd("pred", transform=pre, orig_keys="image", nearest_interp=False)({"image": image, "pred": probs.clone()})
    return AsDiscreted("pred", argmax=True)(d)["pred"]


@pytest.mark.parametrize("interior_margin", [None, 1e-4])
@pytest.mark.parametrize("rotate_deg, ties", [(0.0, False), (0.0, True), (7.0, False)])
def test_labels_affine_and_meta_equal_invertd_then_argmax(interior_margin, rotate_deg, ties) -> None:
    pre, image = _preprocess(_lps_image(rotate_deg=rotate_deg))
    probs = _probabilities(image.shape[1:], ties=ties)
    ref = _reference(pre, image, probs)
    out = InvertedArgmaxd("pred", transform=pre, orig_keys="image", slab_bytes=2**20, interior_margin=interior_margin)(
        {"image": image, "pred": probs.clone()}
    )["pred"]
    assert out.dtype == torch.uint8 and out.shape == ref.shape == (1, 46, 38, 21)
    np.testing.assert_array_equal(out.numpy(), ref.numpy().astype(np.uint8))
    assert len(np.unique(out.numpy())) >= 5, "the case must hold several labels and boundaries"
    assert torch.equal(out.affine, ref.affine)
    np.testing.assert_allclose(out.affine.numpy(), image.meta["original_affine"].numpy(), atol=1e-6)
    assert out.applied_operations == [] and set(out.meta) == set(ref.meta)
    for k in ref.meta:
        assert str(out.meta[k]) == str(ref.meta[k]), k


def test_unchanged_working_grid_and_orientation_only_preprocessing() -> None:
    """Input already at the working spacing in RAS: no resampling, the argmax itself; no Spacingd at all: the
    fallback (inverse of each operation, then argmax) gives the same as Invertd too."""
    img = _lps_image()
    img.affine = torch.as_tensor(np.diag([2.0, 2.0, 4.0, 1.0]))
    pre, image = _preprocess(img)
    probs = _probabilities(image.shape[1:], seed=1)
    out = InvertedArgmax(pre)(probs, image)
    np.testing.assert_array_equal(out.numpy(), _reference(pre, image, probs).numpy().astype(np.uint8))
    pre2 = Compose([Orientationd("image", axcodes="RAS")])
    image2 = pre2({"image": _lps_image()})["image"]
    probs2 = _probabilities(image2.shape[1:], seed=2)
    out2 = InvertedArgmax(pre2)(probs2, image2)
    np.testing.assert_array_equal(out2.numpy(), _reference(pre2, image2, probs2).numpy().astype(np.uint8))
    assert torch.equal(out2.affine, image2.meta["original_affine"].to(out2.affine.dtype))


def test_slab_size_bounds_the_temporaries(monkeypatch) -> None:
    # reference geometry: 320 x 145 voxels per plane, 9 channels, 176 bytes per voxel -> 8 planes in 64 MiB
    assert slab_planes(320 * 145, 9) == 8
    assert slab_planes(320 * 145, 9, budget_bytes=2**20) == 1  # one plane even above the budget
    assert slab_planes(10, 9, budget_bytes=176 * 10 * 3) == 3
    with pytest.raises(ValueError):
        slab_planes(0, 9)
    seen = []
    real = ia._interpolated_slab

    def spy(probs, axes, d0, d1, *args):
        seen.append(d1 - d0)
        return real(probs, axes, d0, d1, *args)

    monkeypatch.setattr(ia, "_interpolated_slab", spy)
    probs = _probabilities((10, 9, 8))
    xform = torch.as_tensor(np.diag([0.5, 0.5, 0.5, 1.0]))
    budget = 176 * 18 * 16 * 3
    out = resample_argmax(probs.as_tensor(), xform, (20, 18, 16), slab_bytes=budget)
    assert seen == [3] * 6 + [2] and out.shape == (20, 18, 16)
    full = resample_argmax(probs.as_tensor(), xform, (20, 18, 16), slab_bytes=2**30, interior_margin=None)
    assert torch.equal(out, full)


def test_interior_labels_mark_blocks_that_need_interpolation() -> None:
    probs = torch.zeros(3, 4, 3, 2)
    probs[1] = 0.9
    probs[2] = 0.1
    probs[1, 2:], probs[2, 2:] = 0.1, 0.9  # label 1 for x < 2, label 2 for x >= 2
    probs[1, 0, 0, 0], probs[2, 0, 0, 0] = 0.50002, 0.49998  # label 1 by a margin of 4e-5 only
    out = interior_labels(probs, margin=1e-4)
    assert out[0, 0, 0] == UNDECIDED and out[0, 2, 1] == 1  # the thin margin leaves its block undecided
    assert (out[1] == UNDECIDED).all()  # blocks [1:3] straddle the boundary
    assert (out[2:] == 2).all()  # the last plane's block repeats it (border padding)
    assert interior_labels(probs, margin=1e-5)[0, 0, 0] == 1


def test_dictionary_version_checks_its_arguments() -> None:
    pre, image = _preprocess(_lps_image())
    with pytest.raises(ValueError, match="orig_keys"):
        InvertedArgmaxd(["a", "b"], transform=pre, orig_keys=["image", "x", "y"])
    with pytest.raises(ValueError, match="interior_margin"):
        InvertedArgmax(pre, interior_margin=1e-9)
    with pytest.raises(ValueError, match="C, X, Y, Z"):
        InvertedArgmax(pre)(torch.rand(9, 4, 4), image)


def test_inference_config_uses_it_after_softmax() -> None:
    p = ConfigParser()
    p.read_config(str(BUNDLE_ROOT / "configs" / "inference.json"))
    p["bundle_root"] = str(BUNDLE_ROOT)
    names = [type(t).__name__ for t in p.get_parsed_content("postprocessing").transforms]
    assert "Invertd" not in names and "AsDiscreted" not in names
    i = names.index("InvertedArgmaxd")
    assert names[0] == "Activationsd" and names[i + 1 : i + 4] == [
        "NameVertebraeFromSacrumd",
        "MergeSpineLabelsd",
        "KeepLargestComponentPerLabeld",
    ]
