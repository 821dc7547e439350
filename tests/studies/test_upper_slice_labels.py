"""The upper-slice label volume and its dark part, on a small image made in the test (known answers)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scripts.studies.upper_slice_labels import ES_MF_LABELS, main, upper_slice_volumes


def _write(tmp_path, axcode_flip: bool = False):
    # 10 x 10 x 6 voxels of 2 x 2 x 5 mm (20 uL each); bright tissue except a dark block on the top two slices
    image = np.full((10, 10, 6), 100.0, dtype=np.float32)
    image[:5, :, 4:] = 5.0  # dark: under 0.15 x P99 (100)
    seg = np.zeros((10, 10, 6), dtype=np.int16)
    seg[:, :2, 4:] = ES_MF_LABELS[0]  # 10 x 2 x 2 = 40 voxels on the top two slices, 20 of them dark
    seg[:, :2, :2] = ES_MF_LABELS[1]  # 40 voxels on the bottom two slices: never counted with n_slices=2
    seg[0, 5, 5] = 1  # a psoas voxel: not an ES+MF label
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    if axcode_flip:  # third axis running inferior: the "top" slices are then the first ones
        affine[2, 2] = -5.0
        image, seg = image[..., ::-1].copy(), seg[..., ::-1].copy()
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "ip.nii.gz")
    run = tmp_path / "run" / "s1"
    run.mkdir(parents=True)
    nib.save(nib.Nifti1Image(seg, affine), run / "s1_seg.nii.gz")
    return tmp_path / "ip.nii.gz", run / "s1_seg.nii.gz"


@pytest.mark.parametrize("flip", [False, True])
def test_counts_the_superior_slices_and_their_dark_part(tmp_path, flip):
    image, seg = _write(tmp_path, flip)
    v = upper_slice_volumes(seg, image, n_slices=2)
    assert v["volume_ml"] == pytest.approx(40 * 0.02)
    assert v["dark_ml"] == pytest.approx(20 * 0.02)
    assert v["dark_share"] == pytest.approx(0.5)
    assert upper_slice_volumes(seg, image, n_slices=6)["volume_ml"] == pytest.approx(80 * 0.02)


def test_rejects_other_grids_and_bad_parameters(tmp_path):
    image, seg = _write(tmp_path)
    other = tmp_path / "other.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 5), np.int16), np.diag([2.0, 2.0, 5.0, 1.0])), other)
    with pytest.raises(ValueError, match="grid differs"):
        upper_slice_volumes(other, image)
    with pytest.raises(ValueError, match="n_slices"):
        upper_slice_volumes(seg, image, n_slices=0)
    with pytest.raises(ValueError, match="dark_fraction"):
        upper_slice_volumes(seg, image, dark_fraction=1.5)


def test_command_tabulates_each_run_and_names_a_missing_one(tmp_path):
    image, _ = _write(tmp_path)
    text = main(str(image), str(tmp_path / "run"), "s1", n_slices=2, out_csv=str(tmp_path / "t.csv"))
    assert "0.8" in text and (tmp_path / "t.csv").is_file()
    with pytest.raises(FileNotFoundError, match="no label map"):
        main(str(image), str(tmp_path / "missing"), "s1")
