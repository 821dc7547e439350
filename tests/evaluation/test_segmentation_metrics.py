"""Tests of scripts.evaluation.segmentation_metrics on masks with answers worked out by hand, and against MONAI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance
from scipy import ndimage
from scripts.evaluation.segmentation_metrics import (
    METRIC_COLUMNS,
    HausdorffDistanceMMMetric,
    RelativeVolumeDifferenceMetric,
    SurfaceDistanceMMMetric,
    compute_binary_metrics,
    compute_label_metrics,
    compute_relative_volume_difference,
    dice,
    evaluate_label_files,
    relative_volume_difference,
)
from scripts.evaluation.surface_distance import hausdorff_distance, mean_surface_distance


def _box(shape: tuple[int, ...], *slices: slice) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slices)] = True
    return mask


def _blob(seed: int, shape: tuple[int, int, int] = (24, 20, 12)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=2.5)
    return smooth > 0.02


def _onehot(mask: np.ndarray) -> torch.Tensor:
    m = torch.as_tensor(mask, dtype=torch.float32)
    return torch.stack([1 - m, m])[None]


# --- Dice and RVD, exact fractions -----------------------------------------------------------------------------------


def test_dice_two_boxes_exact_fraction() -> None:
    # pred 4x4x2 = 32 voxels inside ref 4x4x4 = 64 voxels: Dice = 2*32 / (32 + 64) = 2/3
    pred = _box((6, 6, 6), slice(0, 4), slice(0, 4), slice(0, 2))
    ref = _box((6, 6, 6), slice(0, 4), slice(0, 4), slice(0, 4))
    assert dice(pred, ref) == pytest.approx(2 / 3, abs=1e-12)
    # partially overlapping equal boxes: 4x4x4 each, shifted by 2 in x, overlap 2x4x4 = 32: Dice = 64 / 128
    ref2 = _box((8, 6, 6), slice(2, 6), slice(0, 4), slice(0, 4))
    pred2 = _box((8, 6, 6), slice(0, 4), slice(0, 4), slice(0, 4))
    assert dice(pred2, ref2) == 0.5


def test_rvd_exact_and_signed() -> None:
    pred = _box((6, 6, 6), slice(0, 4), slice(0, 4), slice(0, 2))  # 32 voxels
    ref = _box((6, 6, 6), slice(0, 4), slice(0, 4), slice(0, 4))  # 64 voxels
    assert relative_volume_difference(pred, ref, (2.0, 2.0, 5.0)) == -0.5  # (32 - 64) / 64
    assert relative_volume_difference(ref, pred, (2.0, 2.0, 5.0)) == 1.0  # (64 - 32) / 32: over-segmentation > 0


def test_volumes_in_ml_use_anisotropic_spacing() -> None:
    pred = _box((6, 6, 6), slice(0, 4), slice(0, 4), slice(0, 2))  # 32 voxels of 2*2*5 = 20 mm^3 = 0.64 ml
    ref = _box((6, 6, 6), slice(0, 4), slice(0, 4), slice(0, 4))  # 1.28 ml
    m = compute_binary_metrics(pred, ref, (2.0, 2.0, 5.0))
    assert m.vol_pred_ml == pytest.approx(0.64)
    assert m.vol_ref_ml == pytest.approx(1.28)
    assert m.rvd == -0.5 and m.dice == pytest.approx(2 / 3)


# --- empty masks ------------------------------------------------------------------------------------------------------


def test_empty_prediction() -> None:
    ref = _box((5, 5, 5), slice(1, 4), slice(1, 4), slice(1, 4))
    pred = np.zeros_like(ref)
    m = compute_binary_metrics(pred, ref, (1.0, 1.0, 3.0))
    assert m.dice == 0.0 and m.rvd == -1.0
    assert math.isinf(m.hd_mm) and math.isinf(m.hd95_mm) and math.isinf(m.assd_mm)
    assert m.pred_empty and not m.ref_empty and m.vol_pred_ml == 0.0


def test_empty_reference() -> None:
    pred = _box((5, 5, 5), slice(1, 4), slice(1, 4), slice(1, 4))
    ref = np.zeros_like(pred)
    m = compute_binary_metrics(pred, ref, (1.0, 1.0, 3.0))
    assert m.dice == 0.0 and m.rvd == math.inf
    assert math.isinf(m.hd_mm) and math.isinf(m.assd_mm)
    assert m.ref_empty and not m.pred_empty


def test_both_empty_is_nan_and_flagged() -> None:
    empty = np.zeros((4, 4, 4), bool)
    m = compute_binary_metrics(empty, empty, (1.0, 1.0, 1.0))
    for value in (m.dice, m.rvd, m.hd_mm, m.hd95_mm, m.assd_mm):
        assert math.isnan(value)
    assert m.pred_empty and m.ref_empty


# --- agreement with MONAI ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_monai_on_random_blobs(seed: int) -> None:
    pred, ref = _blob(seed), _blob(seed + 100)
    assert pred.any() and ref.any() and not np.array_equal(pred, ref)
    spacing = (0.8, 1.2, 3.0)
    yp, y = _onehot(pred), _onehot(ref)
    assert dice(pred, ref) == pytest.approx(compute_dice(yp, y, include_background=False).item(), rel=1e-6)
    hd = compute_hausdorff_distance(yp, y, spacing=spacing).item()
    hd95 = compute_hausdorff_distance(yp, y, spacing=spacing, percentile=95).item()
    assd = compute_average_surface_distance(yp, y, spacing=spacing, symmetric=True).item()
    assert hausdorff_distance(pred, ref, spacing) == pytest.approx(hd, rel=1e-5)
    assert hausdorff_distance(pred, ref, spacing, percentile=95) == pytest.approx(hd95, rel=1e-5)
    assert mean_surface_distance(pred, ref, spacing) == pytest.approx(assd, rel=1e-5)


# --- invalid input ----------------------------------------------------------------------------------------------------


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="same shape"):
        dice(np.zeros((3, 3)), np.zeros((3, 4)))


def test_label_map_passed_as_mask_raises() -> None:
    with pytest.raises(ValueError, match="binary"):
        dice(np.array([0, 1, 2]), np.array([0, 1, 1]))


# --- label maps -> table ----------------------------------------------------------------------------------------------


def _label_phantom() -> np.ndarray:
    ref = np.zeros((20, 12, 6), dtype=np.int16)
    for value in range(1, 9):
        x0 = 2 * (value - 1) + 1  # 8 slabs, one voxel apart, 1 voxel thick in x, 8 x 4 in y, z
        ref[x0 : x0 + 1, 2:10, 1:5] = value
    return ref


def test_label_table_layout_and_values() -> None:
    ref = _label_phantom()
    pred = ref.copy()
    pred[pred == 3] = 0  # iliacus_left missing in the prediction
    pred[7, 2:10, 1:3] = 0  # iliacus_right (label 4, the slab at x = 7): erase z 1..2 of 1..4, half of it
    spacing = (1.0, 1.0, 3.0)
    df = compute_label_metrics(pred, ref, spacing)
    assert list(df.columns) == list(METRIC_COLUMNS)
    assert len(df) == 8 + 4
    sides = df.set_index(["muscle", "side"])
    assert sides.loc[("psoas", "left"), "label"] == 1
    assert sides.loc[("erector_spinae_multifidus", "right"), "label"] == 8
    assert sides.loc[("psoas", "left"), "dice"] == 1.0 and sides.loc[("psoas", "left"), "hd_mm"] == 0.0
    # iliacus_left empty prediction: Dice 0, RVD -1, HD inf, flagged
    il = sides.loc[("iliacus", "left")]
    assert il["dice"] == 0.0 and il["rvd"] == -1.0 and math.isinf(il["hd_mm"]) and il["pred_empty"]
    # iliacus_right: half of a 1x8x4 slab kept (z 3..4 of 1..4): 16 of 32 voxels, Dice 2*16/48, RVD -0.5
    ir = sides.loc[("iliacus", "right")]
    assert ir["dice"] == pytest.approx(2 / 3) and ir["rvd"] == -0.5
    assert ir["vol_ref_ml"] == pytest.approx(32 * 3.0 / 1000)
    # the mean row is the plain L/R mean: inf propagates, flags are "either side"
    im = sides.loc[("iliacus", "mean")]
    assert pd.isna(im["label"])
    assert im["dice"] == pytest.approx((0.0 + 2 / 3) / 2) and im["rvd"] == pytest.approx(-0.75)
    assert math.isinf(im["hd_mm"]) and im["pred_empty"] and not im["ref_empty"]
    ps = sides.loc[("psoas", "mean")]
    assert ps["dice"] == 1.0 and ps["vol_pred_ml"] == pytest.approx(ps["vol_ref_ml"])


def test_label_table_both_empty_row() -> None:
    ref = _label_phantom()
    ref[ref == 2] = 0
    pred = ref.copy()
    df = compute_label_metrics(pred, ref, (1.0, 1.0, 1.0), labels=[1, 2])
    row = df[df["label"] == 2].iloc[0]
    assert row["pred_empty"] and row["ref_empty"] and math.isnan(row["dice"]) and math.isnan(row["hd95_mm"])
    mean = df[df["side"] == "mean"].iloc[0]
    assert math.isnan(mean["dice"])  # no silent one-sided mean
    assert len(df) == 3


def test_label_table_partial_labels_have_no_mean_row_and_reject_background() -> None:
    ref = _label_phantom()
    df = compute_label_metrics(ref, ref, (1.0, 1.0, 1.0), labels=[1, 4])
    assert df["side"].tolist() == ["left", "right"]
    with pytest.raises(ValueError, match="not a muscle"):
        compute_label_metrics(ref, ref, (1.0, 1.0, 1.0), labels=[0, 1])
    with pytest.raises(ValueError, match="whole numbers"):
        compute_label_metrics(ref + 0.5, ref, (1.0, 1.0, 1.0))


def test_evaluate_label_files(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel")
    ref = _label_phantom()
    affine = np.diag([0.9, 0.9, 3.0, 1.0])
    nib.save(nib.Nifti1Image(ref, affine), tmp_path / "ref.nii.gz")
    nib.save(nib.Nifti1Image(ref, affine), tmp_path / "pred.nii.gz")
    out = tmp_path / "out" / "metrics.csv"
    df = evaluate_label_files(tmp_path / "pred.nii.gz", tmp_path / "ref.nii.gz", out_csv=out)
    assert (df["dice"] == 1.0).all()
    assert pd.read_csv(out).shape == df.shape
    assert df.loc[0, "vol_ref_ml"] == pytest.approx(32 * 0.9 * 0.9 * 3.0 / 1000, rel=1e-5)
    shifted = affine.copy()
    shifted[0, 3] = 5.0
    nib.save(nib.Nifti1Image(ref, shifted), tmp_path / "moved.nii.gz")
    with pytest.raises(ValueError, match="affines"):
        evaluate_label_files(tmp_path / "moved.nii.gz", tmp_path / "ref.nii.gz")


# --- MONAI metric classes ---------------------------------------------------------------------------------------------


def test_rvd_metric_one_hot_batch() -> None:
    ref = _box((6, 6, 6), slice(0, 4), slice(0, 4), slice(0, 4))  # 64 voxels
    half = _box((6, 6, 6), slice(0, 4), slice(0, 4), slice(0, 2))  # 32 voxels
    empty = np.zeros_like(ref)
    # batch item 0: class 1 half (RVD -0.5), class 2 both empty (NaN); item 1: class 1 ref empty (+inf), class 2 = 1.0
    y_pred = torch.zeros(2, 3, 6, 6, 6)
    y = torch.zeros(2, 3, 6, 6, 6)
    y_pred[0, 1], y[0, 1] = torch.as_tensor(half), torch.as_tensor(ref)
    y_pred[0, 2], y[0, 2] = torch.as_tensor(empty), torch.as_tensor(empty)
    y_pred[1, 1], y[1, 1] = torch.as_tensor(ref), torch.as_tensor(empty)
    y_pred[1, 2], y[1, 2] = torch.as_tensor(ref), torch.as_tensor(half)
    out = compute_relative_volume_difference(y_pred, y)
    assert out.shape == (2, 2)
    assert out[0, 0].item() == -0.5 and math.isnan(out[0, 1].item())
    assert math.isinf(out[1, 0].item()) and out[1, 1].item() == 1.0
    assert out[0, 0].item() == relative_volume_difference(half, ref)

    metric = RelativeVolumeDifferenceMetric(reduction="mean_batch", get_not_nans=True)
    metric(y_pred=y_pred[:1], y=y[:1])
    metric(y_pred=[y_pred[1, :, ...]], y=[y[1, :, ...]])  # the decollated list form used by ignite handlers
    values, not_nans = metric.aggregate()
    assert math.isinf(values[0].item())  # an invented muscle stays visible in the mean
    assert values[1].item() == 1.0 and not_nans.tolist() == [2.0, 1.0]


def test_rvd_metric_in_ignite_handler() -> None:
    ignite = pytest.importorskip("ignite")
    from monai.handlers import IgniteMetricHandler, from_engine

    ref = torch.as_tensor(_box((6, 6, 6), slice(0, 4), slice(0, 4), slice(0, 4)), dtype=torch.float32)
    half = torch.as_tensor(_box((6, 6, 6), slice(0, 4), slice(0, 4), slice(0, 2)), dtype=torch.float32)

    def step(engine: ignite.engine.Engine, batch: int) -> list[dict[str, torch.Tensor]]:
        return [{"pred": torch.stack([1 - half, half]), "label": torch.stack([1 - ref, ref])}]

    engine = ignite.engine.Engine(step)
    handler = IgniteMetricHandler(
        metric_fn=RelativeVolumeDifferenceMetric(), output_transform=from_engine(["pred", "label"]), save_details=True
    )
    handler.attach(engine, "val_rvd")
    engine.run([0, 1], max_epochs=1)
    assert engine.state.metrics["val_rvd"] == pytest.approx(-0.5)
    assert engine.state.metric_details["val_rvd"].shape == (2, 1)


def test_mm_distance_metrics_read_spacing_from_meta() -> None:
    from monai.data import MetaTensor

    spacing = (1.0, 1.0, 3.0)
    ref = _box((9, 9, 9), slice(2, 6), slice(2, 6), slice(2, 6))
    pred = np.roll(ref, 1, axis=2)
    affine = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64))
    yp = MetaTensor(_onehot(pred)[0], affine=affine)
    y = MetaTensor(_onehot(ref)[0], affine=affine)
    hd_metric = HausdorffDistanceMMMetric()
    hd_metric(y_pred=[yp], y=[y])
    assert hd_metric.aggregate().item() == pytest.approx(3.0)
    asd_metric = SurfaceDistanceMMMetric(symmetric=True)
    asd_metric(y_pred=[yp], y=[y])
    assert asd_metric.aggregate().item() == pytest.approx(mean_surface_distance(pred, ref, spacing), rel=1e-5)
    with pytest.raises(ValueError, match="spacing"):
        HausdorffDistanceMMMetric()(y_pred=_onehot(pred), y=_onehot(ref))
