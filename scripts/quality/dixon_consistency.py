"""Dixon input consistency: is the in-phase image the network reads the in-phase image of this water and fat?

The network segments the in-phase image alone, while the FF comes from the water and fat images. A network input that
is not the in-phase image of the same acquisition (the water image exported as "in-phase", a series mislabelled, an
in-phase image buried in noise) makes the network draw labels that look right (right place, both sides alike,
confident) while their borders take in the fat around the muscle: the per-side checks of
:mod:`scripts.quality.verdict` cannot see it (docs/studies/quality_control.md, "Network failure cases"). The images
themselves can: in magnitude Dixon the in-phase image is ``IP = W + F`` up to one scale factor (vendors scale the
reconstructed images differently), and the opposed-phase image is ``OP = |W - F|``.

Inside the body (``W + F`` above the FF map's denominator threshold), after one global scale ``s`` fitted robustly
(the median of ``IP / (W + F)``), this module measures the ratio ``IP / (s (W + F))`` in fat-dominant voxels (voxel
FF > 0.7: subcutaneous and intermuscular fat) and in water-dominant voxels (FF < 0.3: muscle), their quotient (the
fat-to-water contrast of the in-phase image against the one water and fat predict, 1 when consistent, independent of
``s``) and a noise figure (robust spread of the ratio in the water-dominant voxels, relative to its median). Findings:

- contrast below :attr:`ConsistencyLimits.contrast_review`: the in-phase image shows fat darker than water and fat
  predict (the water image given as the in-phase image, an opposed-phase image, a fat-suppressed series):
  ``review`` of every side, because the network draws muscle borders into fat it cannot see;
- noise figure above :attr:`ConsistencyLimits.noise_review`: ``review`` of every side (a very noisy in-phase image:
  the network's borders wander; not applied with the contrast above :attr:`ConsistencyLimits.contrast_note`, where
  the scatter is the fat image's own contrast);
- contrast above :attr:`ConsistencyLimits.contrast_note`: the in-phase image shows water darker than expected (the
  fat image given as the in-phase image): a ``note`` in the subject's output only, because the network segments
  such an input as well as a true in-phase image (the muscles stay dark against fat) and the FF does not use it;
- an opposed-phase image whose ratio ``OP / (s |W - F|)`` lies outside :attr:`ConsistencyLimits.opposed_band`: a
  ``note`` (the FF from water and fat does not use it).

Where W and F were not given (in-phase and opposed-phase only: W and F would be derived from IP and OP, so
``IP = W + F`` holds by construction) or no in-phase image was given, nothing is checked and the result says why.
Thresholds and how they were set: :class:`ConsistencyLimits`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scripts.quantification.formulas import denominator_threshold

__all__ = ["ConsistencyLimits", "DixonConsistency", "dixon_consistency"]

#: at most this many body voxels enter the medians (a regular subsample: the figures need no more)
_MAX_VOXELS = 2_000_000
#: 1.4826 x median absolute deviation = SD for normally distributed values
_MAD_TO_SD = 1.4826


@dataclasses.dataclass(frozen=True)
class ConsistencyLimits:
    """Thresholds of :func:`dixon_consistency` (ratios without unit; voxel FF as a fraction).

    Set on tuning phantoms (docs/studies/quality_control.md, "Dixon input consistency": 38 subjects, low and
    reference geometry, none of the reported ones): the water image given as the in-phase image gives a contrast of
    0.08-0.10, the fat image 7.5-14; Rician noise on the in-phase image at 0.25 / 0.5 of its 95th percentile a noise
    figure of 0.44-0.82 / 0.56-0.98 (0.05: 0.11-0.24; 0.1: 0.21-0.44). The network still segments the low-geometry
    tuning phantoms at 0.25 (noise figure 0.44-0.69, Dice at least 0.86) and fails at 0.5, so the noise level sits
    between 0.25's typical figure and 0.5's smallest. The phantoms' own in-phase images give 1.00 and 0.00: their
    water and fat are computed from their in-phase and opposed-phase echoes, so they cannot show how far a real
    in-phase image departs from ``W + F`` (T2* decay between echoes, the fat spectrum, a separate reconstruction). The
    review levels therefore lie far from 1 and 0, near the degraded inputs' side of the gap.
    """

    #: a voxel with FF above this is fat-dominant ...
    fat_voxel_ff: float = 0.7
    #: ... and below this water-dominant
    water_voxel_ff: float = 0.3
    #: fewest voxels of a class for its ratio (fewer: the figure is not computed and its rule not applied)
    min_voxels: int = 200
    #: fat-to-water contrast below this: every side ``review``
    contrast_review: float = 0.6
    #: fat-to-water contrast above this: a note only
    contrast_note: float = 1.8
    #: noise figure above this: every side ``review``
    noise_review: float = 0.5
    #: ``OP / (s |W - F|)`` outside this band: a note only
    opposed_band: tuple[float, float] = (0.5, 2.0)

    def __post_init__(self) -> None:
        if not 0.0 < self.water_voxel_ff < self.fat_voxel_ff < 1.0:
            raise ValueError(
                f"ConsistencyLimits needs 0 < water_voxel_ff < fat_voxel_ff < 1, got {self.water_voxel_ff} and "
                f"{self.fat_voxel_ff}"
            )
        if not 0.0 < self.contrast_review < 1.0 < self.contrast_note:
            raise ValueError(
                f"ConsistencyLimits needs 0 < contrast_review < 1 < contrast_note, got {self.contrast_review} and "
                f"{self.contrast_note}"
            )
        if self.noise_review <= 0 or self.min_voxels < 1:
            raise ValueError(
                f"ConsistencyLimits needs noise_review > 0 and min_voxels >= 1, got {self.noise_review} and "
                f"{self.min_voxels}"
            )
        lo, hi = self.opposed_band
        if not 0.0 < lo < 1.0 < hi:
            raise ValueError(f"ConsistencyLimits.opposed_band must hold 1 with 0 < low, got {self.opposed_band}")


@dataclasses.dataclass
class DixonConsistency:
    """The figures and findings of :func:`dixon_consistency` for one subject.

    Attributes:
        checked: whether the images allowed the check; ``skipped_reason`` says why not.
        scale: ``s``, the median of ``IP / (W + F)`` in the body (the vendors' relative scaling).
        fat_ratio: median of ``IP / (s (W + F))`` in fat-dominant voxels (1 when consistent).
        water_ratio: the same in water-dominant voxels.
        contrast: ``fat_ratio / water_ratio`` (1 when consistent; independent of ``s``).
        noise: robust spread (1.4826 MAD) of the ratio in water-dominant voxels, relative to its median.
        opposed_ratio: median of ``OP / (s |W - F|)`` in fat- and water-dominant voxels; NaN without OP.
        n_body, n_fat, n_water: voxels of the body and of each class (before any subsampling).
        findings: ``(severity, reason)`` with severity ``review`` (every side) or ``note`` (subject output only).
    """

    checked: bool
    skipped_reason: str | None = None
    scale: float = math.nan
    fat_ratio: float = math.nan
    water_ratio: float = math.nan
    contrast: float = math.nan
    noise: float = math.nan
    opposed_ratio: float = math.nan
    n_body: int = 0
    n_fat: int = 0
    n_water: int = 0
    findings: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def side_findings(self) -> list[tuple[str, str]]:
        """The findings every muscle side takes into its verdict (``review`` ones; notes stay subject-level)."""
        return [(severity, reason) for severity, reason in self.findings if severity != "note"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (NaN -> None, ratios rounded to 4 decimals) and findings as text."""
        out: dict[str, Any] = {"checked": self.checked, "skipped_reason": self.skipped_reason}
        for name in ("scale", "fat_ratio", "water_ratio", "contrast", "noise", "opposed_ratio"):
            value = getattr(self, name)
            out[name] = round(float(value), 4) if math.isfinite(value) else None
        out.update(n_body=self.n_body, n_fat=self.n_fat, n_water=self.n_water)
        out["findings"] = [f"{severity}: {reason}" for severity, reason in self.findings]
        return out


def _skip(images: Mapping[str, Any]) -> str | None:
    """Why the check cannot run on these roles, or ``None`` when it can."""
    if "water" not in images or "fat" not in images:
        if "inphase" in images and "opposed" in images:
            return (
                "no water and fat images: they would be derived from the in-phase and opposed-phase images, so "
                "IP = W + F holds by construction and checking it would be circular"
            )
        return "no water and fat images to check the in-phase image against"
    if "inphase" not in images:
        return "no in-phase image (the network reads the water image): nothing to check"
    return None


def _subsample(mask: np.ndarray) -> np.ndarray:
    """Flat indices of ``mask``'s voxels, a regular subsample of at most :data:`_MAX_VOXELS`."""
    index = np.flatnonzero(mask)
    step = max(1, int(math.ceil(index.size / _MAX_VOXELS)))
    return index[::step]


def _median(values: np.ndarray, min_voxels: int) -> float:
    return float(np.median(values)) if values.size >= min_voxels else math.nan


def _findings(result: DixonConsistency, limits: ConsistencyLimits) -> None:
    """Turn the figures into findings (reasons name the figure, its value and the threshold)."""
    if math.isfinite(result.contrast) and result.contrast < limits.contrast_review:
        result.findings.append(
            (
                "review",
                f"network input inconsistent with water and fat: fat in the in-phase image {result.contrast:.2f} "
                f"times as bright against water as W + F predicts (expected about 1, review below "
                f"{limits.contrast_review:g}: water, opposed-phase or fat-suppressed image given as in-phase?): "
                "the network may draw muscle borders into fat it cannot see",
            )
        )
    # with fat given as in-phase the scatter in muscle is the fat image's own contrast (F / (W + F) from 0 to 0.3),
    # not noise: the contrast note names the problem
    fat_image = math.isfinite(result.contrast) and result.contrast > limits.contrast_note
    if not fat_image and math.isfinite(result.noise) and result.noise > limits.noise_review:
        result.findings.append(
            (
                "review",
                f"network input very noisy: the in-phase image scatters {result.noise:.2f} (relative robust spread "
                f"in muscle) around W + F (review above {limits.noise_review:g}): the network's borders may wander",
            )
        )
    if math.isfinite(result.contrast) and result.contrast > limits.contrast_note:
        result.findings.append(
            (
                "note",
                f"water in the in-phase image darker than W + F predicts (fat-to-water contrast {result.contrast:.2f}, "
                f"note above {limits.contrast_note:g}: fat image given as in-phase?); the network segments such "
                "input as well, and the FF comes from water and fat",
            )
        )
    lo, hi = limits.opposed_band
    if math.isfinite(result.opposed_ratio) and not lo <= result.opposed_ratio <= hi:
        result.findings.append(
            (
                "note",
                f"opposed-phase image {result.opposed_ratio:.2f} times |W - F| (expected about 1, band {lo:g}-{hi:g}): "
                "not the opposed-phase image of this water and fat? (the FF does not use it)",
            )
        )


def dixon_consistency(
    images: Mapping[str, np.ndarray],
    min_denominator: float | None = None,
    limits: ConsistencyLimits | None = None,
) -> DixonConsistency:
    """Check that the in-phase image is ``s (W + F)`` and the opposed-phase image ``s |W - F|`` (module docstring).

    Args:
        images: role -> (I, J, K) magnitude array on one grid (``water``, ``fat``, ``inphase``, optional
            ``opposed``; other roles ignored), as :class:`scripts.io.dixon_scan.DixonScan` holds them.
        min_denominator: the FF map's denominator threshold (intensity units of ``W + F``; the FF map's provenance
            ``min_denominator``): voxels with ``W + F`` at or above it are the body. ``None``: the FF map's default
            rule (:func:`scripts.quantification.formulas.denominator_threshold`).
        limits: thresholds; default :class:`ConsistencyLimits`.

    Returns:
        :class:`DixonConsistency` (``checked`` False with the reason when the roles do not allow the check).

    Raises:
        ValueError: the images do not share one shape (the message names the roles and their shapes).
    """
    limits = limits or ConsistencyLimits()
    reason = _skip(images)
    if reason is not None:
        return DixonConsistency(checked=False, skipped_reason=reason)
    roles = [r for r in ("water", "fat", "inphase", "opposed") if r in images]
    shapes = {r: tuple(np.shape(images[r])) for r in roles}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"Dixon consistency check: the images must share one grid, got shapes {shapes}")
    total = np.asarray(images["water"], dtype=np.float32) + np.asarray(images["fat"], dtype=np.float32)
    threshold = denominator_threshold(total, min_denominator)
    index = _subsample(np.isfinite(total) & (total >= threshold) & (total > 0))
    result = DixonConsistency(checked=True, n_body=int(index.size))
    w_plus_f = total.ravel()[index].astype(np.float64)
    ff = np.asarray(images["fat"], dtype=np.float64).ravel()[index] / w_plus_f
    ratio = np.asarray(images["inphase"], dtype=np.float64).ravel()[index] / w_plus_f
    fat, water = ff > limits.fat_voxel_ff, ff < limits.water_voxel_ff
    result.n_fat, result.n_water = int(fat.sum()), int(water.sum())
    if index.size < limits.min_voxels or not np.isfinite(scale := _median(ratio, 1)) or scale <= 0:
        result.checked = False
        result.skipped_reason = (
            f"too little body signal to compare the in-phase image with W + F ({index.size} voxels above the "
            f"denominator threshold {threshold:.4g})"
        )
        return result
    result.scale = scale
    ratio /= scale
    result.fat_ratio = _median(ratio[fat], limits.min_voxels)
    result.water_ratio = _median(ratio[water], limits.min_voxels)
    if result.water_ratio > 0:
        result.contrast = result.fat_ratio / result.water_ratio
        spread = _MAD_TO_SD * np.median(np.abs(ratio[water] - result.water_ratio))
        result.noise = float(spread / result.water_ratio)
    if "opposed" in images:
        op = np.asarray(images["opposed"], dtype=np.float64).ravel()[index]
        dominant = fat | water
        difference = np.abs(2.0 * ff[dominant] - 1.0) * w_plus_f[dominant]  # |W - F| = |1 - 2 FF| (W + F)
        result.opposed_ratio = _median(op[dominant] / (scale * difference), limits.min_voxels)
    _findings(result, limits)
    return result
