"""positive_percentile (scripts/quantification/positive_percentile.py) equals numpy.percentile bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.quantification import positive_percentile as pp
from scripts.quantification.positive_percentile import positive_percentile


def _reference(values: np.ndarray, q: float) -> float:
    x = np.asarray(values, dtype=np.float64)
    return float(np.percentile(x[np.isfinite(x) & (x > 0)], q))


def _volumes(rng: np.random.Generator):
    """Noise-like, integer-valued (many ties), sorted (a strided sample sees a biased picture) and dirty arrays."""
    yield rng.gamma(2.0, 100.0, (40, 30, 20)).astype(np.float32)
    yield rng.integers(-50, 1200, (64, 50, 33)).astype(np.int16)
    yield np.sort(rng.normal(300.0, 200.0, 500_000))
    dirty = rng.normal(100.0, 80.0, 300_000)
    dirty[rng.integers(0, dirty.size, 500)] = np.nan
    dirty[:7] = np.inf
    dirty[7:9] = -np.inf
    yield dirty
    yield np.array([0.0, -1.0, 5.5])
    yield np.array([2.0, 1.0])


@pytest.mark.parametrize("q", [0.0, 1.0, 12.345, 25.0, 50.0, 66.6, 97.5, 99.0, 99.9, 100.0])
def test_equals_numpy_percentile_bit_for_bit(q):
    rng = np.random.default_rng(int(q * 10))
    for values in _volumes(rng):
        assert positive_percentile(values, q) == _reference(values, q)


def test_band_miss_falls_back_to_the_full_partition(monkeypatch):
    # a band of zero width around a sample rank: the counts cannot prove it, so every positive value is partitioned
    monkeypatch.setattr(pp, "_BAND_SIGMAS", 0.0)
    monkeypatch.setattr(pp, "_SAMPLE_SIZE", 50)
    values = np.random.default_rng(1).uniform(0.0, 1000.0, 100_000)
    calls = []
    band = pp._band
    monkeypatch.setattr(pp, "_band", lambda *a: calls.append(band(*a)) or (1.0, 2.0))
    assert positive_percentile(values, 99) == _reference(values, 99)
    assert calls and calls[0] is not None


def test_no_positive_value_and_bad_q():
    assert positive_percentile(np.array([0.0, -2.0, np.nan, np.inf]), 99) is None
    with pytest.raises(ValueError, match=r"q must be a percentile in \[0, 100\], got 101"):
        positive_percentile(np.ones(3), 101)
