"""Multi-atlas baseline: segmentation selects the similar atlases and recovers the target, and the command line
writes a label map on the target grid."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813 (the library's own spelling)
from scripts.studies.multi_atlas import atlases_from_datalist, segment, segment_file

from tests.studies.atlas_cases import (
    FAST,
    SHAPE,
    SPACING,
    deformed,
    known_affine,
    mean_dice,
    phantom,
    to_numpy,
    to_sitk,
)


def _write_nifti(arr: np.ndarray, path: Path, dtype: type = np.float32) -> str:
    affine = np.diag([SPACING, SPACING, SPACING, 1.0])
    affine[:3, 3] = (-90.0, -70.0, -50.0)
    nib.save(nib.Nifti1Image(arr.astype(dtype), affine), str(path))
    return str(path)


@pytest.fixture(scope="module")
def atlas_library(tmp_path_factory) -> tuple[Path, dict]:
    """A target and three atlases on disk: two deformed copies of the target's anatomy and one unrelated scan."""
    root = tmp_path_factory.mktemp("atlases")
    image, label = phantom()
    fixed, fixed_label = to_sitk(image), to_sitk(label, sitk.sitkUInt8)
    entries = []
    second = known_affine()
    second.SetTranslation((-5.0, 4.0, -3.0))
    for name, t in (("near", known_affine()), ("near2", second)):
        img, lab = deformed(fixed, fixed_label, t)
        entries.append(
            {
                "subject": name,
                "image": _write_nifti(to_numpy(img), root / f"{name}_img.nii.gz"),
                "label": _write_nifti(to_numpy(lab), root / f"{name}_lab.nii.gz", np.uint8),
            }
        )
    rng = np.random.default_rng(2)
    entries.append(
        {
            "subject": "far",
            "image": _write_nifti(rng.uniform(0, 300, SHAPE), root / "far_img.nii.gz"),
            "label": _write_nifti(np.roll(label, 10, axis=0), root / "far_lab.nii.gz", np.uint8),
        }
    )
    target = _write_nifti(image, root / "target.nii.gz")
    _write_nifti(label, root / "target_lab.nii.gz", np.uint8)
    (root / "datalist.json").write_text(
        json.dumps(
            {
                "training": [
                    {"subject": e["subject"], "image": Path(e["image"]).name, "label": Path(e["label"]).name}
                    for e in entries
                ]
            }
        )
    )
    return root, {"target": target, "entries": entries, "label": label}


@pytest.mark.parametrize("fusion", ["majority", "weighted"])
def test_segment_selects_similar_atlases_and_recovers_the_target(atlas_library, fusion):
    _, lib = atlas_library
    res = segment(lib["target"], lib["entries"], k=2, fusion=fusion, params=FAST)
    assert set(res.selected) == {"near", "near2"}
    assert res.similarity["far"] < min(res.similarity["near"], res.similarity["near2"])
    assert res.label.shape == SHAPE and res.label.dtype == np.uint8
    np.testing.assert_allclose(res.affine, nib.load(lib["target"]).affine)
    assert mean_dice(res.label, lib["label"]) > 0.85
    assert res.seconds > 0 and set(res.stage_seconds) == {"affine", "bspline", "fusion"}


def test_command_line_writes_the_label_and_refuses_to_overwrite(atlas_library):
    root, lib = atlas_library
    out = root / "cli" / "target_seg.nii.gz"
    overrides = {
        "working_spacing_mm": SPACING,
        "sampling_percentage": 0.1,
        "affine_shrink": [2, 1],
        "affine_sigmas_mm": [4.0, 0.0],
        "bspline_shrink": [1],
        "bspline_sigmas_mm": [0.0],
        "bspline_mesh_mm": 40.0,
        "bspline_iterations": 20,
    }
    record = segment_file(
        lib["target"], str(root / "datalist.json"), str(out), k=2, fusion="majority", exclude="far", **overrides
    )
    seg = nib.load(out)
    np.testing.assert_allclose(seg.affine, nib.load(lib["target"]).affine)
    assert set(record["selected"]) == {"near", "near2"} and "far" not in record["similarity_ncc"]
    assert json.loads((root / "cli" / "target_seg.json").read_text())["params"]["bspline_mesh_mm"] == 40.0
    with pytest.raises(FileExistsError, match="target_seg.nii.gz exists"):
        segment_file(lib["target"], str(root / "datalist.json"), str(out), k=2)


def test_bad_atlas_datalist_names_the_file(tmp_path):
    dl = tmp_path / "datalist.json"
    dl.write_text(json.dumps({"training": [{"subject": "a", "image": "a.nii.gz"}]}))
    with pytest.raises(ValueError, match=r"datalist.json: entry 0 of 'training' lacks"):
        atlases_from_datalist(dl)
    with pytest.raises(FileNotFoundError, match="missing.json: datalist not found"):
        atlases_from_datalist(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match="nope.nii.gz: file not found"):
        segment(tmp_path / "nope.nii.gz", [(str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"))], k=1)
