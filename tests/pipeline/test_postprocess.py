"""Largest component per label (scripts/pipeline/postprocess.py): the same map as cleaning each label on the grid."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from scripts.pipeline.postprocess import KeepLargestComponentPerLabeld, largest_component_per_label


def _whole_grid_reference(label: np.ndarray, labels: list[int]) -> np.ndarray:
    """Each label's components found on the whole grid, all but the largest set to 0."""
    out = label.copy()
    for value in labels:
        comp, n = ndimage.label(label == value)
        if n > 1:
            sizes = np.bincount(comp.ravel())
            sizes[0] = 0
            out[(comp > 0) & (comp != np.argmax(sizes))] = 0
    return out


def _label_map(seed: int) -> np.ndarray:
    """Blocks of labels 1-5 with random islands of each; label 4 absent; a value 9 that is not cleaned."""
    rng = np.random.default_rng(seed)
    label = np.zeros((24, 20, 12), dtype=np.int32)
    for value, (x, y) in zip((1, 2, 3, 5), ((2, 2), (12, 2), (2, 11), (12, 11))):
        label[x : x + 8, y : y + 7, 2:10] = value
    islands = rng.uniform(size=label.shape) < 0.01
    label[islands] = rng.choice([1, 2, 3, 5, 9], size=int(islands.sum()))
    return label


def test_equals_whole_grid_cleaning_for_every_integer_type():
    for seed in range(3):
        label = _label_map(seed)
        expected = _whole_grid_reference(label, [1, 2, 3, 4, 5, 6, 7, 8])
        assert (expected != label).any() and (expected == 9).any()
        for dtype in (np.int32, np.uint8, np.int64):
            got = largest_component_per_label(label.astype(dtype), range(1, 9))
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, expected)
    assert (largest_component_per_label(label, [0, -1]) == label).all()


def test_dictionary_transform_on_a_float_tensor():
    label = _label_map(7)
    pred = torch.as_tensor(label[None].astype(np.float32))
    out = KeepLargestComponentPerLabeld("pred", labels=list(range(1, 9)))({"pred": pred})["pred"]
    assert out.dtype == torch.float32 and out.shape == pred.shape
    np.testing.assert_array_equal(out[0].numpy().astype(np.int32), _whole_grid_reference(label, list(range(1, 9))))
