"""Exact percentile of the positive finite values of a volume, by selection in a narrow value band.

``np.percentile(x[np.isfinite(x) & (x > 0)], q)`` copies the positive values (the whole body, and with background
noise nearly the whole volume) and partitions them: ~0.5 s for a 400 x 320 x 145 volume. Only the two order
statistics around the percentile matter, so :func:`positive_percentile` finds a value band that must hold them from
a strided sample, proves it by counting (two comparisons over the volume), and partitions the few values inside
the band. When the counts do not prove it (an unrepresentative sample), it falls back to the full partition. The
result equals ``np.percentile`` (linear method, float64 arithmetic) bit for bit: the tests compare the two.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["positive_percentile"]

#: about this many values are sampled to place the band
_SAMPLE_SIZE = 200_000
#: half-width of the band in sample ranks, in standard deviations of a sample rank (binomial)
_BAND_SIGMAS = 8.0


def _virtual_index(n: int, q: float) -> tuple[int, int, np.ndarray]:
    """NumPy's linear method (Hyndman and Fan type 7): ``(lower rank, upper rank, interpolation weight)``.

    Written as ``numpy.percentile`` computes it (the ``"linear"`` entry of ``_QuantileMethods``, then
    ``_get_indexes`` and ``_get_gamma``), so that the weight, and thus the result, is the same to the last bit.
    """
    quantile = np.asanyarray(np.true_divide(q, 100))
    virtual = np.asanyarray((n - 1) * quantile)
    if virtual >= n - 1:
        return n - 1, n - 1, np.asanyarray(virtual - (-1))
    if virtual < 0:
        return 0, 0, np.asanyarray(virtual - 0)
    lower = np.floor(virtual)
    return int(lower), int(lower) + 1, np.asanyarray(virtual - lower)


def _lerp(a: np.float64, b: np.float64, t: np.ndarray) -> float:
    """NumPy's ``_lerp``: ``a + (b - a) t``, or ``b - (b - a)(1 - t)`` for ``t >= 0.5`` (monotone near ``b``)."""
    diff = np.subtract(b, a)
    if t >= 0.5:
        return float(np.subtract(b, diff * (1 - t)))
    return float(np.add(a, diff * t))


def _band(flat: np.ndarray, n: int, lo_rank: int, hi_rank: int) -> tuple[float, float] | None:
    """Two values ``(lo, hi)``, ``0 < lo <= hi < inf``, that probably bracket the ranks, from a strided sample."""
    step = max(1, flat.size // _SAMPLE_SIZE)
    sample = flat[::step]
    sample = np.sort(sample[(sample > 0) & (sample < np.inf)])
    m = sample.size
    if m < 2:
        return None
    scale = m / n
    margin = _BAND_SIGMAS * math.sqrt(m * 0.25) + 2.0
    lo_i = max(0, int(math.floor(lo_rank * scale - margin)))
    hi_i = min(m - 1, int(math.ceil(hi_rank * scale + margin)))
    return float(sample[lo_i]), float(sample[hi_i])


def _order_statistics(flat: np.ndarray, n: int, ranks: tuple[int, int]) -> tuple[np.float64, np.float64]:
    """The values of rank ``ranks`` (0-based) among the ``n`` positive finite values of ``flat``, as float64."""
    band = _band(flat, n, ranks[0], ranks[1])
    if band is not None:
        lo, hi = band
        below = int(np.count_nonzero((flat > 0) & (flat < lo)))
        inside = flat[(flat >= lo) & (flat <= hi)]
        if below <= ranks[0] and below + inside.size > ranks[1]:
            kth = (ranks[0] - below, ranks[1] - below)
            inside.partition(kth)
            return np.float64(inside[kth[0]]), np.float64(inside[kth[1]])
    # the band missed a rank: partition every positive value (what numpy.percentile does)
    positive = flat[(flat > 0) & (flat < np.inf)]
    positive.partition(ranks)
    return np.float64(positive[ranks[0]]), np.float64(positive[ranks[1]])


def positive_percentile(values: np.ndarray, q: float) -> float | None:
    """``numpy.percentile`` of the positive finite values of ``values`` (linear method), without sorting them all.

    Args:
        values: array of any shape and real dtype (e.g. an FF denominator, intensity units); NaN, Inf, zeros and
            negatives are left out.
        q: percentile in ``[0, 100]``.

    Returns:
        ``float(np.percentile(values[np.isfinite(values) & (values > 0)].astype(np.float64), q))`` exactly, or
        ``None`` when there is no positive finite value.

    Example:
        >>> positive_percentile(np.array([0.0, -3.0, 1.0, 2.0, 3.0, np.nan]), 50)
        2.0
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be a percentile in [0, 100], got {q}")
    flat = np.asarray(values).ravel(order="K")  # a view of C- or Fortran-ordered (NIfTI) volumes
    n = int(np.count_nonzero((flat > 0) & (flat < np.inf)))
    if n == 0:
        return None
    lower, upper, weight = _virtual_index(n, q)
    a, b = _order_statistics(flat, n, (lower, upper))
    return _lerp(a, b, weight)
