"""scripts.quality.confidence: known answers on probability volumes made here (a confident label, a 50/50 label,
a mixed label), and the verdict's review of an unsure label with its reason."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scripts.phantom import Acquisition, generate_subject
from scripts.quality.confidence import label_confidence
from scripts.quality.verdict import add_qc_columns, assess_segmentation


def _one_hot(labels: np.ndarray, value: float, n_channels: int = 9) -> torch.Tensor:
    """(C, X, Y, Z) probabilities: ``value`` on each voxel's label, the rest shared evenly by the other channels."""
    rest = (1.0 - value) / (n_channels - 1)
    p = torch.full((n_channels, *labels.shape), rest, dtype=torch.float32)
    p.scatter_(0, torch.as_tensor(labels, dtype=torch.int64)[None], value)
    return p


def test_a_confident_label_has_margin_one_and_no_boundary_voxel():
    labels = np.zeros((6, 5, 4), np.int64)
    labels[1:3, 1:4, :] = 3  # 24 voxels
    figures = label_confidence(_one_hot(labels, 1.0))
    assert figures[3]["n_voxels"] == 24
    assert figures[3]["top1_mean"] == pytest.approx(1.0)
    assert figures[3]["margin_mean"] == pytest.approx(1.0)
    assert figures[3]["boundary_share"] == 0.0
    assert figures[3]["entropy_mean"] == pytest.approx(0.0, abs=1e-6)
    assert figures[5]["n_voxels"] == 0 and math.isnan(figures[5]["margin_mean"])  # absent label: no figures


def test_a_fifty_fifty_label_lies_on_the_boundary():
    # every voxel of label 2 is 0.5 label 2 / 0.5 label 1: margin 0, all near the boundary, entropy log 2 / log 9
    p = torch.zeros(9, 4, 4, 4)
    p[0] = 1.0
    p[0, :2], p[1, :2], p[2, :2] = 0.0, 0.5, 0.5
    figures = label_confidence(p)
    assert figures[2]["n_voxels"] == 0  # ties go to the lower channel, as argmax does
    assert figures[1] == pytest.approx(
        {
            "n_voxels": 32,
            "top1_mean": 0.5,
            "margin_mean": 0.0,
            "boundary_share": 1.0,
            "entropy_mean": math.log(2) / math.log(9),
        }
    )


def test_a_mixed_label_reports_its_share_near_the_boundary():
    # label 4: 30 voxels at 0.9 (margin 0.9 - 0.1/8), 10 voxels at 0.55 / 0.45 (margin 0.1)
    p = torch.zeros(9, 40)
    p[4, :30] = 0.9
    p[[0, 1, 2, 3, 5, 6, 7, 8], :30] = 0.1 / 8
    p[4, 30:], p[7, 30:] = 0.55, 0.45
    f = label_confidence(p.reshape(9, 5, 8), labels=(4, 7))[4]
    assert f["n_voxels"] == 40
    assert f["boundary_share"] == pytest.approx(0.25)
    assert f["margin_mean"] == pytest.approx((30 * (0.9 - 0.1 / 8) + 10 * 0.1) / 40, abs=1e-6)
    assert f["top1_mean"] == pytest.approx((30 * 0.9 + 10 * 0.55) / 40, abs=1e-6)


def test_numpy_input_and_bad_shapes():
    labels = np.ones((3, 3, 3), np.int64)
    assert label_confidence(_one_hot(labels, 0.9).numpy())[1]["n_voxels"] == 27
    with pytest.raises(ValueError, match="C >= 2"):
        label_confidence(torch.ones(1, 3, 3, 3))
    with pytest.raises(ValueError, match="outside"):
        label_confidence(torch.ones(3, 2, 2, 2) / 3)


@pytest.fixture(scope="module")
def phantom():
    subj = generate_subject(3, Acquisition.preset("low"))
    ff = np.asarray(subj.images["ff_true"], dtype=np.float64) * 100.0
    return subj.images["label"].astype(np.int16), ff, subj.affine


def test_an_unsure_label_is_asked_to_be_reviewed_with_the_reason(phantom):
    labels, ff, affine = phantom
    confidence = label_confidence(_one_hot(labels, 0.95))
    sure = assess_segmentation(labels, affine, ff=ff, confidence=confidence)
    assert {v.status for v in sure.values()} == {"pass"}
    # the right psoas (label 2) drawn 50/50 against the left: every voxel near the boundary
    p = _one_hot(labels, 0.95)
    psoas = torch.as_tensor(labels == 2)
    p[:, psoas] = 0.0
    p[1, psoas], p[2, psoas] = 0.499, 0.501
    unsure = assess_segmentation(labels, affine, ff=ff, confidence=label_confidence(p))
    assert unsure[2].status == "review"
    assert unsure[2].reasons == [
        "review: the network is unsure: 100% of the label within 0.2 of the next label (mean margin 0.00)"
    ]
    assert unsure[1].status == "pass"
    # without confidence: today's verdict, unchanged
    assert {v.status for v in assess_segmentation(labels, affine, ff=ff).values()} == {"pass"}


def test_the_figures_become_table_columns_with_pooled_means(phantom):
    import pandas as pd

    labels, ff, affine = phantom
    verdicts = assess_segmentation(labels, affine, ff=ff)
    confidence = {
        v: {"n_voxels": 0, "top1_mean": np.nan, "margin_mean": np.nan, "boundary_share": np.nan, "entropy_mean": np.nan}
        for v in range(3, 9)
    }
    confidence[1] = {"n_voxels": 30, "top1_mean": 0.9, "margin_mean": 0.8, "boundary_share": 0.1, "entropy_mean": 0.2}
    confidence[2] = {"n_voxels": 10, "top1_mean": 0.5, "margin_mean": 0.4, "boundary_share": 0.5, "entropy_mean": 0.6}
    table = pd.DataFrame({"muscle": ["psoas"] * 3 + ["iliacus"], "side": ["left", "right", "mean", "left"]})
    out = add_qc_columns(table, verdicts, confidence).set_index(["muscle", "side"])
    assert out.loc[("psoas", "left"), "net_margin_mean"] == 0.8
    assert out.loc[("psoas", "mean"), "net_voxels"] == 40
    assert out.loc[("psoas", "mean"), "net_margin_mean"] == pytest.approx(0.7)  # (30 * 0.8 + 10 * 0.4) / 40
    assert out.loc[("psoas", "mean"), "net_boundary_share"] == pytest.approx(0.2)
    assert np.isnan(out.loc[("iliacus", "left"), "net_top1_mean"])
    assert "net_margin_mean" not in add_qc_columns(table, verdicts).columns
