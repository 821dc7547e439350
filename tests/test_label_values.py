"""Tests of scripts.label_values: the values present in a label map, counted instead of sorted."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.label_values import present_values


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64, np.uint16, np.uint32, np.uint64])
def test_counted_values_are_the_sorted_distinct_values(dtype) -> None:
    rng = np.random.default_rng(3)
    label = rng.choice([0, 1, 5, 9, 14], size=(30, 20, 11), p=[0.6, 0.1, 0.1, 0.1, 0.1]).astype(dtype)
    label[0, 0, 0] = 2  # one voxel of a value is enough to be present
    assert present_values(label) == [0, 1, 2, 5, 9, 14]
    assert all(type(v) is int for v in present_values(label))


def test_an_array_longer_than_one_chunk_keeps_values_of_every_chunk(monkeypatch) -> None:
    import scripts.label_values as module

    monkeypatch.setattr(module, "_CHUNK", 7)
    label = np.zeros(50, np.uint8)
    label[[3, 20, 49]] = [4, 8, 13]  # in the first, a middle and the last (partial) chunk
    assert present_values(label) == [0, 4, 8, 13]


@pytest.mark.parametrize(
    "label, expected",
    [
        (np.array([[-1, 2], [2, 0]]), [-1, 0, 2]),  # negative: sorted
        (np.array([0.5, 2.0, 0.5]), [0.5, 2.0]),  # floats: sorted
        (np.array([70000, 3], np.int64), [3, 70000]),  # beyond the counting table: sorted
        (np.zeros((0, 4), np.uint8), []),
        (np.full((2, 2), 7, np.uint8), [7]),
    ],
)
def test_other_arrays_give_what_unique_gives(label, expected) -> None:
    assert present_values(label) == expected == np.unique(label).tolist()
