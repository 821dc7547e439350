"""The fat-fraction (FF) map of a Dixon scan, by the method its images allow: :func:`compute_ff` -> :class:`FFResult`.

``method="auto"`` takes water/fat, else in-phase/opposed-phase, else a vendor FF map; the result is the FF map
(fraction, NaN = excluded) on the native Dixon grid with the provenance that every output row carries
(docs/design.md). The formulas live in :mod:`scripts.quantification.formulas` and the vendor map scale in
:mod:`scripts.quantification.ff_scale`; this module chooses among them.

References:
    - Dixon WT. Simple proton spectroscopic imaging. Radiology 1984;153:189-194.
    - Liu CY et al. Fat quantification with IDEAL gradient echo imaging: correction of bias from T1 and noise.
      Magn Reson Med 2007;58:354-364 (magnitude discrimination).
    - The 2026 BMC Medical Imaging paper this bundle reproduces (doi 10.1186/s12880-026-02329-9).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scripts.io.dixon_scan import DixonScan
from scripts.io.errors import DixonInputError
from scripts.io.roles import ROLE_WORDS, role_label
from scripts.quantification.ff_scale import detect_ff_scale, normalise_ff_map
from scripts.quantification.formulas import (
    denominator_threshold,
    exclude_out_of_range,
    fat_fraction_from_water_fat,
    fat_fraction_magnitude_discrimination,
    fat_fraction_with_threshold,
    water_fat_from_in_opposed,
)

__all__ = ["FF_METHODS", "FFResult", "compute_ff"]

logger = logging.getLogger(__name__)

#: ``compute_ff`` method names (besides ``"auto"``) -> the ``ff_method`` written to the provenance.
FF_METHODS: dict[str, str] = {
    "water_fat": "water_fat",
    "inphase_opposed": "inphase_opposed_water_dominant",
    "inphase_opposed_water_dominant": "inphase_opposed_water_dominant",
    "vendor_map": "vendor_map",
    "magnitude_discrimination": "magnitude_discrimination",
}
# ff_method -> the image roles it needs
_NEEDED: dict[str, tuple[str, ...]] = {
    "water_fat": ("water", "fat"),
    "inphase_opposed_water_dominant": ("inphase", "opposed"),
    "vendor_map": ("ff",),
    "magnitude_discrimination": ("water", "fat", "inphase"),
}
_FF_SCALES: tuple[str, ...] = ("fraction", "percent", "permille")
_MIN_MASK_VOXELS = 20


@dataclass
class FFResult:
    """A fat-fraction map with its provenance.

    Attributes:
        ff: float32 FF as a fraction 0-1 on the native Dixon grid (the scan's stored orientation); NaN marks
            excluded voxels (near-zero denominator, out of the physical range, NaN in a vendor map).
        affine: 4x4 voxel-to-world affine of ``ff``.
        provenance: ``ff_method`` (``"water_fat"``, ``"inphase_opposed_water_dominant"``, ``"vendor_map"``,
            ``"magnitude_discrimination"``), ``ff_source`` (``"role=file name; ..."``), ``ff_scale`` (the scale
            applied to a vendor map, else ``None``), ``ff_scale_detected`` (the automatic detection, ``None`` when
            not applicable or undecidable), ``ff_scale_override`` (bool), ``ff_scale_reason``, ``assumption``
            (text), ``min_denominator`` (the absolute threshold applied, intensity units; for a vendor map the
            threshold on the network-input signal), ``n_out_of_range`` (voxels set to NaN outside -5 %..105 %).
    """

    ff: np.ndarray
    affine: np.ndarray
    provenance: dict[str, Any]

    @property
    def n_valid(self) -> int:
        """Number of voxels with a finite FF."""
        return int(np.isfinite(self.ff).sum())


def _source(scan: DixonScan, roles: Sequence[str]) -> str:
    return "; ".join(f"{r}={Path(scan.files[r]).name}" for r in roles)


def _missing_error(scan: DixonScan, method: str, needed: Sequence[str]) -> DixonInputError:
    have = ", ".join(f"{ROLE_WORDS[r]} ({Path(scan.files[r]).name})" for r in scan.available)
    need = ", ".join(ROLE_WORDS[r] for r in needed)
    return DixonInputError(f"subject {scan.subject!r}: method {method!r} needs {need} images; available: {have}")


def _ff_method(scan: DixonScan, method: str, ff_scale: str | None) -> str:
    """The provenance name of the method to use (``auto`` resolved); unknown or unusable methods raise."""
    if method != "auto" and method not in FF_METHODS:
        raise ValueError(f"unknown FF method {method!r}; expected 'auto' or one of {sorted(FF_METHODS)}")
    if ff_scale is not None and ff_scale not in _FF_SCALES:
        raise ValueError(f"unknown ff_scale {ff_scale!r}; expected 'fraction', 'percent' or 'permille'")
    if method == "auto":
        if scan.has("water", "fat"):
            method = "water_fat"
        elif scan.has("inphase", "opposed"):
            method = "inphase_opposed"
        elif scan.has("ff"):
            method = "vendor_map"
        else:
            raise _missing_error(scan, "auto", ("water", "fat"))
    ff_method = FF_METHODS[method]
    if not scan.has(*_NEEDED[ff_method]):
        raise _missing_error(scan, method, _NEEDED[ff_method])
    return ff_method


def _ff_water_fat(
    img: Mapping[str, np.ndarray], min_denominator: float | None, relative_threshold: float
) -> tuple[np.ndarray, float, str]:
    ff, threshold = fat_fraction_with_threshold(img["water"], img["fat"], min_denominator, relative_threshold)
    return ff, threshold, "FF = F / (F + W), signal fat fraction of the water and fat images (PDFF only if they are)"


def _ff_inphase_opposed(
    img: Mapping[str, np.ndarray], min_denominator: float | None, relative_threshold: float
) -> tuple[np.ndarray, float, str]:
    water, fat = water_fat_from_in_opposed(img["inphase"], img["opposed"], assume="water_dominant")
    # W + F = IP exactly, so the threshold is the one the in-phase image gives
    threshold = denominator_threshold(img["inphase"], min_denominator, relative_threshold)
    ff = fat_fraction_from_water_fat(water, fat, min_denominator=threshold)
    assumption = (
        "water-dominant: W = (IP + OP) / 2, F = (IP - OP) / 2; valid where FF < 50 % (muscle), "
        "fat-dominant voxels read 1 - FF"
    )
    return ff, threshold, assumption


def _ff_magnitude_discrimination(
    img: Mapping[str, np.ndarray], min_denominator: float | None, relative_threshold: float
) -> tuple[np.ndarray, float, str]:
    threshold = denominator_threshold(np.abs(img["inphase"]), min_denominator, relative_threshold)
    ff = fat_fraction_magnitude_discrimination(img["water"], img["fat"], img["inphase"], min_denominator=threshold)
    assumption = (
        "magnitude discrimination (Liu 2007): FF = |F| / IP where fat dominates, 1 - |W| / IP "
        "elsewhere; removes the noise bias of F / (F + W) at low and high FF"
    )
    return ff, threshold, assumption


# ff_method -> formula on the scan's images: (ff, threshold, assumption); the vendor map is handled apart
_FORMULAS = {
    "water_fat": _ff_water_fat,
    "inphase_opposed_water_dominant": _ff_inphase_opposed,
    "magnitude_discrimination": _ff_magnitude_discrimination,
}


def compute_ff(
    scan: DixonScan,
    method: str = "auto",
    ff_scale: str | None = None,
    min_denominator: float | None = None,
    relative_threshold: float = 0.05,
) -> FFResult:
    """Voxel-wise fat fraction from the images a scan has, on its native grid, with provenance.

    ``method="auto"`` takes the first source available:

    1. water + fat: ``FF = F / (F + W)`` (:func:`scripts.quantification.formulas.fat_fraction_from_water_fat`,
       signed sum);
    2. in-phase + opposed-phase: ``W = (IP + OP) / 2``, ``F = (IP - OP) / 2`` under the water-dominant assumption
       (valid where FF < 50 %: muscle; fat-dominant voxels read ``1 - FF``), then as 1;
    3. a vendor FF/PDFF map: its scale (fraction, percent, permille) is detected inside the body
       (:func:`scripts.quantification.ff_scale.detect_ff_scale`) unless ``ff_scale`` sets it, and it is divided
       accordingly; voxels whose network-input signal is below the denominator threshold are excluded like 1 and 2.

    ``"magnitude_discrimination"`` (Liu 2007) needs water, fat and in-phase. Voxels whose denominator is below
    the threshold (:func:`scripts.quantification.formulas.denominator_threshold`: ``min_denominator``, else
    ``relative_threshold`` times the 99th percentile of the positive denominators) are NaN, and so are values
    outside the physical range -0.05..1.05 (:func:`scripts.quantification.formulas.exclude_out_of_range`).

    Args:
        scan: a :class:`scripts.io.dixon_scan.DixonScan` from :func:`scripts.io.load.load_dixon`.
        method: ``"auto"``, ``"water_fat"``, ``"inphase_opposed"`` (alias ``"inphase_opposed_water_dominant"``),
            ``"vendor_map"`` or ``"magnitude_discrimination"``.
        ff_scale: scale of the vendor map, ``"fraction"``, ``"percent"`` or ``"permille"``; overrides detection
            (a disagreeing detection gives a warning). Ignored by the other methods.
        min_denominator: absolute denominator threshold (intensity units); ``None`` uses ``relative_threshold``.
        relative_threshold: denominator threshold as a fraction of the robust maximum.

    Returns:
        An :class:`FFResult`.

    Raises:
        DixonInputError: the method's images are missing (the message lists what is available), or the vendor
            map's scale cannot be decided (the message names the file and how to set ``ff_scale``).
        ValueError: an unknown ``method`` or ``ff_scale``.

    Example:
        >>> result = compute_ff(load_dixon(entry))  # doctest: +SKIP
        >>> result.provenance["ff_method"], float(np.nanmean(result.ff))  # doctest: +SKIP
        ('water_fat', 0.21)
    """
    ff_method = _ff_method(scan, method, ff_scale)
    provenance: dict[str, Any] = {
        "ff_method": ff_method,
        "ff_source": _source(scan, _NEEDED[ff_method]),
        "ff_scale": None,
        "ff_scale_detected": None,
        "ff_scale_override": False,
        "ff_scale_reason": None,
    }
    if ff_method == "vendor_map":
        ff, threshold, assumption = _vendor_ff(scan, ff_scale, min_denominator, relative_threshold, provenance)
    else:
        ff, threshold, assumption = _FORMULAS[ff_method](scan.images, min_denominator, relative_threshold)
    ff, n_out = exclude_out_of_range(ff)
    provenance.update(
        assumption=assumption,
        n_out_of_range=int(provenance.get("n_out_of_range", 0)) + n_out,
        min_denominator=None if threshold is None else float(threshold),
    )
    logger.info(
        "subject %s: FF by %s from %s (%d valid voxels)",
        scan.subject,
        ff_method,
        provenance["ff_source"],
        int(np.isfinite(ff).sum()),
    )
    return FFResult(ff=ff, affine=scan.affine.copy(), provenance=provenance)


def _body_mask(
    scan: DixonScan, min_denominator: float | None, relative_threshold: float
) -> tuple[np.ndarray | None, float | None]:
    """(body mask or ``None``, its signal threshold or ``None``): voxels whose network-input signal reaches the
    denominator threshold; ``None`` without such a signal or with fewer than a handful of voxels."""
    if not (scan.has("inphase") or scan.has("water", "fat")):
        return None, None
    # the body mask keeps background noise (random values in unthresholded F/(F+W) maps) out of the statistics
    signal = np.abs(scan.inphase_or_sum())
    threshold = denominator_threshold(signal, min_denominator, relative_threshold)
    mask = signal >= threshold
    if int(mask.sum()) < _MIN_MASK_VOXELS:
        return None, threshold
    return mask, threshold


def _vendor_ff(
    scan: DixonScan,
    ff_scale: str | None,
    min_denominator: float | None,
    relative_threshold: float,
    provenance: dict[str, Any],
) -> tuple[np.ndarray, float | None, str]:
    """A vendor FF map as a fraction: scale detected inside the body (or overridden), low-signal voxels excluded."""
    path = scan.files["ff"]
    name = Path(path).name
    raw = scan.images["ff"]
    mask, threshold = _body_mask(scan, min_denominator, relative_threshold)
    detected: str | None = None
    detect_error: ValueError | None = None
    try:
        detected = detect_ff_scale(raw, mask=mask, source=name).scale
    except ValueError as err:
        detect_error = err
    if ff_scale is None and detect_error is not None:
        raise DixonInputError(
            f"{role_label('ff', path)}: the scale of the FF map cannot be decided: {detect_error} "
            "(compute_ff: ff_scale='fraction'|'percent'|'permille')",
            path,
        ) from detect_error
    if ff_scale is not None and detected is not None and detected != ff_scale:
        warnings.warn(
            f"{role_label('ff', path)}: ff_scale={ff_scale!r} overrides the detected scale {detected!r}",
            RuntimeWarning,
            stacklevel=3,
        )
    ff, detection = normalise_ff_map(raw, scale=ff_scale, mask=mask, source=name)
    if mask is not None:
        ff = np.where(mask, ff, np.nan).astype(np.float32)
    # count only the body voxels the range check removed: background garbage is excluded by the mask anyway
    n_out = int((np.isfinite(raw) & np.isnan(ff) & (True if mask is None else mask)).sum())
    provenance.update(
        n_out_of_range=n_out,
        ff_scale=detection.scale,
        ff_scale_detected=detected,
        ff_scale_override=ff_scale is not None,
        ff_scale_reason=detection.reason,
    )
    assumption = f"vendor FF map as stored, divided by {detection.divisor:g} ({detection.scale})"
    return ff, threshold, assumption
