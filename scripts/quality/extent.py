"""Size and cranio-caudal extent of each muscle side against its partner: the check that sees labels that are in the
right place but too small (eroded, cut short, broken off where the other side goes on).

Nothing in the scan alone says how big one subject's muscle is, but the body is nearly symmetric: the left and the
right psoas of one person differ in volume by a few per cent to about 20 % (more after a unilateral disc herniation or
hip disease, rarely below two thirds), and they run over the same vertebral levels. A side whose volume is a fraction
of its partner's, whose cranio-caudal extent is much shorter, or whose cross-section falls away on slices where the
partner is still well formed, was partly missed by the segmentation, and its FF comes from part of the muscle.

Both sides are compared on the same voxel grid and the same axial slices, so a field of view that cuts the muscles
cuts both alike and does not count. The figures are physical: volumes in mL, extents in mm along the slice axis
(the voxel size from the affine), cross-sections in cm2. Thresholds: :class:`ExtentLimits`, set on the tuning
phantoms of ``scripts.studies.qc_benchmark`` (seeds 300-319, not the reported ones) and on the left/right asymmetry of
real muscles (docs/studies/quality_control.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
from scripts.labels import LEFT_RIGHT_SWAP

__all__ = ["ExtentLimits", "PairFigures", "pair_figures", "extent_findings"]


@dataclasses.dataclass(frozen=True)
class ExtentLimits:
    """When a side is too small or too short against its partner (ratios of this side to the other side).

    Set on the tuning phantoms (seeds 300-319; docs/studies/quality_control.md): their true sides have volume ratios
    of at least 0.72 and extent ratios of at least 0.875, and are thin on at most 7 % of the partner's well-formed
    slices; healthy muscles differ left to right by up to about 20 %. The volume rule only asks for review: a side at
    half its partner's volume may be the right one beside an overgrown partner (a side dilated by 2 voxels makes its
    untouched partner's ratio about 0.65), so the reason names both possibilities; 0.55 keeps every eroded side with
    Dice < 0.7 of the tuning set flagged and leaves most partners of overgrown sides alone. A short extent cannot come
    from an overgrown partner (dilation lengthens a label by a slice or two), so below 40 % of the partner's it fails.
    """

    volume_ratio_review: float = 0.55
    extent_ratio_review: float = 0.7
    extent_ratio_fail: float = 0.4
    #: ... and only when the extents differ by more than this and by more than two slices: a muscle the field of view
    #: shows on a slice or two (an iliacus top at the scan's lower edge) is not judged by its extent, since a partner
    #: dilated by two voxels is then two to four slices longer
    extent_min_difference_mm: float = 20.0
    #: a partner slice counts as well formed when its area is at least this share of its largest (the tapering
    #: tendinous ends are left out: the two sides' ends differ by a slice or two)
    well_formed: float = 0.3
    #: on such a slice this side is thin when its area is below this share of the partner's
    thin_ratio: float = 0.35
    #: share of the partner's well-formed slices on which this side is thin that asks for review
    thin_share_review: float = 0.25
    #: the partner absent or below this share of this side's volume: this side asks for review too (a muscle found on
    #: one side only was more likely drawn on another structure; true sides of the tuning and held-out phantoms, 52
    #: subjects with truncated coverage, are at least 0.69 of their partner's volume)
    lone_ratio_review: float = 0.1


@dataclasses.dataclass(frozen=True)
class PairFigures:
    """One side against its partner (same grid): volumes (mL), cranio-caudal extents (mm), ratios this/partner,
    and the share of the partner's well-formed slices on which this side is thin (with their world z range, mm)."""

    volume_ml: float
    partner_volume_ml: float
    extent_mm: float
    partner_extent_mm: float
    thin_share: float
    thin_z_mm: tuple[float, float] | None

    @property
    def volume_ratio(self) -> float:
        return self.volume_ml / self.partner_volume_ml

    @property
    def extent_ratio(self) -> float:
        return self.extent_mm / self.partner_extent_mm


def _extent(areas: np.ndarray) -> tuple[int, int]:
    found = np.flatnonzero(areas)
    return int(found[0]), int(found[-1])


