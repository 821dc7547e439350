"""The swap check measures its skin and shell depths in millimetres, on coarse anisotropic scans too."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.pipeline.helpers import lean_body, loaded, quantify_and_finish


def test_a_lean_coarse_scan_is_not_flagged_as_swapped(tmp_path):
    files, label, affine = lean_body(tmp_path)
    quantify_and_finish(tmp_path / "eval", loaded(files, label, affine))
    table = pd.read_csv(tmp_path / "eval" / "lean" / "lean_ff_table.csv")
    rows = table[table.label.isin([7, 8])]
    assert len(rows) == 2
    assert not rows.swap_suspected.any(), rows[["swap_global", "swap_region", "swap_slices"]]
    np.testing.assert_allclose(rows.ff_mean_pct, 10.0, atol=1e-3)
