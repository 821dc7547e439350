"""Vendor fat-fraction (FF) map scale: detect fraction (0-1), percent (0-100) or permille (0-1000), and normalise.

Vendors store FF/PDFF maps in different units (GE percent floats, int16 permille maps, fraction NIfTIs); the bundle
works in fractions 0-1 everywhere (docs/design.md). :func:`detect_ff_scale` decides the scale from robust statistics
and refuses maps it cannot decide; :func:`normalise_ff_map` divides and excludes out-of-range values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
from scripts.quantification.formulas import PHYSICAL_FF_RANGE, exclude_out_of_range

__all__ = [
    "SCALE_DIVISORS",
    "ScaleDetection",
    "detect_ff_scale",
    "normalise_ff_map",
]

logger = logging.getLogger(__name__)

#: FF map scale name -> divisor that turns the stored values into a fraction 0-1.
SCALE_DIVISORS: dict[str, float] = {"fraction": 1.0, "percent": 100.0, "permille": 1000.0}


@dataclass(frozen=True)
class ScaleDetection:
    """How the values of an FF map relate to a fraction 0-1.

    Attributes:
        scale: ``"fraction"`` (0-1), ``"percent"`` (0-100) or ``"permille"`` (0-1000, e.g. int16 maps).
        divisor: 1, 100 or 1000; ``fraction = value / divisor``.
        confidence: share (0-1) of the analysed values inside the physical range of the chosen scale
            (:data:`scripts.quantification.formulas.PHYSICAL_FF_RANGE` times ``divisor``); 1.0 for an override.
        reason: the statistics and the rule that decided, in words (for logs and output provenance).
        n_values: number of voxels analysed (inside the mask, or finite non-zero voxels without one).
        p95: 95th percentile of the analysed values (map units).
        p99: 99th percentile of the analysed values (map units).
        fraction_in_range: scale name -> share of analysed values inside that scale's physical range.
        n_out_of_range: number of voxels set to NaN by :func:`normalise_ff_map` (0 from :func:`detect_ff_scale`).
        overridden: True when the caller set the scale.
        source: file name or description of the map, when given.
    """

    scale: str
    divisor: float
    confidence: float
    reason: str
    n_values: int
    p95: float
    p99: float
    fraction_in_range: dict[str, float] = field(default_factory=dict)
    n_out_of_range: int = 0
    overridden: bool = False
    source: str | None = None


_MIN_SCALE_VALUES = 20
_SCALE_P95_FACTOR = 1.5  # the P95 may exceed the physical maximum by 50 % (noisy F/(F+W) edges) before we reject
_SCALE_MIN_IN_RANGE = 0.5  # at least half of the voxels must lie inside the physical range of the scale
_SCALE_MAX_EXCESS = 0.02  # share of values above the range accepted without any matching negative tail
_SCALE_TAIL_RATIO = 3.0  # values above the range may be up to 3x as many as those below it (noise, not scale)
_OVERRIDE_HINT = "pass scale='fraction'|'percent'|'permille' to set it explicitly"


def _scale_values(ff_map: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Finite values of the map inside ``mask``, or its finite non-zero values without a mask."""
    data = np.asarray(ff_map, dtype=np.float64)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != data.shape:
            raise ValueError(f"mask shape {m.shape} differs from FF map shape {data.shape}")
        values = data[m.astype(bool)]
    else:
        # without a body mask, exact zeros are background (vendors write 0 outside the body)
        values = data[data != 0]
    return values[np.isfinite(values)]


