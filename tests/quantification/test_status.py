"""Tests of scripts.quantification.status: truncation, swap, too-small and volume-asymmetry statuses and flags."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scripts.labels import label_value
from scripts.quantification.statistics import quantify_muscles
from scripts.quantification.swap import LabelSwapFlags, SwapReport

from tests.quantification.quant_cases import PROV, box_case, row_of


@pytest.mark.parametrize("z_sign, expected", [(1.0, (True, False)), (-1.0, (False, True))])
def test_truncation_flags(z_sign, expected):
    label, ff = box_case()
    label[2:6, 2:6, 0] = 1  # touches slice 0
    aff = np.diag([1.0, 1.0, z_sign, 1.0])
    row = row_of(quantify_muscles(label, aff, ff, aff, PROV), "psoas", "left")
    assert (row.truncated_inferior, row.truncated_superior) == expected
    assert row.status == "truncated"
    assert ("truncated_inferior" if expected[0] else "truncated_superior") in row["flags"]


def test_swap_report_flags():
    label, ff = box_case()
    label[2:12, 2:12, 6] = 0
    label[2:5, 2:5, 1:3] = 2
    flags = {1: LabelSwapFlags(1, 500, 0.7, 0.2, True, False, 0), 2: LabelSwapFlags(2, 18, 0.2, 0.7, False, False, 0)}
    report = SwapReport(False, True, 0.8, 0.2, 0.3, 0.25, (), flags, ("label 1 asymmetric",))
    res = quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV, swap_report=report)
    left, right = row_of(res, "psoas", "left"), row_of(res, "psoas", "right")
    assert left.swap_suspected and left.swap_asymmetric and left.status == "swap_suspected"
    assert not right.swap_suspected and right.status == "ok"
    assert row_of(res, "psoas", "mean").swap_suspected
    sliced = SwapReport(False, True, 0.8, 0.2, 0.3, 0.25, (4,), {}, ())
    assert row_of(
        quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV, swap_report=sliced), "psoas", "left"
    ).swap_slices
    unchecked = row_of(quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV), "psoas", "left")
    assert pd.isna(unchecked.swap_suspected)  # not checked is not "no swap"


def test_too_small_labels_get_no_ff_and_asymmetric_volumes_are_flagged():
    # 2 mm isotropic voxels (0.008 mL): psoas left 500 voxels = 4 mL, right 100 voxels = 0.8 mL (< 1 mL);
    # iliacus left 400 voxels (3.2 mL) against right 150 (1.2 mL): under half, flagged, both keep their FF
    label = np.zeros((40, 40, 10), np.uint8)
    label[1:11, 1:11, 2:7] = label_value("psoas", "left")
    label[20:30, 1:11, 2:3] = label_value("psoas", "right")
    label[1:11, 20:30, 2:6] = label_value("iliacus", "left")
    label[20:30, 20:35, 2:3] = label_value("iliacus", "right")
    ff = np.full(label.shape, 0.25, np.float32)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    res = quantify_muscles(label, affine, ff, affine, PROV, min_volume_ml=1.0)
    small = row_of(res, "psoas", "right")
    assert small.status == "too_small" and "too_small" in small["flags"]
    assert math.isnan(small.ff_mean_pct) and math.isnan(small.ff_core_mean_pct)
    assert small.volume_ml == pytest.approx(0.8) and small.n_voxels == 100
    assert row_of(res, "psoas", "left").ff_mean_pct == pytest.approx(25.0)
    mean = row_of(res, "psoas", "mean")
    assert mean.status == "too_small" and math.isnan(mean.ff_mean_pct)  # never a one-sided "L/R mean"
    il, ir = row_of(res, "iliacus", "left"), row_of(res, "iliacus", "right")
    assert "volume_asymmetry" in il["flags"] and "volume_asymmetry" in ir["flags"]
    assert il.status == ir.status == "ok" and ir.ff_mean_pct == pytest.approx(25.0)
    # without a minimum every voxel counts, as before
    plain = quantify_muscles(label, affine, ff, affine, PROV)
    assert row_of(plain, "psoas", "right").ff_mean_pct == pytest.approx(25.0)
