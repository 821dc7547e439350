"""Tests of scripts.quantification.statistics: known-answer statistics on boxes, grids, erosion, phantom."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from scripts.labels import MUSCLES, label_value
from scripts.phantom import Acquisition, generate_subject
from scripts.quantification.columns import PROVENANCE_KEYS, SLICE_COLUMNS, TABLE_COLUMNS
from scripts.quantification.formulas import fat_fraction_from_water_fat
from scripts.quantification.statistics import quantify_muscles, trim_fat_border

from tests.quantification.quant_cases import BOX, PROV, SHAPE, box_case, row_of


def test_box_known_statistics():
    label, ff = box_case()
    res = quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV, subject="s1")
    row = row_of(res, "psoas", "left")
    values = np.concatenate([np.full(100, 0.8), np.full(400, 0.2)])  # independent of the implementation
    assert row.n_voxels == 500 and row.n_excluded_voxels == 0
    assert row.ff_mean_pct == pytest.approx(32.0, abs=1e-5)  # (100 x 0.8 + 400 x 0.2) / 500
    assert row.ff_mean_pct == pytest.approx(100 * values.mean(), abs=1e-5)
    assert row.ff_median_pct == pytest.approx(100 * np.median(values), abs=1e-5)
    assert row.ff_sd_pct == pytest.approx(24.0, abs=1e-5)  # 0.6 x sqrt(0.2 x 0.8)
    assert row.ff_sd_pct == pytest.approx(100 * values.std(), abs=1e-5)
    assert row.ff_p25_pct == pytest.approx(100 * np.percentile(values, 25), abs=1e-5)
    assert row.ff_p75_pct == pytest.approx(100 * np.percentile(values, 75), abs=1e-5)
    # core: 1 voxel in-plane -> x 3-10, y 3-10, all 5 slices = 8 x 8 x 5 = 320; stripe keeps x = 3: 40 voxels of 0.8
    assert row.n_core_voxels == 320
    assert row.ff_core_mean_pct == pytest.approx(100 * (40 * 0.8 + 280 * 0.2) / 320, abs=1e-5)  # 27.5
    assert row.volume_ml == pytest.approx(0.5)
    assert (row.slice_first, row.slice_last, row.z_first_mm, row.z_last_mm) == (1, 5, 1.0, 5.0)
    assert row.status == "ok" and row["flags"] == ""
    assert row.erosion == "none" and row.core_erosion == "1 voxel in-plane"
    for key, value in PROV.items():
        assert row[key] == value
    assert list(res.table.columns) == list(TABLE_COLUMNS)
    assert list(res.slices.columns) == list(SLICE_COLUMNS)
    assert len(res.table) == 12 and res.table.subject.eq("s1").all()


def test_core_erosion_follows_the_slice_axis_of_the_affine():
    """Slices along array axis 0 (world z): erosion must spare axis 0 and erode axes 1 and 2."""
    label, ff = box_case()
    perm = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)  # array axis 0 -> world z
    res = quantify_muscles(label, perm, ff, perm, PROV)
    row = row_of(res, "psoas", "left")
    # in-plane axes are 1 (10 -> 8) and 2 (5 -> 3); axis 0 keeps 10 slices; stripe x = 2, 3 survives whole
    assert row.n_core_voxels == 10 * 8 * 3
    assert row.ff_core_mean_pct == pytest.approx(100 * (2 * 24 * 0.8 + 8 * 24 * 0.2) / 240, abs=1e-5)
    assert (row.slice_first, row.slice_last) == (2, 11)
    assert len(res.slices[res.slices.label == 1]) == 10


def test_anisotropic_volume_csa_and_erosion_mm():
    label, ff = box_case()
    aff = np.diag([0.5, 1.0, 3.0, 1.0])
    res = quantify_muscles(label, aff, ff, aff, PROV, erosion_mm=1.0)
    row = row_of(res, "psoas", "left")
    assert row.volume_ml == pytest.approx(500 * 0.5 * 1.0 * 3.0 / 1000.0)
    # 1 mm in-plane: 2 voxels of 0.5 mm along x, 1 voxel of 1 mm along y -> 6 x 8 x 5; stripe x = 2, 3 is gone
    assert row.n_core_voxels == 6 * 8 * 5
    assert row.ff_core_mean_pct == pytest.approx(20.0, abs=1e-5)
    assert row.core_erosion == "1 mm in-plane"
    sl = res.slices[res.slices.label == 1]
    assert sl.slice.tolist() == [1, 2, 3, 4, 5]
    assert np.allclose(sl.csa_cm2, 100 * 0.5 * 1.0 / 100.0)
    assert np.allclose(sl.z_mm, [3.0, 6.0, 9.0, 12.0, 15.0])
    assert np.allclose(sl.ff_mean_pct, 32.0)


def test_nan_voxels_excluded_and_counted():
    label, ff = box_case()
    ff[5, 5, 1:6] = np.nan  # 5 core voxels of 0.2
    ff[2, 2, 1:3] = np.nan  # 2 edge voxels of 0.8
    res = quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV)
    row = row_of(res, "psoas", "left")
    values = ff[BOX].astype(np.float64)
    assert row.n_voxels == 500 and row.n_excluded_voxels == 7
    assert row.volume_ml == pytest.approx(0.5)  # excluded voxels are still muscle
    assert row.ff_mean_pct == pytest.approx(100 * np.nanmean(values), abs=1e-5)
    assert row.ff_median_pct == pytest.approx(100 * np.nanmedian(values), abs=1e-5)
    assert row.ff_sd_pct == pytest.approx(100 * np.nanstd(values), abs=1e-5)
    assert row.n_core_voxels == 320 - 5
    assert row.ff_core_mean_pct == pytest.approx(100 * (40 * 0.8 + 275 * 0.2) / 315, abs=1e-5)
    sl = res.slices[res.slices.label == 1].set_index("slice")
    assert sl.loc[1, "n_excluded_voxels"] == 2 and sl.loc[4, "n_excluded_voxels"] == 1


def test_all_voxels_excluded_is_not_zero():
    label, ff = box_case()
    ff[BOX] = np.nan
    row = row_of(quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV), "psoas", "left")
    assert math.isnan(row.ff_mean_pct) and math.isnan(row.ff_core_mean_pct)
    assert row.n_voxels == 500 and row.n_excluded_voxels == 500 and row.status == "no_valid_ff"


def test_label_at_twice_the_in_plane_resolution():
    label, ff = box_case()
    fine = np.zeros((28, 28, 7), np.uint8)
    fine[4:24, 4:24, 1:6] = 1  # FF voxel i covers fine voxels 2i and 2i + 1
    fine_aff = np.diag([0.5, 0.5, 1.0, 1.0])
    fine_aff[:2, 3] = -0.25  # fine voxel centres at -0.25 + 0.5 a: two per FF voxel, same outer edges
    ref = quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV).table
    res = quantify_muscles(fine, fine_aff, ff, np.eye(4), PROV)
    cols = ["ff_mean_pct", "ff_core_mean_pct", "n_voxels", "volume_ml", "slice_first", "slice_last"]
    pd.testing.assert_frame_equal(res.table[cols], ref[cols])
    assert "nearest neighbour" in res.meta["label_mapping"]


def test_label_in_lps_storage_maps_by_affine_not_index():
    _, ff = box_case()
    label = np.zeros(SHAPE, np.uint8)
    label[1:11, 3:13, 1:6] = 1  # off-centre, so a flipped array indexed as if RAS would select other voxels
    # LPS storage of the same world: x = 13 - i, y = 13 - j
    lps = label[::-1, ::-1, :].copy()
    lps_aff = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps_aff[:2, 3] = 13.0
    ref = quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV).table
    res = quantify_muscles(lps, lps_aff, ff, np.eye(4), PROV).table
    pd.testing.assert_frame_equal(res, ref)
    naive = quantify_muscles(lps, np.eye(4), ff, np.eye(4), PROV).table
    assert naive.loc[0, "ff_mean_pct"] != pytest.approx(ref.loc[0, "ff_mean_pct"])


def test_missing_muscle_is_nan_and_status_missing():
    label, ff = box_case()
    res = quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV)
    row = row_of(res, "iliacus", "left")
    stats = [
        "ff_mean_pct",
        "ff_median_pct",
        "ff_sd_pct",
        "ff_p25_pct",
        "ff_p75_pct",
        "ff_core_mean_pct",
        "z_first_mm",
        "z_last_mm",
    ]
    assert all(math.isnan(row[c]) for c in stats)
    assert row.n_voxels == 0 and row.volume_ml == 0.0 and row.status == "missing"
    assert pd.isna(row.slice_first) and pd.isna(row.slice_last)
    assert not row.truncated_inferior and not row.truncated_superior
    mean = row_of(res, "psoas", "mean")  # right psoas is missing: no L/R mean, never the left value alone
    assert math.isnan(mean.ff_mean_pct) and mean.status == "missing" and "right:missing" in mean["flags"]
    assert res.slices.label.unique().tolist() == [1]


def test_lr_mean_row_is_mean_of_sides():
    label = np.zeros(SHAPE, np.uint8)
    ff = np.zeros(SHAPE, np.float32)
    left, right = label_value("quadratus_lumborum", "left"), label_value("quadratus_lumborum", "right")
    label[1:5, 2:8, 1:4], ff[1:5, 2:8, 1:4] = left, 0.1  # 72 voxels
    label[8:13, 2:8, 2:6], ff[8:13, 2:8, 2:6] = right, 0.3  # 120 voxels: a voxel-weighted mean would be 22.5
    res = quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV)
    mean = row_of(res, "quadratus_lumborum", "mean")
    assert mean.ff_mean_pct == pytest.approx(20.0, abs=1e-5)
    assert mean.aggregation == "lr_mean" and pd.isna(mean.label)
    assert mean.n_voxels == 72 + 120 and mean.volume_ml == pytest.approx(0.192)
    assert (mean.slice_first, mean.slice_last) == (1, 5)
    for c in ("ff_median_pct", "ff_core_mean_pct"):
        sides = res.table[(res.table.muscle == "quadratus_lumborum") & (res.table.side != "mean")][c]
        assert mean[c] == pytest.approx(sides.mean())
    assert res.table[res.table.side == "mean"].muscle.tolist() == list(MUSCLES)


def test_truncated_on_the_label_grid_is_flagged():
    """A label cut by its own smaller field of view is truncated even where the FF grid extends further."""
    label, ff = box_case()
    crop = label[:, :, 1:6]  # the label grid covers slices 1-5 only; the box fills them
    aff = np.eye(4)
    aff[2, 3] = 1.0
    row = row_of(quantify_muscles(crop, aff, ff, np.eye(4), PROV), "psoas", "left")
    assert row.truncated_inferior and row.truncated_superior
    assert row.n_voxels == 500


def test_invalid_inputs():
    label, ff = box_case()
    with pytest.raises(ValueError, match="provenance lacks"):
        quantify_muscles(label, np.eye(4), ff, np.eye(4), {"ff_method": "x"})
    with pytest.raises(ValueError, match="fraction"):
        quantify_muscles(label, np.eye(4), ff * 100, np.eye(4), PROV)
    with pytest.raises(ValueError, match="3D"):
        quantify_muscles(label[..., 0], np.eye(4), ff, np.eye(4), PROV)
    with pytest.raises(ValueError, match="erosion_mm"):
        quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV, erosion_mm=-1.0)


def test_phantom_matches_truth():
    subj = generate_subject(5, Acquisition.preset("tiny", orientation="LPS"))
    water, fat = subj.images["water"], subj.images["fat"]
    ff = fat_fraction_from_water_fat(water, fat, min_denominator=0.0)  # the truth's rule: every F + W > 0 voxel
    res = quantify_muscles(subj.images["label"], subj.affine, ff, subj.affine, PROV, subject=subj.subject_id)
    merged = res.table.merge(subj.truth, on=["muscle", "side"], suffixes=("", "_truth"))
    assert len(merged) == 12
    np.testing.assert_allclose(merged.ff_mean_pct, merged.ff_mean_pct_truth, atol=1e-3)
    np.testing.assert_allclose(merged.volume_ml, merged.volume_ml_truth, rtol=1e-9)
    assert (merged.n_voxels == merged.n_voxels_truth).all()
    assert (merged.truncated_inferior == merged.truncated_inferior_truth).all()
    assert (merged.truncated_superior == merged.truncated_superior_truth).all()


def test_provenance_columns_and_extras():
    label, ff = box_case()
    res = quantify_muscles(label, np.eye(4), ff, np.eye(4), {**PROV, "assumption": None, "ff_threshold": 0.05})
    assert res.table.assumption.eq("none").all() and res.table.ff_threshold.eq("0.05").all()
    assert set(PROVENANCE_KEYS) <= set(res.table.columns)


def test_fat_border_trim_known_answer():
    # one slice: a 6x6 muscle (FF 0.1, x and y 2-7) in fat (FF 0.95); its row y = 2 is a partial-volume rim (FF 0.8)
    # against the fat, its row y = 7 borders lean unlabelled tissue (FF 0.1, y >= 8) and holds one fatty voxel (0.9);
    # an interior streak voxel is 0.9; one rim voxel is 0.65 (below the 0.7 threshold)
    ff = np.full((12, 12, 3), 0.95, np.float32)
    ff[:, 8:, :] = 0.1  # lean tissue right of the muscle (x >= 8)
    label = np.zeros(ff.shape, np.uint8)
    label[2:8, 2:8, 1] = 1
    ff[2:8, 2:8, 1] = 0.1
    ff[2:8, 2, 1] = 0.8  # rim against fat: trimmed, except ...
    ff[4, 2, 1] = 0.65  # ... this one, below the threshold
    ff[5, 7, 1] = 0.9  # fatty voxel on the border with lean tissue: kept
    ff[4, 4, 1] = 0.9  # interior streak: kept
    trimmed = trim_fat_border(label, ff, slice_axis=2, trim_ff=0.7)
    removed = (label == 1) & (trimmed == 0)
    assert removed.sum() == 5 and removed[2:8, 2, 1].sum() == 5 and not removed[4, 2, 1]
    # the columns x = 2 and x = 7 border fat too, but their voxels are lean (0.1) and stay
    res = quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV, border_trim_ff=0.7)
    row = row_of(res, "psoas", "left")
    assert row.n_trimmed_voxels == 5 and row.n_voxels == 31
    # kept: 28 lean voxels, the 0.65 rim voxel and the two 0.9 voxels
    assert row.ff_mean_pct == pytest.approx(100 * (28 * 0.1 + 0.65 + 0.9 + 0.9) / 31, abs=1e-4)
    assert "FF > 0.7" in row.border_trim
    plain = row_of(quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV), "psoas", "left")
    assert plain.n_trimmed_voxels == 0 and plain.n_voxels == 36 and plain.border_trim == "none"
    with pytest.raises(ValueError, match="trim_ff"):
        trim_fat_border(label, ff, 2, trim_ff=0.9, fat_ff=0.8)


@pytest.mark.parametrize("slice_axis", [0, 2])
def test_border_trim_in_the_labels_box_equals_the_whole_grid_rule(slice_axis) -> None:
    rng = np.random.default_rng(11 + slice_axis)
    label = np.zeros((20, 18, 9), dtype=np.uint8)
    label[0:9, 3:12, 2:8] = 1  # touches the grid's edge on axis 0
    label[11:17, 6:15, 1:9] = 2
    ff = rng.uniform(0.0, 1.0, label.shape).astype(np.float32)
    ff[rng.uniform(size=label.shape) < 0.05] = np.nan
    # the rule on the whole grid, as before issue #24
    f = np.nan_to_num(ff, nan=0.0)
    plane = np.expand_dims(ndimage.generate_binary_structure(2, 1), axis=slice_axis)
    near_fat = ndimage.binary_dilation((label == 0) & (f > 0.8), structure=plane)
    expected = np.where((label != 0) & near_fat & (f > 0.7), 0, label)
    got = trim_fat_border(label, ff, slice_axis, trim_ff=0.7)
    assert (got != label).any()
    np.testing.assert_array_equal(got, expected)
    assert (trim_fat_border(np.zeros_like(label), ff, slice_axis) == 0).all()