def _range_shares(values: np.ndarray) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Per scale name: the shares of ``values`` inside, above and below its physical range (NaN without values)."""
    n = int(values.size)
    in_range: dict[str, float] = {}
    above: dict[str, float] = {}
    below: dict[str, float] = {}
    for name, d in SCALE_DIVISORS.items():
        lo, hi = PHYSICAL_FF_RANGE[0] * d, PHYSICAL_FF_RANGE[1] * d
        in_range[name] = float(np.mean((values >= lo) & (values <= hi))) if n else float("nan")
        above[name] = float(np.mean(values > hi)) if n else float("nan")
        below[name] = float(np.mean(values < lo)) if n else float("nan")
    return in_range, above, below


def _first_fitting_scale(
    p95: float, in_range: dict[str, float], above: dict[str, float], below: dict[str, float]
) -> str | None:
    """The first scale, smallest divisor first, that passes the three rules of :func:`detect_ff_scale`; else None."""
    for name, d in SCALE_DIVISORS.items():
        fits_max = p95 <= _SCALE_P95_FACTOR * d
        fits_range = in_range[name] >= _SCALE_MIN_IN_RANGE
        fits_tails = above[name] <= max(_SCALE_MAX_EXCESS, _SCALE_TAIL_RATIO * below[name])
        if fits_max and fits_range and fits_tails:
            return name
    return None


def _refuse_unusable(values: np.ndarray, where: str, masked: bool) -> None:
    """Raise ``ValueError`` when the values hold no FF (all zero, empty) or are too few to decide a scale."""
    if values[values != 0].size == 0:
        raise ValueError(
            f"FF map{where} is all zero (or empty/non-finite){' inside the mask' if masked else ''}: "
            f"its scale cannot be detected and it holds no FF values; check the file, or {_OVERRIDE_HINT}"
        )
    if values.size < _MIN_SCALE_VALUES:
        raise ValueError(
            f"FF map{where} has only {int(values.size)} usable values (< {_MIN_SCALE_VALUES}); {_OVERRIDE_HINT}"
        )


def _overridden(
    scale: str, where: str, source: str | None, n: int, p95: float, p99: float, in_range: dict[str, float]
) -> ScaleDetection:
    """The record of a scale set by the caller (confidence 1, no refusal); ``ValueError`` for an unknown name."""
    if scale not in SCALE_DIVISORS:
        raise ValueError(f"unknown FF scale {scale!r}{where}; expected one of {sorted(SCALE_DIVISORS)}")
    return ScaleDetection(
        scale=scale,
        divisor=SCALE_DIVISORS[scale],
        confidence=1.0,
        reason=f"scale {scale!r} set by the caller (override); P95={p95:.4g}, P99={p99:.4g}, n={n}",
        n_values=n,
        p95=p95,
        p99=p99,
        fraction_in_range=in_range,
        overridden=True,
        source=source,
    )


def _fitted(
    name: str,
    stats: str,
    n: int,
    p95: float,
    p99: float,
    in_range: dict[str, float],
    above: dict[str, float],
    below: dict[str, float],
    where: str,
    source: str | None,
) -> ScaleDetection:
    """The record of the detected scale ``name``, with the rule that decided in words (logged at INFO)."""
    d = SCALE_DIVISORS[name]
    reason = (
        f"{name}: {stats}; P95 <= {_SCALE_P95_FACTOR * d:g}, {in_range[name]:.1%} of values in "
        f"[{PHYSICAL_FF_RANGE[0] * d:g}, {PHYSICAL_FF_RANGE[1] * d:g}], above/below range "
        f"{above[name]:.1%}/{below[name]:.1%}"
    )
    logger.info("FF map scale%s: %s", where, reason)
    return ScaleDetection(
        scale=name,
        divisor=d,
        confidence=in_range[name],
        reason=reason,
        n_values=n,
        p95=p95,
        p99=p99,
        fraction_in_range=in_range,
        source=source,
    )


def detect_ff_scale(
    ff_map: np.ndarray,
    mask: np.ndarray | None = None,
    scale: str | None = None,
    source: str | None = None,
    min_fraction_p99: float = 0.1,
) -> ScaleDetection:
    """Detect whether a vendor FF/PDFF map stores fractions (0-1), percent (0-100) or permille (0-1000).

    Statistics are taken inside ``mask`` (body or muscle), or over the finite non-zero voxels without one. The
    candidate scales are tried from the smallest divisor up; the first that fits is chosen. A scale with divisor
    ``d`` fits when

    1. ``P95 <= 1.5 d``: a robust maximum, not the 99th percentile, because unthresholded ``F/(F+W)`` maps
       have heavy tails at edges (GE sample, percent: P95 = 113, P99 = 239);
    2. at least 50 % of the values lie in the physical range ``[-0.05 d, 1.05 d]``;
    3. the values above the range are few (<= 2 %) or at most 3x the values below it. Why: noise pushes a correctly
       scaled map out of range on **both** sides (negative FF is only noise), whereas a scale error pushes values
       out on the top side only (a permille map read as percent has many values > 105 and none < -5).

    A map that fits as a fraction but whose P99 is below ``min_fraction_p99`` is refused: values that never
    reach 10 % FF could equally be a percent map of near-zero FF, and a real body or muscle has voxels above 10 %.

    Args:
        ff_map: FF map in its stored units, any shape (int or float).
        mask: optional boolean mask of the same shape (body or muscle) restricting the statistics.
        scale: explicit override, one of ``"fraction"``, ``"percent"``, ``"permille"``; skips the refusals.
        source: file name used in messages (``ValueError`` and ``reason``).
        min_fraction_p99: plausibility floor of the P99 for the fraction scale.

    Returns:
        A :class:`ScaleDetection`.

    Raises:
        ValueError: the map is empty or all zero inside the mask, has too few values, fits no scale, or is
            ambiguous; the message names the problem and ``source``, and says how to override.

    Example:
        >>> import numpy as np
        >>> detect_ff_scale(np.array([2.0, 15.0, 40.0, 90.0, 95.0] * 10)).scale
        'percent'
    """
    where = f" in {source}" if source else ""
    values = _scale_values(ff_map, mask)
    n = int(values.size)
    p95 = float(np.percentile(values, 95)) if n else float("nan")
    p99 = float(np.percentile(values, 99)) if n else float("nan")
    in_range, above, below = _range_shares(values)

    if scale is not None:
        return _overridden(scale, where, source, n, p95, p99, in_range)

    _refuse_unusable(values, where, mask is not None)
    stats = f"P95={p95:.4g}, P99={p99:.4g}, n={n}"
    name = _first_fitting_scale(p95, in_range, above, below)
    if name is None:
        raise ValueError(
            f"FF map{where} fits no FF scale ({stats}; share in range: "
            + ", ".join(f"{k} {v:.1%}" for k, v in in_range.items())
            + f"): it may not be an FF map; {_OVERRIDE_HINT}"
        )
    if name == "fraction" and p99 < min_fraction_p99:
        raise ValueError(
            f"FF map{where} is ambiguous: its values lie within 0-1 but the 99th percentile is only {p99:.4g} "
            f"(< {min_fraction_p99}); that may be a fraction map of lean tissue or a percent/permille map of "
            f"near-zero FF; {_OVERRIDE_HINT}"
        )
    return _fitted(name, stats, n, p95, p99, in_range, above, below, where, source)


def normalise_ff_map(
    ff_map: np.ndarray,
    scale: str | None = None,
    mask: np.ndarray | None = None,
    source: str | None = None,
    valid_range: tuple[float, float] = PHYSICAL_FF_RANGE,
) -> tuple[np.ndarray, ScaleDetection]:
    """Convert a vendor FF map to a float32 fraction 0-1, with out-of-range values set to NaN.

    The scale comes from :func:`detect_ff_scale` (or ``scale``). After division, values outside ``valid_range``
    (fraction) become NaN (:func:`scripts.quantification.formulas.exclude_out_of_range`) and their count is stored
    in the returned record's ``n_out_of_range``. The map is never cast to an integer (TotalSegmentator's int16 cast
    turns a 0-1 map into 0).

    Args:
        ff_map: FF map in stored units, any shape.
        scale: optional override (``"fraction"``, ``"percent"``, ``"permille"``).
        mask: optional boolean mask (same shape) for the scale statistics only; the whole map is converted.
        source: file name for messages.
        valid_range: accepted ``(low, high)`` fraction range.

    Returns:
        ``(fraction array float32 of the input shape, ScaleDetection with n_out_of_range set)``.
    """
    detection = detect_ff_scale(ff_map, mask=mask, scale=scale, source=source)
    fraction = np.asarray(ff_map, dtype=np.float64) / detection.divisor
    fraction32, n_out = exclude_out_of_range(fraction, *valid_range)
    if n_out:
        logger.info(
            "FF map%s: %d values outside %s (fraction) set to NaN", f" {source}" if source else "", n_out, valid_range
        )
    return fraction32, replace(detection, n_out_of_range=n_out)
