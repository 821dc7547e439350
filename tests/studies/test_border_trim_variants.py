"""scripts.studies.border_trim_variants: each side's FF error under other border-trim thresholds, known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scripts.studies.border_trim_variants import side_errors, summary


def _case() -> tuple[np.ndarray, ...]:
    """A psoas of FF 10 % (6 x 6 voxels, 3 slices) drawn one voxel too wide into tissue of FF 75 %."""
    truth = np.zeros((12, 12, 3), np.uint8)
    truth[3:9, 3:9] = 1
    pred = np.zeros_like(truth)
    pred[2:10, 2:10] = 1  # a ring of 28 extra voxels per slice
    ff_true = np.full(truth.shape, 0.75)
    ff_true[truth == 1] = 0.10
    return pred, truth, 100.0 * ff_true, ff_true


def test_the_default_keeps_a_border_whose_neighbour_is_not_fat_enough_and_a_lower_fat_level_trims_it():
    pred, truth, ff_pct, ff_true = _case()
    rows = side_errors(pred, truth, ff_pct, ff_true, np.eye(4), variants=[None, (0.7, 0.8), (0.7, 0.7)])
    errors = {r["variant"]: r for r in rows}
    assert set(errors) == {"none", "0.7/0.8", "0.7/0.7"}  # one side: the truth holds only the left psoas
    # 36 muscle voxels at 10 % and 28 ring voxels at 75 % per slice: mean 38.4375 %, 28.4375 pp too high
    assert errors["none"]["ff_error_pp"] == pytest.approx(100 * (36 * 0.10 + 28 * 0.75) / 64 - 10.0)
    assert errors["0.7/0.8"]["ff_error_pp"] == pytest.approx(errors["none"]["ff_error_pp"])  # neighbour 75 % < 80 %
    assert errors["0.7/0.7"]["ff_error_pp"] == pytest.approx(0.0, abs=1e-9)  # the ring goes, the muscle stays
    assert errors["0.7/0.7"]["n_voxels"] == 36 * 3 and errors["0.7/0.7"]["muscle"] == "psoas"
    table = summary(pd.DataFrame(rows))
    assert list(table.variant.astype(str)) == ["none", "0.7/0.8", "0.7/0.7"]
    assert table.bias_pp.iloc[2] == pytest.approx(0.0, abs=1e-9) and (table.sides == 1).all()
