"""comparison_table: tests on independent units (distinct subjects, splits), against hand-computed answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scripts.evaluation.agreement import paired_wilcoxon
from scripts.labels import MUSCLES
from scripts.studies.cv_tables import comparison_table


def test_comparison_table_tests_distinct_subjects_and_splits():
    """A subject tested in two splits counts once (its mean); the split-level test is the corrected t-test."""
    tests = {0: ["s0", "s1", "s2"], 1: ["s0", "s3", "s4"], 2: ["s5", "s6", "s7"]}
    diffs = {
        ("0", "s0"): 0.02,
        ("0", "s1"): 0.03,
        ("0", "s2"): 0.05,
        ("1", "s0"): 0.06,
        ("1", "s3"): 0.01,
        ("1", "s4"): 0.04,
        ("2", "s5"): 0.07,
        ("2", "s6"): 0.08,
        ("2", "s7"): 0.09,
    }
    rows = []
    for split, subjects in tests.items():
        for s in subjects:
            for muscle in MUSCLES:
                rows.append(dict(split=split, subject=s, method="b", muscle=muscle, side="mean", dice=0.8))
                rows.append(
                    dict(
                        split=split,
                        subject=s,
                        method="a",
                        muscle=muscle,
                        side="mean",
                        dice=0.8 + diffs[(str(split), s)],
                    )
                )
    table = comparison_table(pd.DataFrame(rows), "a", "b", columns=("dice",), n_train=5, n_test=3)
    row = table[table.muscle == MUSCLES[0]].iloc[0]
    subject_diff = [0.04, 0.03, 0.05, 0.01, 0.04, 0.07, 0.08, 0.09]  # s0: (0.02 + 0.06) / 2
    assert row.n == 9 and row.n_subjects == 8 and np.isclose(row.diff_mean, np.mean(subject_diff))
    assert np.isclose(row.p_wilcoxon_subjects, paired_wilcoxon(np.array(subject_diff), np.zeros(8)).p)
    split_diff = np.array([0.1 / 3, 0.11 / 3, 0.24 / 3])
    t = split_diff.mean() / np.sqrt((1 / 3 + 3 / 5) * split_diff.var(ddof=1))
    assert np.isclose(row.p_crt, 2 * stats.t.sf(t, 2))
    assert np.isclose(row.p_crt_holm, min(1.0, 4 * row.p_crt))  # four identical tests, one per muscle