def pair_figures(
    areas: np.ndarray,
    partner_areas: np.ndarray,
    voxel_ml: float,
    slice_mm: float,
    slice_z_mm: np.ndarray,
    limits: ExtentLimits | None = None,
) -> PairFigures:
    """Compare one side with its partner slice by slice.

    Args:
        areas: (S,) voxels of this side on each axial slice (S slices along the slice axis; at least one > 0).
        partner_areas: (S,) voxels of the partner on the same slices (at least one > 0).
        voxel_ml: volume of one voxel, mL.
        slice_mm: distance between slices, mm.
        slice_z_mm: (S,) world z (RAS, mm, superior +) of each slice's centre, to name where the side is thin.
        limits: the thresholds (only ``well_formed`` and ``thin_ratio`` are used here); default :class:`ExtentLimits`.

    Returns:
        the :class:`PairFigures` of this side.
    """
    limits = limits or ExtentLimits()
    areas, partner_areas = np.asarray(areas, np.float64), np.asarray(partner_areas, np.float64)
    first, last = _extent(areas)
    p_first, p_last = _extent(partner_areas)
    well = partner_areas >= limits.well_formed * partner_areas.max()
    thin = well & (areas < limits.thin_ratio * partner_areas)
    z = np.asarray(slice_z_mm, np.float64)[thin]
    return PairFigures(
        volume_ml=float(areas.sum() * voxel_ml),
        partner_volume_ml=float(partner_areas.sum() * voxel_ml),
        extent_mm=float((last - first + 1) * slice_mm),
        partner_extent_mm=float((p_last - p_first + 1) * slice_mm),
        thin_share=float(thin.sum() / max(well.sum(), 1)),
        thin_z_mm=(float(z.min()), float(z.max())) if z.size else None,
    )


def extent_findings(
    per_slice: Mapping[int, np.ndarray],
    voxel_ml: float,
    slice_mm: float,
    slice_z_mm: np.ndarray,
    limits: ExtentLimits | None = None,
) -> dict[int, list[tuple[str, str]]]:
    """The size and extent findings of every side whose partner is found too.

    Args:
        per_slice: label value -> (S,) voxels on each axial slice, for the labels found (one grid).
        voxel_ml: volume of one voxel, mL.
        slice_mm: distance between slices, mm.
        slice_z_mm: (S,) world z (mm) of each slice's centre.
        limits: the thresholds; default :class:`ExtentLimits`.

    Returns:
        label value -> list of (``review``/``fail``, reason in words); labels without a finding are absent.
    """
    limits = limits or ExtentLimits()
    findings: dict[int, list[tuple[str, str]]] = {}
    for value, areas in per_slice.items():
        partner = LEFT_RIGHT_SWAP.get(value)
        lone = _lone_finding(areas, per_slice.get(partner), voxel_ml, limits)
        if lone:
            findings[value] = [lone]
        if partner not in per_slice or not areas.any() or not per_slice[partner].any():
            continue
        f = pair_figures(areas, per_slice[partner], voxel_ml, slice_mm, slice_z_mm, limits)
        out = []
        if f.volume_ratio < limits.volume_ratio_review:
            out.append(
                (
                    "review",
                    f"volume {f.volume_ml:.1f} mL is {f.volume_ratio:.0%} of the other side's {f.partner_volume_ml:.1f}"
                    " mL (this side partly missed, or the other side overgrown)",
                )
            )
        shorter = f.partner_extent_mm - f.extent_mm > max(limits.extent_min_difference_mm, 2.0 * slice_mm)
        if f.extent_ratio < limits.extent_ratio_review and shorter:
            out.append(
                (
                    "fail" if f.extent_ratio < limits.extent_ratio_fail else "review",
                    f"cranio-caudal extent {f.extent_mm:.0f} mm against {f.partner_extent_mm:.0f} mm on the other "
                    "side (cut short?)",
                )
            )
        if f.thin_share > limits.thin_share_review and f.thin_z_mm is not None:
            out.append(
                (
                    "review",
                    f"absent or under {limits.thin_ratio:.0%} of the other side's cross-section on {f.thin_share:.0%} "
                    f"of the slices where the other side is well formed (z {f.thin_z_mm[0]:.0f} to "
                    f"{f.thin_z_mm[1]:.0f} mm)",
                )
            )
        if out:
            findings.setdefault(value, []).extend(out)
    return findings


def _lone_finding(
    areas: np.ndarray, partner_areas: np.ndarray | None, voxel_ml: float, limits: ExtentLimits
) -> tuple[str, str] | None:
    """``review`` when the partner is absent or a sliver beside this side (``lone_ratio_review``), else ``None``."""
    volume = float(np.sum(areas)) * voxel_ml
    partner = float(np.sum(partner_areas)) * voxel_ml if partner_areas is not None else 0.0
    if volume <= 0 or partner >= limits.lone_ratio_review * volume:
        return None
    return (
        "review",
        f"the other side is {'absent' if partner == 0 else f'{partner:.1f} mL'} beside this side's {volume:.1f} mL "
        f"(under {limits.lone_ratio_review:.0%}): drawn on another structure, or the other side missed?",
    )
