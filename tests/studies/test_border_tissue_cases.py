"""scripts.studies.border_tissue_cases: known answers for the erosion, the per-side rows and the summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scripts.studies.border_tissue_cases import eroded_in_plane, side_shares, summary


def _block():
    """A 30x30x6 muscle (label 7, FF 8 %) in fat (FF 92 %)."""
    ff = np.full((60, 60, 6), 92.0)
    ff[15:45, 15:45, :] = 8.0
    truth = np.zeros(ff.shape, np.uint8)
    truth[15:45, 15:45, :] = 7
    return truth, ff


def test_erosion_is_in_plane_only_and_the_shares_tell_truth_from_eroded():
    truth, ff = _block()
    eroded = eroded_in_plane(truth, axis=2, voxels=2)
    assert (eroded == 7).sum() == 26 * 26 * 6  # two voxels off each in-plane edge, every slice kept
    (row,) = side_shares(truth, truth, ff, axis=2)
    assert row["label"] == 7 and row["share"] == 0.0 and row["dice"] == 1.0 and row["median_ff_pct"] == 8.0
    (row,) = side_shares(eroded, truth, ff, axis=2)
    assert row["share"] == 1.0 and row["dice"] == pytest.approx(2 * 26 * 26 / (26 * 26 + 30 * 30))


def test_summary_per_variant():
    rows = pd.DataFrame({"variant": ["truth"] * 4 + ["eroded_2"] * 2, "share": [0.0, 0.1, 0.1, 0.2, 0.7, 0.9]})
    out = summary(rows).set_index("variant")
    assert out.loc["truth", "sides"] == 4 and out.loc["truth", "max"] == pytest.approx(0.2)
    assert out.loc["eroded_2", "over_0.6"] == 1.0 and out.loc["truth", "over_0.5"] == 0.0
    assert out.loc["eroded_2", "median"] == pytest.approx(0.8)
