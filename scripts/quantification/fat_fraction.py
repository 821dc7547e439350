"""Fat fraction (FF) from Dixon images, vendor FF-map scale detection, grid mapping and input QC.

Pure NumPy/SciPy array functions: arrays in, arrays out; the caller does the file I/O and passes affines.

Conventions shared with the rest of the bundle (docs/design.md):

- FF is a **fraction in 0-1** everywhere in code (float32); tables multiply by 100 (``ff_mean_pct``).
- FF is computed on the native grid of the Dixon images. Masks reach that grid through their affines
  (:func:`map_labels_to_grid`, nearest neighbour), never by array index; grids are compared by affine within a
  tolerance (:func:`check_same_grid`), not by shape.
- Voxels whose denominator is below a stated threshold are **NaN** (excluded from means), never 0.

References:
    - Dixon WT. Simple proton spectroscopic imaging. Radiology 1984;153:189-194 (2-point Dixon,
      in-phase/opposed-phase).
    - Liu CY, McKenzie CA, Yu H, Brittain JH, Reeder SB. Fat quantification with IDEAL gradient echo imaging:
      correction of bias from T1 and noise. Magn Reson Med 2007;58:354-364, https://doi.org/10.1002/mrm.21301
      (magnitude discrimination).
    - The 2026 BMC Medical Imaging paper this bundle reproduces (doi 10.1186/s12880-026-02329-9):
      mean FF = F/(F+W) per muscle.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import ndimage
from scripts.labels import LEFT_RIGHT_SWAP

__all__ = [
    "SCALE_DIVISORS",
    "PHYSICAL_FF_RANGE",
    "denominator_threshold",
    "fat_fraction_from_water_fat",
    "water_fat_from_in_opposed",
    "fat_fraction_from_in_opposed",
    "fat_fraction_magnitude_discrimination",
    "exclude_out_of_range",
    "ScaleDetection",
    "detect_ff_scale",
    "normalise_ff_map",
    "check_same_grid",
    "map_labels_to_grid",
    "slice_axis_from_affine",
    "LabelSwapFlags",
    "SwapReport",
    "detect_fat_water_swap",
    "truncation_flags",
]

logger = logging.getLogger(__name__)

#: FF map scale name -> divisor that turns the stored values into a fraction 0-1.
SCALE_DIVISORS: dict[str, float] = {"fraction": 1.0, "percent": 100.0, "permille": 1000.0}

#: Physical FF range (fraction) that survives noise: F/(F+W) leaves 0-1 slightly at noisy voxels; beyond this
#: band a value is an artefact (edge voxels, near-zero denominators), not tissue.
PHYSICAL_FF_RANGE: tuple[float, float] = (-0.05, 1.05)

_DEFAULT_RELATIVE_THRESHOLD = 0.05
_ROBUST_MAX_PERCENTILE = 99.0


# ----------------------------------------------------------------------------------------------------------------
# Fat fraction
# ----------------------------------------------------------------------------------------------------------------


def _as_float_pair(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64 with the same shape, or a ``ValueError`` naming both shapes."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    if a64.shape != b64.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {a64.shape} and {b64.shape}")
    return a64, b64


def denominator_threshold(
    denominator: np.ndarray,
    min_denominator: float | None = None,
    relative_threshold: float = _DEFAULT_RELATIVE_THRESHOLD,
) -> float:
    """The threshold below which an FF denominator counts as "near zero" (voxel excluded).

    Rule: ``min_denominator`` when given (absolute, in the image's intensity units); otherwise
    ``relative_threshold * P99(denominator[denominator > 0])``. The 99th percentile of the positive values is a
    robust maximum: zeros (background outside the reconstructed field) do not pull it down, and a few hot voxels do
    not push it up, whatever fraction of the field of view the body fills. With the default 5 % the threshold falls
    in the noise/tissue valley of real Dixon data (GE thigh sample: noise below ~40, tissue above ~100, P99 = 544,
    threshold 27) while dark but real tissue (deep muscle under a surface-coil falloff, typically > 15 % of P99)
    is kept.

    Args:
        denominator: FF denominator of any shape (``W + F``, ``|W| + |F|`` or the in-phase magnitude).
        min_denominator: absolute threshold in intensity units, ``>= 0``; overrides the relative rule.
        relative_threshold: fraction of the robust maximum, in ``[0, 1)``.

    Returns:
        The threshold; ``inf`` when the array has no positive finite value (every voxel is then excluded).
    """
    if min_denominator is not None:
        if not np.isfinite(min_denominator) or min_denominator < 0:
            raise ValueError(f"min_denominator must be a finite value >= 0, got {min_denominator}")
        return float(min_denominator)
    if not 0.0 <= relative_threshold < 1.0:
        raise ValueError(f"relative_threshold must be in [0, 1), got {relative_threshold}")
    den = np.asarray(denominator, dtype=np.float64)
    positive = den[np.isfinite(den) & (den > 0)]
    if positive.size == 0:
        warnings.warn("FF denominator has no positive value: every voxel is excluded (NaN)", RuntimeWarning)
        return float("inf")
    return float(relative_threshold * np.percentile(positive, _ROBUST_MAX_PERCENTILE))


def _guarded_ratio(numerator: np.ndarray, denominator: np.ndarray, threshold: float) -> np.ndarray:
    """``numerator / denominator`` as float32 with NaN where the denominator is not positive or below threshold."""
    valid = np.isfinite(denominator) & (denominator > 0) & (denominator >= threshold) & np.isfinite(numerator)
    out = np.full(denominator.shape, np.nan, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=valid)
    return out.astype(np.float32)


def fat_fraction_from_water_fat(
    water: np.ndarray,
    fat: np.ndarray,
    min_denominator: float | None = None,
    relative_threshold: float = _DEFAULT_RELATIVE_THRESHOLD,
    denominator: Literal["sum", "abs"] = "sum",
) -> np.ndarray:
    """Voxel-wise fat fraction ``FF = F / (F + W)`` (fraction 0-1, float32) from water and fat images.

    This is the signal fat fraction of the source paper and of vendor Dixon FF maps (not PDFF unless the scanner
    corrected T1, T2* and the fat spectrum). Voxels whose denominator is below the threshold of
    :func:`denominator_threshold` are NaN, so that they are excluded from means instead of counting as 0.

    Negative values: real-valued (phase-corrected) 3-point reconstructions such as GE's store signed water and fat,
    and noise makes one of them negative in near-pure tissue (GE thigh sample: 20 % of voxels). ``denominator``
    decides how they are treated:

    - ``"sum"`` (default): ``F / (F + W)`` with signed values, exactly the vendor's formula, so the result matches
      a vendor map computed the same way. A negative or small ``F + W`` is excluded; FF may leave 0-1 slightly where
      one component is negative. Values are not clipped, because clipping biases the mean of noisy voxels.
    - ``"abs"``: ``|F| / (|F| + |W|)``, always within 0-1; what a magnitude reconstruction would have given.

    Args:
        water: water image, any shape, intensity units.
        fat: fat image, same shape and grid as ``water``.
        min_denominator: absolute denominator threshold (intensity units); overrides ``relative_threshold``.
        relative_threshold: threshold as a fraction of the 99th percentile of the positive denominators.
        denominator: ``"sum"`` or ``"abs"`` (see above).

    Returns:
        float32 array of the input shape: FF as a fraction, NaN where excluded.

    Example:
        >>> import numpy as np
        >>> ff = fat_fraction_from_water_fat(np.array([70.0, 0.0]), np.array([30.0, 0.0]))
        >>> [round(float(v), 3) for v in ff]
        [0.3, nan]
    """
    w, f = _as_float_pair(water, fat, "water", "fat")
    if denominator == "sum":
        num, den = f, w + f
    elif denominator == "abs":
        num, den = np.abs(f), np.abs(w) + np.abs(f)
    else:
        raise ValueError(f"denominator must be 'sum' or 'abs', got {denominator!r}")
    threshold = denominator_threshold(den, min_denominator, relative_threshold)
    logger.debug("FF from water/fat: denominator=%s threshold=%.4g", denominator, threshold)
    return _guarded_ratio(num, den, threshold)


def water_fat_from_in_opposed(
    in_phase: np.ndarray,
    opposed_phase: np.ndarray,
    assume: Literal["water_dominant", "fat_dominant"] = "water_dominant",
) -> tuple[np.ndarray, np.ndarray]:
    """Water and fat images from 2-point Dixon in-phase (IP) and opposed-phase (OP) magnitude images.

    With magnitudes, ``IP = W + F`` and ``OP = |W - F|`` (Dixon 1984). The sign of ``W - F`` is lost, so one
    assumption resolves it:

    - ``"water_dominant"``: ``W = (IP + OP) / 2``, ``F = (IP - OP) / 2``. Valid where the true FF < 50 %, i.e.
      muscle (lumbar muscle FF is 5-40 % in health). Fat-dominant voxels (subcutaneous fat, marrow) come out with
      water and fat **swapped** (FF -> 1 - FF); do not use their FF.
    - ``"fat_dominant"``: the reverse, for fat-dominant tissue only.

    ``F`` (or ``W``) is slightly negative where noise makes OP > IP; it is kept unclipped so that means stay
    unbiased.

    Args:
        in_phase: in-phase magnitude image, any shape.
        opposed_phase: opposed-phase magnitude image, same shape and grid.
        assume: ``"water_dominant"`` or ``"fat_dominant"``.

    Returns:
        ``(water, fat)``, float32 arrays of the input shape.
    """
    ip, op = _as_float_pair(in_phase, opposed_phase, "in_phase", "opposed_phase")
    high, low = (ip + op) / 2.0, (ip - op) / 2.0
    if assume == "water_dominant":
        water, fat = high, low
    elif assume == "fat_dominant":
        water, fat = low, high
    else:
        raise ValueError(f"assume must be 'water_dominant' or 'fat_dominant', got {assume!r}")
    return water.astype(np.float32), fat.astype(np.float32)


def fat_fraction_from_in_opposed(
    in_phase: np.ndarray,
    opposed_phase: np.ndarray,
    assume: Literal["water_dominant", "fat_dominant"] = "water_dominant",
    min_denominator: float | None = None,
    relative_threshold: float = _DEFAULT_RELATIVE_THRESHOLD,
) -> np.ndarray:
    """FF (fraction, float32) from 2-point Dixon IP/OP magnitudes via :func:`water_fat_from_in_opposed`.

    Under ``"water_dominant"`` this is ``FF = (IP - OP) / (2 IP)``, valid for FF < 50 % (muscle); fat-dominant voxels
    get ``1 - FF``. The denominator ``W + F = IP`` is thresholded as in :func:`denominator_threshold`.

    Args:
        in_phase: in-phase magnitude image, any shape.
        opposed_phase: opposed-phase magnitude image, same shape and grid.
        assume: ``"water_dominant"`` or ``"fat_dominant"`` (see :func:`water_fat_from_in_opposed`).
        min_denominator: absolute threshold on ``IP`` (intensity units).
        relative_threshold: threshold as a fraction of the 99th percentile of the positive ``IP``.

    Returns:
        float32 FF array of the input shape, NaN where excluded.
    """
    water, fat = water_fat_from_in_opposed(in_phase, opposed_phase, assume=assume)
    return fat_fraction_from_water_fat(water, fat, min_denominator, relative_threshold, denominator="sum")


def fat_fraction_magnitude_discrimination(
    water: np.ndarray,
    fat: np.ndarray,
    in_phase: np.ndarray,
    min_denominator: float | None = None,
    relative_threshold: float = _DEFAULT_RELATIVE_THRESHOLD,
) -> np.ndarray:
    """FF (fraction, float32) by magnitude discrimination (Liu et al., MRM 2007;58:354-364).

    .. math::

        FF = |F| / IP \\quad (|F| > |W|,\\ \\text{fat-dominant}), \\qquad FF = 1 - |W| / IP \\quad (\\text{otherwise})

    with ``IP = |W + F|``, the in-phase magnitude. Why: magnitude images carry Rician noise whose mean is positive,
    so where the true fat signal is near zero the fat magnitude is biased upward and ``|F| / (|F| + |W|)``
    over-estimates low FF (Liu reports 15 % -> < 1 % bias after correction). Taking the *dominant* component, whose
    magnitude is far above the noise floor, together with the in-phase magnitude (also high SNR) removes that bias
    at low FF and, symmetrically, at high FF. Without noise ``IP = W + F`` and both branches equal ``F / (F + W)``.

    Args:
        water: water magnitude image, any shape.
        fat: fat magnitude image, same shape and grid.
        in_phase: in-phase magnitude image (``|W + F|``), same shape and grid.
        min_denominator: absolute threshold on ``IP`` (intensity units).
        relative_threshold: threshold as a fraction of the 99th percentile of the positive ``IP``.

    Returns:
        float32 FF array of the input shape, NaN where ``IP`` is below the threshold.

    Example:
        >>> import numpy as np
        >>> ff = fat_fraction_magnitude_discrimination(np.array([90.0, 20.0]), np.array([10.0, 80.0]),
        ...                                            np.array([100.0, 100.0]))
        >>> [round(float(v), 3) for v in ff]
        [0.1, 0.8]
    """
    w, f = _as_float_pair(water, fat, "water", "fat")
    ip, _ = _as_float_pair(in_phase, w, "in_phase", "water")
    w, f, ip = np.abs(w), np.abs(f), np.abs(ip)
    threshold = denominator_threshold(ip, min_denominator, relative_threshold)
    valid = np.isfinite(ip) & (ip > 0) & (ip >= threshold) & np.isfinite(w) & np.isfinite(f)
    safe_ip = np.where(valid, ip, 1.0)
    ff = np.where(f > w, f / safe_ip, 1.0 - w / safe_ip)
    return np.where(valid, ff, np.nan).astype(np.float32)


def exclude_out_of_range(
    ff: np.ndarray, low: float = PHYSICAL_FF_RANGE[0], high: float = PHYSICAL_FF_RANGE[1]
) -> tuple[np.ndarray, int]:
    """Set FF values outside ``[low, high]`` (fraction) to NaN and count them.

    Such values come from near-zero denominators at edges and in background (GE sample: -69 to +35 as a fraction);
    they are artefacts, so they are excluded rather than clipped (a clipped 35 would still enter the mean as 1).

    Args:
        ff: FF as a fraction, any shape.
        low: lowest accepted value (fraction).
        high: highest accepted value (fraction).

    Returns:
        ``(float32 copy with NaN outside the range, number of finite values set to NaN)``.
    """
    if not low < high:
        raise ValueError(f"low must be < high, got low={low}, high={high}")
    out = np.array(ff, dtype=np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        outside = np.isfinite(out) & ((out < low) | (out > high))
    out[outside] = np.nan
    return out, int(outside.sum())


# ----------------------------------------------------------------------------------------------------------------
# Vendor FF map scale
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleDetection:
    """How the values of an FF map relate to a fraction 0-1.

    Attributes:
        scale: ``"fraction"`` (0-1), ``"percent"`` (0-100) or ``"permille"`` (0-1000, e.g. int16 maps).
        divisor: 1, 100 or 1000; ``fraction = value / divisor``.
        confidence: share (0-1) of the analysed values inside the physical range of the chosen scale
            (:data:`PHYSICAL_FF_RANGE` times ``divisor``); 1.0 for an override.
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
    nonzero = values[values != 0]
    p95 = float(np.percentile(values, 95)) if n else float("nan")
    p99 = float(np.percentile(values, 99)) if n else float("nan")
    in_range: dict[str, float] = {}
    above: dict[str, float] = {}
    below: dict[str, float] = {}
    for name, d in SCALE_DIVISORS.items():
        lo, hi = PHYSICAL_FF_RANGE[0] * d, PHYSICAL_FF_RANGE[1] * d
        in_range[name] = float(np.mean((values >= lo) & (values <= hi))) if n else float("nan")
        above[name] = float(np.mean(values > hi)) if n else float("nan")
        below[name] = float(np.mean(values < lo)) if n else float("nan")

    if scale is not None:
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

    override_hint = "pass scale='fraction'|'percent'|'permille' to set it explicitly"
    if nonzero.size == 0:
        raise ValueError(
            f"FF map{where} is all zero (or empty/non-finite){' inside the mask' if mask is not None else ''}: "
            f"its scale cannot be detected and it holds no FF values; check the file, or {override_hint}"
        )
    if n < _MIN_SCALE_VALUES:
        raise ValueError(f"FF map{where} has only {n} usable values (< {_MIN_SCALE_VALUES}); {override_hint}")

    stats = f"P95={p95:.4g}, P99={p99:.4g}, n={n}"
    for name, d in SCALE_DIVISORS.items():
        fits_max = p95 <= _SCALE_P95_FACTOR * d
        fits_range = in_range[name] >= _SCALE_MIN_IN_RANGE
        fits_tails = above[name] <= max(_SCALE_MAX_EXCESS, _SCALE_TAIL_RATIO * below[name])
        if not (fits_max and fits_range and fits_tails):
            continue
        if name == "fraction" and p99 < min_fraction_p99:
            raise ValueError(
                f"FF map{where} is ambiguous: its values lie within 0-1 but the 99th percentile is only {p99:.4g} "
                f"(< {min_fraction_p99}); that may be a fraction map of lean tissue or a percent/permille map of "
                f"near-zero FF; {override_hint}"
            )
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
    raise ValueError(
        f"FF map{where} fits no FF scale ({stats}; share in range: "
        + ", ".join(f"{k} {v:.1%}" for k, v in in_range.items())
        + f"): it may not be an FF map; {override_hint}"
    )


def normalise_ff_map(
    ff_map: np.ndarray,
    scale: str | None = None,
    mask: np.ndarray | None = None,
    source: str | None = None,
    valid_range: tuple[float, float] = PHYSICAL_FF_RANGE,
) -> tuple[np.ndarray, ScaleDetection]:
    """Convert a vendor FF map to a float32 fraction 0-1, with out-of-range values set to NaN.

    The scale comes from :func:`detect_ff_scale` (or ``scale``). After division, values outside ``valid_range``
    (fraction) become NaN (:func:`exclude_out_of_range`) and their count is stored in the returned record's
    ``n_out_of_range``. The map is never cast to an integer (TotalSegmentator's int16 cast turns a 0-1 map into 0).

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


# ----------------------------------------------------------------------------------------------------------------
# Grids
# ----------------------------------------------------------------------------------------------------------------


def _check_affine(affine: np.ndarray, name: str) -> np.ndarray:
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise ValueError(f"affine of {name} must be a finite 4x4 matrix, got shape {aff.shape}")
    if abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        raise ValueError(f"affine of {name} is singular: {aff[:3, :3].tolist()}")
    return aff


def _axcodes(directions: np.ndarray) -> str:
    """Orientation letters (RAS world) of each voxel axis, e.g. ``"RAS"`` or ``"LPS"``."""
    letters = (("L", "R"), ("P", "A"), ("I", "S"))
    codes = []
    for col in directions.T:
        ax = int(np.argmax(np.abs(col)))
        codes.append(letters[ax][int(col[ax] > 0)])
    return "".join(codes)


def _grid_problems(
    shape_a: Iterable[int],
    affine_a: np.ndarray,
    shape_b: Iterable[int],
    affine_b: np.ndarray,
    rtol_spacing: float,
    atol_mm: float,
    atol_direction: float,
) -> list[str]:
    """Human-readable differences between two grids; empty when they agree within tolerance."""
    problems: list[str] = []
    sa, sb = tuple(int(s) for s in shape_a)[:3], tuple(int(s) for s in shape_b)[:3]
    if sa != sb:
        problems.append(f"shape {sa} vs {sb}")
    a, b = _check_affine(affine_a, "A"), _check_affine(affine_b, "B")
    spa, spb = np.linalg.norm(a[:3, :3], axis=0), np.linalg.norm(b[:3, :3], axis=0)
    rel = np.abs(spa - spb) / np.maximum(spa, spb)
    if np.any(rel > rtol_spacing):
        problems.append(
            f"voxel spacing {np.round(spa, 5).tolist()} vs {np.round(spb, 5).tolist()} mm "
            f"(relative difference {rel.max():.3%} > {rtol_spacing:.3%})"
        )
    da, db = a[:3, :3] / spa, b[:3, :3] / spb
    if np.max(np.abs(da - db)) > atol_direction:
        problems.append(
            f"orientation {_axcodes(da)} vs {_axcodes(db)} (direction cosines differ by up to "
            f"{np.max(np.abs(da - db)):.4g})"
        )
    offset = float(np.linalg.norm(a[:3, 3] - b[:3, 3]))
    if offset > atol_mm:
        problems.append(
            f"origin {np.round(a[:3, 3], 4).tolist()} vs {np.round(b[:3, 3], 4).tolist()} "
            f"({offset:.4g} mm apart > {atol_mm} mm)"
        )
    return problems


def check_same_grid(
    shape_a: Iterable[int],
    affine_a: np.ndarray,
    shape_b: Iterable[int],
    affine_b: np.ndarray,
    rtol_spacing: float = 1e-3,
    atol_mm: float = 0.05,
    atol_direction: float = 1e-3,
    name_a: str | None = None,
    name_b: str | None = None,
) -> None:
    """Raise ``ValueError`` unless two images share one voxel grid (within tolerance).

    Compared: the spatial shape (first three dimensions), the voxel spacing (column norms of the affine, relative
    tolerance ``rtol_spacing``: 0.1 % by default, which absorbs DICOM/NIfTI float rounding), the orientation
    (direction cosines, absolute tolerance ``atol_direction`` ~ 0.06 degrees) and the origin (Euclidean distance,
    ``atol_mm``: 0.05 mm, a tenth of the finest MR voxel, well above float32 rounding of world coordinates).
    Water and fat (and in-phase, FF map) of one subject must pass; a mask that fails must be mapped with
    :func:`map_labels_to_grid`, never indexed.

    Args:
        shape_a: shape of image A (extra trailing dimensions are ignored).
        affine_a: 4x4 voxel-to-world (RAS, mm) affine of image A.
        shape_b: shape of image B.
        affine_b: 4x4 affine of image B.
        rtol_spacing: relative spacing tolerance per axis.
        atol_mm: origin tolerance in mm.
        atol_direction: tolerance on each direction-cosine component (unitless).
        name_a: file name of A for the message.
        name_b: file name of B for the message.

    Raises:
        ValueError: naming both images and every difference found (shape, spacing, orientation, origin).
    """
    na, nb = name_a or "image A", name_b or "image B"
    try:
        problems = _grid_problems(shape_a, affine_a, shape_b, affine_b, rtol_spacing, atol_mm, atol_direction)
    except ValueError as err:
        raise ValueError(f"cannot compare the grids of {na} and {nb}: {err}") from err
    if problems:
        raise ValueError(f"grid mismatch between {na} and {nb}: " + "; ".join(problems))


def map_labels_to_grid(
    label_data: np.ndarray,
    label_affine: np.ndarray,
    target_shape: Iterable[int],
    target_affine: np.ndarray,
    atol_mm: float = 0.05,
    fill_value: int | float = 0,
) -> np.ndarray:
    """Resample a label map onto another voxel grid by nearest neighbour in world coordinates.

    For each target voxel ``t``, the source voxel is ``round(inv(A_label) @ A_target @ t)`` (the composed
    voxel-to-voxel affine), so flips (LPS vs RAS), axis permutations, shifts, crops/pads and anisotropic spacing are
    all handled; values are copied, never interpolated, and the dtype is kept. Target voxels whose centre falls
    outside the label grid get ``fill_value``. When both grids agree within :func:`check_same_grid`'s tolerances
    the labels are returned as a copy unchanged (no rounding at all). Rounding is ``floor(c + 0.5)``, explicit
    rather than through ``scipy.ndimage.map_coordinates(order=0)``, so that ties at exact half-voxel positions are
    resolved the same way on every platform; the work is vectorised slice by slice to bound memory.

    Args:
        label_data: 3D label map ``(I, J, K)`` (any dtype).
        label_affine: 4x4 voxel-to-world affine of ``label_data`` (mm).
        target_shape: 3D shape of the target grid (e.g. the FF map).
        target_affine: 4x4 voxel-to-world affine of the target grid (mm).
        atol_mm: tolerance (mm) for the same-grid shortcut and for target centres lying just outside the outer
            face of the label grid (float noise), which are still sampled from the border voxel.
        fill_value: value for target voxels outside the label grid.

    Returns:
        Array of ``target_shape`` with ``label_data``'s dtype.

    Example:
        >>> import numpy as np
        >>> lab = np.arange(4, dtype=np.uint8).reshape(4, 1, 1)
        >>> lps = np.diag([-1.0, -1.0, 1.0, 1.0]); lps[0, 3] = 3.0  # x = 3 - i
        >>> map_labels_to_grid(lab, lps, (4, 1, 1), np.eye(4)).ravel().tolist()
        [3, 2, 1, 0]
    """
    labels = np.asarray(label_data)
    if labels.ndim != 3:
        raise ValueError(f"label_data must be 3D (I, J, K), got shape {labels.shape}")
    shape = tuple(int(s) for s in target_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"target_shape must be three positive sizes, got {shape}")
    src = _check_affine(label_affine, "the label map")
    dst = _check_affine(target_affine, "the target grid")
    if not _grid_problems(labels.shape, src, shape, dst, 1e-3, atol_mm, 1e-3):
        return labels.copy()

    vox = np.linalg.inv(src) @ dst  # target voxel -> label voxel
    lin, off = vox[:3, :3], vox[:3, 3]
    tol_vox = atol_mm / np.linalg.norm(src[:3, :3], axis=0)  # mm -> label voxels, per axis
    upper = np.asarray(labels.shape, dtype=np.float64) - 0.5
    ii, jj = np.meshgrid(np.arange(shape[0], dtype=np.float64), np.arange(shape[1], dtype=np.float64), indexing="ij")
    base = lin[:, 0, None, None] * ii + lin[:, 1, None, None] * jj + off[:, None, None]  # (3, I, J)
    out = np.full(shape, fill_value, dtype=labels.dtype)
    for k in range(shape[2]):
        coords = base + lin[:, 2, None, None] * k
        # pull centres that sit within tolerance outside the outer faces back inside (float noise, not geometry)
        lo_edge = (coords < -0.5) & (coords >= -0.5 - tol_vox[:, None, None])
        hi_edge = (coords >= upper[:, None, None]) & (coords <= upper[:, None, None] + tol_vox[:, None, None])
        idx = np.floor(coords + 0.5).astype(np.int64)
        idx = np.where(lo_edge, 0, idx)
        idx = np.where(hi_edge, np.asarray(labels.shape)[:, None, None] - 1, idx)
        inside = np.all((idx >= 0) & (idx < np.asarray(labels.shape)[:, None, None]), axis=0)
        out[:, :, k][inside] = labels[idx[0][inside], idx[1][inside], idx[2][inside]]
    return out


def slice_axis_from_affine(affine: np.ndarray) -> int:
    """The voxel axis closest to world z (superior-inferior): the axial slice axis.

    The axis whose unit direction vector has the largest absolute z component. A warning is issued when even the
    best axis is more than ~40 degrees off z (strongly oblique or non-axial acquisition).

    Args:
        affine: 4x4 voxel-to-world (RAS, mm) affine.

    Returns:
        0, 1 or 2.
    """
    aff = _check_affine(affine, "the image")
    directions = aff[:3, :3] / np.linalg.norm(aff[:3, :3], axis=0)
    axis = int(np.argmax(np.abs(directions[2])))
    if abs(directions[2, axis]) < 0.75:
        warnings.warn(
            f"no voxel axis is close to world z (best: axis {axis}, cos = {abs(directions[2, axis]):.2f}); "
            "superior/inferior decisions may be wrong",
            RuntimeWarning,
        )
    return axis


def truncation_flags(
    label_data: np.ndarray, labels: Iterable[int] | None, affine: np.ndarray
) -> dict[int, dict[str, bool]]:
    """Flag labels that touch the first or last axial slice (muscle cut off by the field of view).

    The slice axis is the voxel axis closest to world z (:func:`slice_axis_from_affine`); the sign of its z
    component decides which end is inferior, so LPS/RAS and reversed slice orders are handled. A truncated muscle
    has a partial volume; its FF is still usable (FF is less sensitive to coverage than volume).

    Args:
        label_data: 3D label map.
        labels: label values to report; ``None`` reports every non-zero value present. An absent label gets
            ``False`` for both flags (the caller reports it through its voxel count).
        affine: 4x4 voxel-to-world affine of ``label_data``.

    Returns:
        ``{label: {"truncated_inferior": bool, "truncated_superior": bool}}``.
    """
    data = np.asarray(label_data)
    if data.ndim != 3:
        raise ValueError(f"label_data must be 3D, got shape {data.shape}")
    aff = _check_affine(affine, "the label map")
    axis = slice_axis_from_affine(aff)
    z_increases_with_index = aff[2, axis] > 0
    first = set(np.unique(np.take(data, 0, axis=axis)).tolist())
    last = set(np.unique(np.take(data, data.shape[axis] - 1, axis=axis)).tolist())
    inferior_end, superior_end = (first, last) if z_increases_with_index else (last, first)
    values = [v for v in np.unique(data).tolist() if v != 0] if labels is None else list(labels)
    return {int(v): {"truncated_inferior": v in inferior_end, "truncated_superior": v in superior_end} for v in values}


# ----------------------------------------------------------------------------------------------------------------
# Fat-water swaps
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSwapFlags:
    """Swap evidence for one label.

    Attributes:
        label: label value.
        n_voxels: voxels of the label with a valid FF.
        median_ff: median FF (fraction) of the label; NaN when empty.
        contralateral_median_ff: median FF of the same muscle on the other side; NaN when absent or unpaired.
        asymmetric: median FF > 0.6 while the other side is < 0.4 (whole-muscle swap on one side).
        swapped_region: a large connected fat-dominant region whose FF mirrors the rest of the label (1 - FF).
        swapped_region_voxels: voxels in such regions.
    """

    label: int
    n_voxels: int
    median_ff: float
    contralateral_median_ff: float
    asymmetric: bool
    swapped_region: bool
    swapped_region_voxels: int

    @property
    def suspected(self) -> bool:
        """True when any swap rule fired for this label."""
        return self.asymmetric or self.swapped_region


@dataclass(frozen=True)
class SwapReport:
    """Result of :func:`detect_fat_water_swap`: flags for visual QC, not a correction.

    Attributes:
        global_swap: the whole volume looks swapped (periphery less fatty than the interior).
        regional_swap: some slices or labels look swapped while the volume as a whole does not.
        periphery_median_ff: median FF of the outer body shell (subcutaneous fat in a normal scan).
        core_median_ff: median FF of the body interior.
        body_fat_dominant_fraction: share of body voxels with FF > 0.5 (information only; obese bodies exceed 0.5).
        muscle_median_ff: median FF over all labelled voxels; NaN without labels.
        swapped_slices: indices (along ``slice_axis``) of slices whose own periphery/core test says swapped.
        per_label: label value -> :class:`LabelSwapFlags` (empty without labels).
        reasons: one sentence per rule that fired or could not be evaluated.
    """

    global_swap: bool
    regional_swap: bool
    periphery_median_ff: float
    core_median_ff: float
    body_fat_dominant_fraction: float
    muscle_median_ff: float
    swapped_slices: tuple[int, ...]
    per_label: dict[int, LabelSwapFlags]
    reasons: tuple[str, ...]

    @property
    def any_swap(self) -> bool:
        """True when a global or regional swap is suspected."""
        return self.global_swap or self.regional_swap


_MIN_SHELL_VOXELS = 20
_ASYM_HIGH, _ASYM_LOW = 0.6, 0.4
_MIRROR_TOLERANCE = 0.1
_MIN_REGION_SHARE = 0.1


def _slice_index(slice_axis: int, s: int) -> tuple[slice | int, ...]:
    """Index tuple selecting slice ``s`` along ``slice_axis`` of a 3D array."""
    index: list[slice | int] = [slice(None)] * 3
    index[slice_axis] = s
    return tuple(index)


def _in_plane_depth_mm(body: np.ndarray, slice_axis: int, voxel_size_mm: tuple[float, float, float]) -> np.ndarray:
    """In-plane Euclidean distance (mm) of each body voxel from the outside of the body, slice by slice.

    2D, not 3D, because the first and last slices of a field of view are not the body surface.
    """
    sampling = tuple(float(v) for i, v in enumerate(voxel_size_mm) if i != slice_axis)
    depth = np.zeros(body.shape, dtype=np.float64)
    for s in range(body.shape[slice_axis]):
        idx = _slice_index(slice_axis, s)
        if body[idx].any():
            depth[idx] = ndimage.distance_transform_edt(body[idx], sampling=sampling)
    return depth


def _default_body_mask(water: np.ndarray, fat: np.ndarray, slice_axis: int) -> np.ndarray:
    """Body = ``|W| + |F|`` above 10 % of its robust maximum, holes (gas, bone cortex) filled slice by slice."""
    signal = np.abs(water) + np.abs(fat)
    threshold = denominator_threshold(signal, None, 0.1)
    body = np.isfinite(signal) & (signal >= threshold)
    filled = np.zeros_like(body)
    for s in range(body.shape[slice_axis]):
        idx = _slice_index(slice_axis, s)
        filled[idx] = ndimage.binary_fill_holes(body[idx])
    return filled


def _periphery_says_swapped(ff: np.ndarray, shell: np.ndarray, core: np.ndarray) -> tuple[bool | None, float, float]:
    """Normal anatomy: the body shell (subcutaneous fat) is fatter than the interior. ``None`` if too few voxels."""
    shell_ff, core_ff = ff[shell], ff[core]
    shell_ff, core_ff = shell_ff[np.isfinite(shell_ff)], core_ff[np.isfinite(core_ff)]
    if shell_ff.size < _MIN_SHELL_VOXELS or core_ff.size < _MIN_SHELL_VOXELS:
        return None, float("nan"), float("nan")
    p, c = float(np.median(shell_ff)), float(np.median(core_ff))
    return bool(p < 0.5 and p < c), p, c


def _label_flags(ff: np.ndarray, labels: np.ndarray, min_region_voxels: int) -> dict[int, LabelSwapFlags]:
    """Per-label asymmetry and mirrored-region rules (see :func:`detect_fat_water_swap`)."""
    values = [int(v) for v in np.unique(labels) if v > 0]
    # each label is worked on inside its bounding box: a muscle fills a few percent of the volume, and whole-volume
    # masks and component labelling per label cost seconds per subject at the reference geometry
    boxes = ndimage.find_objects(np.asarray(labels, dtype=np.int64)) if values else []
    crops: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    medians: dict[int, float] = {}
    for v in values:
        box = boxes[v - 1]
        ff_box = ff[box]
        in_label = (labels[box] == v) & np.isfinite(ff_box)
        crops[v] = ff_box, in_label
        sel = ff_box[in_label]
        medians[v] = float(np.median(sel)) if sel.size else float("nan")
    flags: dict[int, LabelSwapFlags] = {}
    for v in values:
        ff_box, in_label = crops[v]
        n = int(in_label.sum())
        other = LEFT_RIGHT_SWAP.get(v)
        contra = medians.get(other, float("nan")) if other not in (None, 0, v) else float("nan")
        asym = bool(medians[v] > _ASYM_HIGH and contra < _ASYM_LOW)  # NaN comparisons are False
        fat_dom = in_label & (ff_box > 0.5)
        rest = ff_box[in_label & ~fat_dom]
        region_voxels = 0
        if rest.size >= _MIN_SHELL_VOXELS:
            rest_median = float(np.median(rest))
            components, n_comp = ndimage.label(fat_dom)
            if n_comp:
                sizes = np.bincount(components.ravel(), minlength=n_comp + 1)[1:]
                sums = ndimage.sum_labels(ff_box, components, index=np.arange(1, n_comp + 1))
                means = sums / np.maximum(sizes, 1)
                # a swap maps FF -> 1 - FF, so a swapped part of a water-dominant muscle mirrors the rest around 0.5;
                # it must be large (>= 10 % of the label) to set it apart from fat streaks and partial volume
                big = sizes >= max(min_region_voxels, _MIN_REGION_SHARE * n)
                mirrored = np.abs(means - (1.0 - rest_median)) <= _MIRROR_TOLERANCE
                region_voxels = int(sizes[big & mirrored].sum()) if rest_median < 0.5 else 0
        flags[v] = LabelSwapFlags(
            label=v,
            n_voxels=n,
            median_ff=medians[v],
            contralateral_median_ff=contra,
            asymmetric=asym,
            swapped_region=region_voxels > 0,
            swapped_region_voxels=region_voxels,
        )
    return flags


def detect_fat_water_swap(
    water: np.ndarray,
    fat: np.ndarray,
    body_mask: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    slice_axis: int = 2,
    voxel_size_mm: tuple[float, float, float] | None = None,
    skin_mm: float = 3.0,
    shell_mm: float = 6.0,
    min_region_voxels: int = 50,
    min_denominator: float | None = None,
    relative_threshold: float = _DEFAULT_RELATIVE_THRESHOLD,
) -> SwapReport:
    """Flag global and regional fat-water swaps in a Dixon water/fat pair with simple anatomical rules.

    A swap exchanges W and F, so FF becomes 1 - FF. Rules (FF = ``|F| / (|F| + |W|)``, dominance of magnitudes):

    - **Global** (no labels needed): in normal anatomy the body periphery, the shell from ``skin_mm`` to
      ``skin_mm + shell_mm`` below the surface (subcutaneous fat), is fat-dominant and fattier than the interior
      (muscle, organs). The volume is flagged when the shell's median FF is < 0.5 *and* below the interior's.
      The skin (water-dominant, with partial volume: median FF ~0.4 in the outer 2.4 mm of the real GE thigh) is
      skipped so it does not pull the shell below 0.5. The ordering survives obesity (a large visceral fat area
      can make most of the body fat-dominant, so "most voxels fat-dominant" alone would flag normal obese scans)
      and leanness (a thin fat layer lowers the shell median, but the interior stays lower). Without a usable
      shell, the muscle rule decides: median FF over all labelled voxels > 0.5.
    - **Per slice**: the same shell/core test on each slice along ``slice_axis``; slices flagged while the volume
      is not give a regional swap (stations or slabs reconstructed with the wrong sign).
    - **Per label** (``labels`` given): *asymmetry*, label median FF > 0.6 while the same muscle on the other
      side (:data:`scripts.labels.LEFT_RIGHT_SWAP`) is < 0.4; *mirrored region*, a connected fat-dominant region
      of at least ``max(min_region_voxels, 10 % of the label)`` voxels whose mean FF is within 0.1 of
      ``1 - median FF`` of the water-dominant rest of a water-dominant label.

    Warning:
        These are heuristics for QC. Severe fatty infiltration (muscle FF > 50 %) can look like a regional swap,
        and large confluent fat inside a muscle can trigger the mirrored-region rule. In a *swapped* scan of a
        severely fat-replaced limb the interior may be as water-like as the swapped subcutaneous fat, so the
        global rule can miss it (it did flag the swapped real GE thigh: shell 0.07 vs interior 0.14). A swap in
        fat-dominant tissue only is not detected. Flag and review; do not correct automatically.

    Args:
        water: 3D water image, intensity units.
        fat: 3D fat image, same shape and grid.
        body_mask: optional 3D boolean body mask; by default ``|W| + |F|`` above 10 % of its robust maximum with
            holes filled per slice.
        labels: optional 3D label map on the same grid (values of :mod:`scripts.labels`).
        slice_axis: axial voxel axis (see :func:`slice_axis_from_affine`); depth is measured in-plane only.
        voxel_size_mm: voxel spacing (mm) per array axis, e.g. the NIfTI zooms; ``None`` assumes 1 mm.
        skin_mm: depth (mm) below the body surface skipped as skin.
        shell_mm: thickness (mm) of the periphery shell below the skin.
        min_region_voxels: minimum size (voxels) of a mirrored region inside a label.
        min_denominator: FF denominator threshold (see :func:`fat_fraction_from_water_fat`).
        relative_threshold: relative FF denominator threshold.

    Returns:
        A :class:`SwapReport`.
    """
    w, f = _as_float_pair(water, fat, "water", "fat")
    if w.ndim != 3:
        raise ValueError(f"water and fat must be 3D, got shape {w.shape}")
    if slice_axis not in (0, 1, 2):
        raise ValueError(f"slice_axis must be 0, 1 or 2, got {slice_axis}")
    if skin_mm < 0 or shell_mm <= 0:
        raise ValueError(f"skin_mm must be >= 0 and shell_mm > 0, got skin_mm={skin_mm}, shell_mm={shell_mm}")
    sizes = [1.0, 1.0, 1.0] if voxel_size_mm is None else [float(v) for v in voxel_size_mm]
    if len(sizes) != 3 or min(sizes) <= 0:
        raise ValueError(f"voxel_size_mm must be three positive spacings in mm, got {voxel_size_mm}")
    spacing = (sizes[0], sizes[1], sizes[2])
    ff = fat_fraction_from_water_fat(w, f, min_denominator, relative_threshold, denominator="abs")
    valid = np.isfinite(ff)
    if body_mask is None:
        body = _default_body_mask(w, f, slice_axis)
    else:
        body = np.asarray(body_mask).astype(bool)
        if body.shape != w.shape:
            raise ValueError(f"body_mask shape {body.shape} differs from water shape {w.shape}")
    depth = _in_plane_depth_mm(body, slice_axis, spacing)
    shell = body & (depth > skin_mm) & (depth <= skin_mm + shell_mm)
    core = body & (depth > skin_mm + shell_mm)
    reasons: list[str] = []

    shell_swapped, periphery_ff, core_ff = _periphery_says_swapped(ff, shell, core)
    body_ff = ff[body & valid]
    fat_dom_share = float(np.mean(body_ff > 0.5)) if body_ff.size else float("nan")

    muscle_ff = float("nan")
    per_label: dict[int, LabelSwapFlags] = {}
    lab: np.ndarray | None = None
    if labels is not None:
        lab = np.asarray(labels)
        if lab.shape != w.shape:
            raise ValueError(f"labels shape {lab.shape} differs from water shape {w.shape}")
        in_muscle = ff[(lab != 0) & valid]
        muscle_ff = float(np.median(in_muscle)) if in_muscle.size else float("nan")
        per_label = _label_flags(ff, lab, min_region_voxels)
    muscle_swapped = bool(muscle_ff > 0.5)  # False for NaN

    if shell_swapped is None:
        global_swap = muscle_swapped
        reasons.append("body periphery/core test not possible (too few voxels)")
        if muscle_swapped:
            reasons.append(f"global swap: median FF over muscle labels is {muscle_ff:.2f} > 0.5")
    else:
        global_swap = shell_swapped
        if shell_swapped:
            reasons.append(
                f"global swap: periphery median FF {periphery_ff:.2f} < 0.5 and below the interior's {core_ff:.2f}"
            )
        if lab is not None and np.isfinite(muscle_ff) and muscle_swapped != shell_swapped:
            reasons.append(
                f"muscle labels disagree with the periphery test (median muscle FF {muscle_ff:.2f}): severe fatty "
                "infiltration, a regional swap or wrong labels; review visually"
            )

    swapped_slices: list[int] = []
    for s in range(w.shape[slice_axis]):
        idx = _slice_index(slice_axis, s)
        says, _, _ = _periphery_says_swapped(ff[idx], shell[idx], core[idx])
        if says:
            swapped_slices.append(s)
    if swapped_slices and not global_swap:
        reasons.append(f"regional swap: slices {swapped_slices} fail the periphery/core test")
    for v, flag in per_label.items():
        if flag.asymmetric:
            reasons.append(
                f"label {v}: median FF {flag.median_ff:.2f} > {_ASYM_HIGH} while the other side is "
                f"{flag.contralateral_median_ff:.2f} < {_ASYM_LOW}"
            )
        if flag.swapped_region:
            reasons.append(f"label {v}: {flag.swapped_region_voxels} voxels form a region with FF mirrored (1 - FF)")
    regional_swap = not global_swap and (bool(swapped_slices) or any(fl.suspected for fl in per_label.values()))
    if global_swap or regional_swap:
        logger.warning("fat-water swap suspected: %s", "; ".join(reasons))
    return SwapReport(
        global_swap=global_swap,
        regional_swap=regional_swap,
        periphery_median_ff=periphery_ff,
        core_median_ff=core_ff,
        body_fat_dominant_fraction=fat_dom_share,
        muscle_median_ff=muscle_ff,
        swapped_slices=tuple(swapped_slices),
        per_label=per_label,
        reasons=tuple(reasons),
    )
