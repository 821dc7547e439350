"""Voxel-wise fat fraction (FF) from Dixon images: water/fat, in-phase/opposed-phase, magnitude discrimination.

Pure NumPy array functions: arrays in, arrays out; the caller does the file I/O.

Conventions shared with the rest of the bundle (docs/design.md):

- FF is a **fraction in 0-1** everywhere in code (float32); tables multiply by 100 (``ff_mean_pct``).
- FF is computed on the native grid of the Dixon images (:mod:`scripts.grid` brings masks there).
- Voxels whose denominator is below a stated threshold (:func:`denominator_threshold`) are **NaN** (excluded from
  means), never 0.

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
from typing import Literal

import numpy as np
from scripts.quantification.positive_percentile import positive_percentile

__all__ = [
    "PHYSICAL_FF_RANGE",
    "denominator_threshold",
    "fat_fraction_from_water_fat",
    "fat_fraction_with_threshold",
    "water_fat_terms",
    "water_fat_from_in_opposed",
    "fat_fraction_from_in_opposed",
    "fat_fraction_magnitude_discrimination",
    "exclude_out_of_range",
]

logger = logging.getLogger(__name__)

#: Physical FF range (fraction) that survives noise: F/(F+W) leaves 0-1 slightly at noisy voxels; beyond this
#: band a value is an artefact (edge voxels, near-zero denominators), not tissue.
PHYSICAL_FF_RANGE: tuple[float, float] = (-0.05, 1.05)

_DEFAULT_RELATIVE_THRESHOLD = 0.05
_ROBUST_MAX_PERCENTILE = 99.0


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
    # exactly np.percentile of the positive values in float64, without copying and sorting them all
    robust_max = positive_percentile(np.asarray(denominator), _ROBUST_MAX_PERCENTILE)
    if robust_max is None:
        warnings.warn("FF denominator has no positive value: every voxel is excluded (NaN)", RuntimeWarning)
        return float("inf")
    return float(relative_threshold * robust_max)


def _guarded_ratio(
    numerator: np.ndarray, denominator: np.ndarray, threshold: float, c_order: bool = True
) -> np.ndarray:
    """``numerator / denominator`` as float32 with NaN where the denominator is not positive or below threshold.

    Divided in the inputs' (float64) precision and rounded once to float32 as it is stored, which is what a float64
    result converted with ``astype(np.float32)`` gives, without the float64 volume. Worked on in the inputs' memory
    order (NIfTI images are Fortran-ordered), the result is returned C-ordered (the FF map's layout, kept because
    whole-array float sums depend on it), or in that order with ``c_order=False``.
    """
    valid = np.isfinite(denominator) & (denominator > 0) & (denominator >= threshold) & np.isfinite(numerator)
    fortran = denominator.flags.f_contiguous and not denominator.flags.c_contiguous
    out = np.full(denominator.shape, np.nan, dtype=np.float32, order="F" if fortran else "C")
    np.divide(numerator, denominator, out=out, where=valid, casting="same_kind")
    return np.ascontiguousarray(out) if c_order else out


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
    return fat_fraction_with_threshold(water, fat, min_denominator, relative_threshold, denominator)[0]


def fat_fraction_with_threshold(
    water: np.ndarray,
    fat: np.ndarray,
    min_denominator: float | None = None,
    relative_threshold: float = _DEFAULT_RELATIVE_THRESHOLD,
    denominator: Literal["sum", "abs"] = "sum",
) -> tuple[np.ndarray, float]:
    """:func:`fat_fraction_from_water_fat` and the denominator threshold it applied (intensity units).

    The denominator is formed once, in float64 (the sum of two float32 values is exact there); the numerator stays
    in its own type, which the division widens to float64 exactly.

    Returns:
        ``(float32 FF fraction of the input shape, NaN where excluded; threshold)``.
    """
    num, den = water_fat_terms(water, fat, denominator)
    threshold = denominator_threshold(den, min_denominator, relative_threshold)
    logger.debug("FF from water/fat: denominator=%s threshold=%.4g", denominator, threshold)
    return _guarded_ratio(num, den, threshold), threshold


def water_fat_terms(
    water: np.ndarray, fat: np.ndarray, denominator: Literal["sum", "abs"] = "sum"
) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator of ``F / (F + W)`` (``"sum"``) or ``|F| / (|F| + |W|)`` (``"abs"``).

    Args:
        water: water image, any shape, intensity units.
        fat: fat image, same shape.
        denominator: ``"sum"`` or ``"abs"`` (see :func:`fat_fraction_from_water_fat`).

    Returns:
        ``(numerator in the images' float type, float64 denominator)``, both of the input shape and memory order.
        Integer images are widened to float64 first (``np.abs`` of int16 -32768 would overflow).
    """
    w, f = (x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64) for x in map(np.asarray, (water, fat)))
    if w.shape != f.shape:
        raise ValueError(f"water and fat must have the same shape, got {w.shape} and {f.shape}")
    if denominator == "sum":
        return f, np.add(w, f, dtype=np.float64)
    if denominator == "abs":
        num = np.abs(f)
        return num, np.add(np.abs(w), num, dtype=np.float64)
    raise ValueError(f"denominator must be 'sum' or 'abs', got {denominator!r}")


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
