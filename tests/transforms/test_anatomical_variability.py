"""Tests of the anatomical-variability model builder (scripts/transforms/anatomical_variability.py,
label_registration.py, displacement_fit.py): the variance of deformed copies is recovered, that of translated
copies removed; a datalist works; bad arguments are refused.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scripts.transforms.anatomical_variability import (
    AnatomicalVariabilityModel,
    build_variability_model,
    build_variability_model_from_datalist,
)

from tests.transforms.synthetic_volumes import anatomy_data, subject_affine


@pytest.fixture(scope="module")
def anatomy() -> dict[str, Any]:
    """The six-subject anatomy and its model (built once per session, see ``anatomy_data``)."""
    return anatomy_data()


def test_anatomical_model_recovers_variance(anatomy: dict[str, Any], tmp_path: Path) -> None:
    model: AnatomicalVariabilityModel = anatomy["model"]
    assert anatomy["seconds"] < 20.0
    assert model.num_subjects == 6 and model.num_components >= 3
    assert np.all(np.diff(model.eigenvalues_mm2) <= 0)
    flat = model.components.reshape(model.num_components, -1).astype(np.float64)
    np.testing.assert_allclose(flat @ flat.T, np.eye(model.num_components), atol=1e-4)
    # deformed copies: clearly non-zero shape variability (rms std of the displacement over the grid, mm) ...
    assert model.rms_std_mm > 0.2, model.rms_std_mm
    # ... whereas translated, undeformed copies give none: the affine part is removed
    rng = np.random.RandomState(1)
    rigid = [
        MetaTensor(torch.from_numpy(anatomy["base"])[None], affine=torch.as_tensor(subject_affine(rng)))
        for _ in range(3)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "no non-linear variability" may or may not fire
        rigid_model = build_variability_model(rigid, model_spacing_mm=4.0, mesh_size=3, bspline_iterations=20)
    assert rigid_model.rms_std_mm < 0.1 * model.rms_std_mm
    # round trip through .npz
    path = model.save(tmp_path / "model.npz")
    loaded = AnatomicalVariabilityModel.load(path)
    np.testing.assert_array_equal(loaded.components, model.components)
    np.testing.assert_array_equal(loaded.eigenvalues_mm2, model.eigenvalues_mm2)
    np.testing.assert_array_equal(loaded.affine, model.affine)
    assert loaded.info["mesh_size"] == [3, 3, 3]


def test_build_model_from_datalist(tmp_path: Path, anatomy: dict[str, Any]) -> None:
    entries = []
    for i, lab in enumerate(anatomy["labels"][:3]):
        nib.save(nib.Nifti1Image(lab[0].numpy(), lab.affine.numpy()), tmp_path / f"s{i}_label.nii.gz")
        entries.append({"image": f"s{i}_image.nii.gz", "label": f"s{i}_label.nii.gz"})
    (tmp_path / "datalist.json").write_text(json.dumps({"training": entries}))
    out = build_variability_model_from_datalist(
        str(tmp_path / "datalist.json"),
        str(tmp_path / "model.npz"),
        model_spacing_mm=4.0,
        mesh_size=3,
        bspline_iterations=10,
    )
    model = AnatomicalVariabilityModel.load(out)
    assert model.num_subjects == 3 and model.rms_std_mm > 0.0
    assert model.info["sources"][0].endswith("s0_label.nii.gz")


INVALID = [
    ("build-one-subject", lambda: build_variability_model([np.ones((4, 4, 4))]), ValueError, r"at least 2"),
    (
        "build-reference",
        lambda: build_variability_model([np.ones((4, 4, 4))] * 2, reference_index=2),
        ValueError,
        r"reference_index must be in \[0, 1\], not 2",
    ),
]


@pytest.mark.parametrize(("make", "error", "match"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_argument(make: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()
