"""Intensity checks of one Dixon image: finite values, some signal, and magnitude images that are magnitudes.

Negative intensities in magnitude images (water, fat, in-phase, opposed-phase) are refused when more than
``max_negative_share`` of the non-zero voxels lie below ``-negative_level_rel`` times their 99th percentile (a
phase, real or imaginary image has about half its voxels far below zero); otherwise clipped at 0 with a warning.
See :func:`scripts.io.load.load_dixon` (check 3) for why small negatives are tolerated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scripts.io.errors import DixonInputError
from scripts.io.roles import MAGNITUDE_ROLES, role_label
from scripts.io.scan_notes import ScanNotes

__all__ = ["IntensityLimits", "check_values"]


@dataclass(frozen=True)
class IntensityLimits:
    """How many negative intensities a magnitude image may have (see the module docstring).

    Attributes:
        max_negative_share: share of the non-zero voxels allowed below the negative level.
        negative_level_rel: the negative level as a fraction of the 99th percentile.
        clip_negative: clip tolerated negatives at 0 (else keep them, with a warning).
        max_clipped_share: largest share of negative non-zero voxels that is clipped; more is refused.
    """

    max_negative_share: float
    negative_level_rel: float
    clip_negative: bool
    max_clipped_share: float


def _check_finite(role: str, path: Path, data: np.ndarray, notes: ScanNotes) -> np.ndarray:
    """Refuse Inf anywhere and NaN in magnitude images (NaN in an FF map means excluded); the finite mask."""
    where = role_label(role, path)
    finite = np.isfinite(data)
    if not finite.all():
        n_nan = int(np.isnan(data).sum())
        n_inf = int(data.size - finite.sum() - n_nan)
        if n_inf:
            raise DixonInputError(f"{where}: contains {n_inf} infinite (Inf) value(s) of {data.size} voxels", path)
        if role in MAGNITUDE_ROLES:
            raise DixonInputError(f"{where}: contains {n_nan} NaN value(s) of {data.size} voxels", path)
        # some tools write NaN where an FF map is undefined: that already means "excluded"
        notes.warn(f"{where}: {n_nan} NaN value(s) are treated as excluded voxels")
    return finite


def _negative_level(
    where: str, path: Path, nonzero: np.ndarray, max_negative_share: float, negative_level_rel: float
) -> tuple[float, float]:
    """(negative level, share of the non-zero voxels below it); refuses an image that is not a magnitude."""
    # in place: the callers use ``nonzero`` only through order-free reductions (count, share, minimum)
    p99 = float(np.percentile(nonzero, 99, overwrite_input=True))
    if p99 <= 0:
        raise DixonInputError(
            f"{where}: has negative intensities and no positive signal (99th percentile {p99:.4g}); "
            "expected a magnitude image",
            path,
        )
    level = -negative_level_rel * p99
    share = float(np.mean(nonzero < level))
    if share > max_negative_share:
        raise DixonInputError(
            f"{where}: has negative intensities: {share:.1%} of the non-zero voxels are below {level:.4g} "
            f"(-{negative_level_rel:.0%} of the 99th percentile {p99:.4g}), more than the {max_negative_share:.0%} "
            "a magnitude image may have; is it a phase, real or imaginary image?",
            path,
        )
    return level, share


def _clean_magnitude_or_map(role: str, path: Path, data: np.ndarray) -> bool:
    """True when the image passes every check of :func:`check_values` unchanged, decided from its min and max.

    NaN propagates into both and Inf is one of them, so finite extremes mean every voxel is finite; then the image
    is all zero exactly when both are 0, and has a negative value exactly when the minimum is below 0. Two
    reductions instead of the full-volume masks and copies of the exact path, which only images with NaN, Inf or
    negatives take (~0.2 s per image at the reference geometry).
    """
    if data.size == 0:
        return False
    vmin, vmax = float(np.min(data)), float(np.max(data))
    if not (np.isfinite(vmin) and np.isfinite(vmax)):
        return False
    if vmin == 0 and vmax == 0:
        raise DixonInputError(f"{role_label(role, path)}: is all zero (no signal)", path)
    return role not in MAGNITUDE_ROLES or vmin >= 0


def check_values(role: str, path: Path, data: np.ndarray, limits: IntensityLimits, notes: ScanNotes) -> np.ndarray:
    """Check one image's values; return it with tolerated negatives clipped at 0 (``limits.clip_negative``).

    Raises:
        DixonInputError: Inf; NaN in a magnitude image; all zero; a magnitude image with too many negatives (see
            the module docstring), or with more than ``limits.max_clipped_share`` negative non-zero voxels to clip.
    """
    where = role_label(role, path)
    if _clean_magnitude_or_map(role, path, data):
        return data
    finite = _check_finite(role, path, data, notes)
    nonzero = data[finite & (data != 0)]
    if nonzero.size == 0:
        raise DixonInputError(f"{where}: is all zero (no signal)", path)
    if role not in MAGNITUDE_ROLES:
        return data
    negative = nonzero < 0
    if not negative.any():
        return data
    level, share = _negative_level(where, path, nonzero, limits.max_negative_share, limits.negative_level_rel)
    n_neg, vmin = int(negative.sum()), float(nonzero.min())
    neg_share = n_neg / nonzero.size
    if limits.clip_negative and neg_share > limits.max_clipped_share:
        # small negatives each, but so many that clipping them would move the FF of whole muscles: not noise
        raise DixonInputError(
            f"{where}: {neg_share:.1%} of the non-zero voxels are negative (min {vmin:.4g}); clipping more than "
            f"{limits.max_clipped_share:.0%} of them to 0 would change the fat fraction, so the image is refused. "
            "Is it a real (signed) or phase image, or was an offset subtracted? Export magnitude images",
            path,
        )
    if limits.clip_negative:
        notes.correct(f"negatives_clipped_{role}")
        notes.warn(
            f"{where}: {n_neg} negative value(s) (min {vmin:.4g}, {share:.2%} below {level:.4g}) clipped to 0",
        )
        return np.maximum(data, 0.0, out=data)
    notes.warn(f"{where}: {n_neg} negative value(s) (min {vmin:.4g}) kept (clip_negative=False)")
    return data
