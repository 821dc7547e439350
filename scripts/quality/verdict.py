"""Quality verdict of each muscle side's segmentation and fat fraction: ``pass`` / ``review`` / ``fail``.

A wrong label that still yields a plausible number is the failure users cannot see in a cohort table (a "psoas" drawn
on the rectus abdominis reports an FF of 93 %). This module judges each label from what the scan itself shows, with
no reference segmentation:

- **position** (world RAS mm, from the affine): the side of the body midline it lies on, its distance from the
  midline and its antero-posterior place within the body outline on the slices it covers, against the anatomical
  ranges of :class:`QCLimits` (psoas beside the spine, ES+MF behind it, QL lateral, iliacus in the iliac fossa);
- **shape**: one connected piece, no long gaps between its first and last slice, a mean cross-section area a muscle
  can have;
- **size and extent against the partner** (:mod:`scripts.quality.extent`): a side whose volume or cranio-caudal
  extent is a fraction of the other side's, or that is absent or thin on slices where the other side is well formed,
  was partly missed (eroded, cut short) even when it lies in the right place;
- **signal**: the FF inside the label (a "muscle" whose median voxel is mostly fat lies on fat), left/right
  agreement of FF, and the tissue just outside it (:mod:`scripts.quality.border_tissue`: mostly of the label's own
  FF where the label stops inside the muscle);
- **place against the vertebral bodies** (when the map holds labels 9-14, :mod:`scripts.quality.spine_anchor`):
  psoas against the bodies, QL lateral to and behind it, ES+MF behind them, left muscles left of them, iliacus at or
  below L5; without them, the same checks (but the iliacus's) against the bodies found in the FF map
  (:mod:`scripts.quality.image_spine`; those reasons end with "(spine from the image)"); when neither exists the
  position reasons say that the body outline alone judged them;
- **network confidence** (when the pipeline gives it, :mod:`scripts.quality.confidence`): a label whose voxels mostly
  lie near the network's decision boundary (top-1 probability within ``BOUNDARY_MARGIN`` of the next label's) was
  drawn by an unsure network.

Each finding is a ``review`` or a ``fail`` with its reason in words; the side's status is the worst finding, its
score ``1 - 0.5 * fails - 0.15 * reviews`` clipped to [0, 1]. Coordinates: RAS+ world (+x patient right, +y anterior,
+z superior), as every part of the bundle uses (docs/design.md).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import ndimage
from scripts.labels import LABELS, LEFT_RIGHT_SWAP, label_value, muscle_and_side
from scripts.quality.border_tissue import border_like_share
from scripts.quality.confidence import BOUNDARY_MARGIN
from scripts.quality.extent import ExtentLimits, extent_findings
from scripts.quality.image_spine import ImageSpine, ImageSpineLimits, find_spine
from scripts.quality.spine_anchor import SpineLimits, has_spine, spine_findings

__all__ = [
    "QCLimits",
    "SideVerdict",
    "assess_segmentation",
    "subject_verdict",
    "add_qc_columns",
    "QC_COLUMNS",
    "NET_COLUMNS",
]

logger = logging.getLogger(__name__)

STATUSES = ("pass", "review", "fail")
#: ends a position reason when neither the map's vertebral labels nor the FF map's bodies anchor it
_NO_ANCHOR = " (body outline only: no vertebral labels in the map)"
#: what :func:`add_qc_columns` adds to a subject's FF table
QC_COLUMNS = ("qc_status", "qc_score", "qc_reasons")
#: what :func:`add_qc_columns` adds when given the network's confidence: column -> field of
#: :func:`scripts.quality.confidence.label_confidence` (working grid, 2x2x4 mm; probabilities, no unit)
NET_COLUMNS: dict[str, str] = {
    "net_voxels": "n_voxels",
    "net_top1_mean": "top1_mean",
    "net_margin_mean": "margin_mean",
    "net_boundary_share": "boundary_share",
    "net_entropy_mean": "entropy_mean",
}


@dataclasses.dataclass(frozen=True)
class QCLimits:
    """Anatomical and signal ranges a correct label stays within (lateral distances in mm from the body midline,
    antero-posterior place as a fraction of the body's depth from its posterior edge (0) to its anterior edge (1)).
    """

    lateral_mm: Mapping[str, tuple[float, float]] = dataclasses.field(
        default_factory=lambda: {
            "psoas": (8.0, 95.0),
            "iliacus": (35.0, 175.0),
            "quadratus_lumborum": (30.0, 135.0),
            "erector_spinae_multifidus": (3.0, 85.0),
        }
    )
    ap_fraction: Mapping[str, tuple[float, float]] = dataclasses.field(
        default_factory=lambda: {
            "psoas": (0.22, 0.72),
            "iliacus": (0.15, 0.75),
            "quadratus_lumborum": (0.08, 0.55),
            "erector_spinae_multifidus": (0.0, 0.38),
        }
    )
    #: mean cross-section (volume / cranio-caudal extent): the lower ends are 40-50 % of the smallest phantom truth
    #: (tuning seeds 300-319, truncated coverage included: 2.6, 1.9, 1.9 and 10.9 cm2) and below adult anatomy, so
    #: a label far thinner than its covered extent allows is asked to be reviewed even when both sides are thin.
    #: A label reaching the first or last slice of the scan may show only a tapering end: ``csa_cut_cm2`` instead
    csa_cm2: Mapping[str, tuple[float, float]] = dataclasses.field(
        default_factory=lambda: {
            "psoas": (1.0, 45.0),
            "iliacus": (0.8, 55.0),
            "quadratus_lumborum": (0.6, 25.0),
            "erector_spinae_multifidus": (4.5, 80.0),
        }
    )
    csa_cut_cm2: Mapping[str, tuple[float, float]] = dataclasses.field(
        default_factory=lambda: {
            "psoas": (0.3, 45.0),
            "iliacus": (0.3, 55.0),
            "quadratus_lumborum": (0.2, 25.0),
            "erector_spinae_multifidus": (2.0, 80.0),
        }
    )
    #: a label smaller than this (mL) is a speck, not a muscle: the smallest true side of the tuning and held-out
    #: phantoms (52 subjects, truncated coverage included) is 17 mL, adult lumbar muscles far larger; the specks the
    #: network leaves on real scans (an "iliacus" on a scan that ends above the pelvis) are 0.1-1.3 mL. A field of
    #: view that cuts a muscle to its tip can leave a true sliver this small too (an iliacus top of 0.3-0.4 mL at a
    #: truncated benchmark phantom's lower edge): its FF deserves a look as well
    min_volume_ml_review: float = 3.0
    #: margin beyond a range that turns a review into a fail (mm, or fraction for ap_fraction)
    fail_margin_mm: float = 20.0
    fail_margin_ap: float = 0.12
    ff_median_review_pct: float = 40.0
    ff_median_fail_pct: float = 55.0
    fat_voxel_pct: float = 70.0  # a voxel this fatty counts as fat ...
    fat_voxel_share_review: float = 0.35  # ... and this share of them makes the label look bimodal
    lr_ff_difference_pp: float = 10.0
    #: share of the label's voxels with no valid FF (signal too low for a fat fraction: air, lung, bowel gas, outside
    #: the body). Correct labels on phantoms stay under 1 % (docs/studies/quality_control.md); a muscle has signal
    #: everywhere, so a label reaching into the lung bases or bowel gas (seen on the real CHAOS scan: "ES+MF" on
    #: the posterior lungs, 20-35 % of the label without a valid FF, with a plausible mean FF) is reviewed ...
    invalid_ff_share_review: float = 0.10
    #: ... and failed when the signal is missing from this much of it
    invalid_ff_share_fail: float = 0.40
    largest_piece_review: float = 0.9
    largest_piece_fail: float = 0.6
    gap_share_review: float = 0.2
    gap_share_fail: float = 0.5
    #: QL's cross-section as a share of the ES+MF beside it on the slices both cover (phantom truths 0.13-0.30,
    #: a real lumbar scan's labels 0.17-0.21): below this the QL is mostly missed
    ql_to_es_area_review: float = 0.08
    #: share of the psoas's slices on which QL is found (truths 0.55-0.87 where the scan covers both)
    ql_to_psoas_slices_review: float = 0.35
    #: network confidence: more than this share of the label's voxels near the decision boundary ...
    net_boundary_share_review: float = 0.15
    #: ... or a lower mean top-1 minus top-2 probability asks for review. Measured on phantoms
    #: (docs/studies/quality_control.md): sides with Dice >= 0.9 reach at most 0.09 and at least 0.74, sides drawn
    #: wrong on noisy or upside-down scans 0.13-0.35 and 0.33-0.84; most real scans are less sure than phantoms
    net_margin_mean_review: float = 0.6
    #: more than this share of the unlabelled tissue just outside the label has the label's own FF (within
    #: ``border_like_pp``): the label stops inside the muscle (scripts.quality.border_tissue; phantom truths at most
    #: 0.15, the network's labels on anatomy-complete phantoms at most 0.40, labels eroded by two voxels mostly over
    #: 0.7; real CHAOS labels in place 0.51-0.54, where muscles touch muscles)
    border_like_review: float = 0.6
    border_like_pp: float = 10.0
    #: a side against its partner: volume, extent and slice-wise cross-section ratios (scripts.quality.extent)
    extent: ExtentLimits = dataclasses.field(default_factory=ExtentLimits)
    #: the place against the vertebral bodies when the map holds them (scripts.quality.spine_anchor)
    spine: SpineLimits = dataclasses.field(default_factory=SpineLimits)
    #: the vertebral bodies' look on the FF map, to find them when the map has no vertebral labels
    image_spine: ImageSpineLimits = dataclasses.field(default_factory=ImageSpineLimits)


@dataclasses.dataclass
class SideVerdict:
    """The verdict of one label: ``status`` in ``STATUSES``, ``score`` in [0, 1], the reasons in words."""

    label: int
    muscle: str
    side: str
    status: str = "pass"
    score: float = 1.0
    reasons: list[str] = dataclasses.field(default_factory=list)
    fails: int = 0
    reviews: int = 0

    def add(self, severity: str, reason: str) -> None:
        if severity == "fail":
            self.fails += 1
        else:
            self.reviews += 1
        self.reasons.append(f"{severity}: {reason}")
        self.status = "fail" if self.fails else "review"
        self.score = float(np.clip(1.0 - 0.5 * self.fails - 0.15 * self.reviews, 0.0, 1.0))


def _slice_axis(affine: np.ndarray) -> int:
    """The array axis closest to world z (superior): the axial slices are taken along it."""
    return int(np.argmax(np.abs(affine[2, :3]) / np.linalg.norm(affine[:3, :3], axis=0)))


def _world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """(N, 3) voxel indices -> (N, 3) RAS world mm."""
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _body_points(body: np.ndarray, affine: np.ndarray, axis: int, max_points: int = 400_000):
    """Slice index and world position (mm) of body voxels, subsampled in-plane to at most about ``max_points``
    (the outline's percentiles need no more; the full mask of a reference scan holds millions)."""
    step = max(1, int(np.ceil(np.sqrt(body.sum() / max_points))))
    index = [slice(None, None, step)] * 3
    index[axis] = slice(None)
    ijk = np.argwhere(body[tuple(index)]).astype(np.float64)
    slice_of = ijk[:, axis].astype(int)
    for a in range(3):
        if a != axis:
            ijk[:, a] *= step
    return slice_of, _world(affine, ijk)


def _body_frame(points, slices: np.ndarray) -> tuple[float, float, float]:
    """Midline x, posterior and anterior edge y (world mm) of the body on the given slices (2nd/98th percentiles)."""
    slice_of, xyz = points
    xyz = xyz[np.isin(slice_of, slices)]
    if not len(xyz):
        return float("nan"), float("nan"), float("nan")
    return float(np.median(xyz[:, 0])), float(np.percentile(xyz[:, 1], 2)), float(np.percentile(xyz[:, 1], 98))


def _range_check(
    verdict: SideVerdict, value: float, bounds: tuple[float, float], margin: float, what: str, unit: str
) -> None:
    lo, hi = bounds
    if lo <= value <= hi:
        return
    severity = "fail" if value < lo - margin or value > hi + margin else "review"
    verdict.add(severity, f"{what} {value:.2f}{unit} outside {lo:g}-{hi:g}{unit}")


def _position_checks(verdict: SideVerdict, lateral: float, ap: float, limits: QCLimits, note: str) -> None:
    """Side of the midline, distance from it (mm, + towards the patient's right) and antero-posterior place (0 back,
    1 front) within the body outline; ``note`` ends each reason added here (how the position was judged)."""
    first = len(verdict.reasons)
    if (lateral > 5.0 and verdict.side == "left") or (lateral < -5.0 and verdict.side == "right"):
        where = "right" if lateral > 0 else "left"
        verdict.add("fail", f"lies on the patient's {where} ({abs(lateral):.0f} mm from the midline)")
    bounds = limits.lateral_mm[verdict.muscle]
    _range_check(verdict, abs(lateral), bounds, limits.fail_margin_mm, "distance from the midline", " mm")
    what = "antero-posterior place in the body (0 back, 1 front)"
    _range_check(verdict, ap, limits.ap_fraction[verdict.muscle], limits.fail_margin_ap, what, "")
    verdict.reasons[first:] = [r + note for r in verdict.reasons[first:]]


def _shape_checks(
    verdict: SideVerdict, mask: np.ndarray, per_slice: np.ndarray, voxel_ml: float, slice_mm: float, limits: QCLimits
) -> None:
    """Pieces, empty slices and mean cross-section of one label.

    Args:
        mask: the label's voxels in its bounding box (18 M voxels in the whole grid, a few percent in the box).
        per_slice: the label's voxel count on every slice of the grid along the slice axis.
    """
    pieces, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if n > 1:
        sizes = np.bincount(pieces.ravel())[1:]
        share = sizes.max() / sizes.sum()
        if share < limits.largest_piece_review:
            severity = "fail" if share < limits.largest_piece_fail else "review"
            verdict.add(severity, f"in {n} pieces, the largest {share:.0%} of the label")
    present = per_slice > 0
    first, last = np.flatnonzero(present)[[0, -1]]
    gap = 1.0 - present[first : last + 1].mean()
    if gap > limits.gap_share_review:
        verdict.add(
            "fail" if gap > limits.gap_share_fail else "review",
            f"{gap:.0%} of the slices between its first and last are empty",
        )
    volume = mask.sum() * voxel_ml
    if volume < limits.min_volume_ml_review:
        verdict.add("review", f"volume {volume:.1f} mL, under {limits.min_volume_ml_review:g} mL: a speck, not muscle?")
    extent_cm = (last - first + 1) * slice_mm / 10.0
    csa = volume / extent_cm  # mL / cm = cm^2
    cut = first == 0 or last == len(present) - 1
    bounds = (limits.csa_cut_cm2 if cut else limits.csa_cm2)[verdict.muscle]
    what = "mean cross-section (cut by the field of view)" if cut else "mean cross-section"
    _range_check(verdict, csa, bounds, float("inf"), what, " cm2")


def _signal_checks(verdict: SideVerdict, ff_values: np.ndarray, limits: QCLimits) -> float:
    finite = np.isfinite(ff_values)
    values = ff_values[finite]
    if values.size == 0:
        verdict.add("review", "no voxel with a valid FF")
        return float("nan")
    invalid = 1.0 - float(finite.mean())
    if invalid > limits.invalid_ff_share_review:
        severity = "fail" if invalid > limits.invalid_ff_share_fail else "review"
        verdict.add(
            severity,
            f"{invalid:.0%} of the label has too little signal for an FF (air, lung, bowel gas or outside the "
            "body: the label may reach into them)",
        )
    median = float(np.median(values))
    if median > limits.ff_median_review_pct:
        severity = "fail" if median > limits.ff_median_fail_pct else "review"
        verdict.add(severity, f"median voxel FF {median:.0f} % (mostly fat: the label may lie on fat)")
    fat_share = float(np.mean(values > limits.fat_voxel_pct))
    if fat_share > limits.fat_voxel_share_review:
        verdict.add(
            "review", f"{fat_share:.0%} of its voxels are over {limits.fat_voxel_pct:g} % FF (muscle and fat mixed)"
        )
    return float(np.mean(values))


def _confidence_checks(verdict: SideVerdict, figures: Mapping[str, float] | None, limits: QCLimits) -> None:
    """Ask for review when the network was unsure of most of the label (figures of ``label_confidence``)."""
    if not figures or not figures.get("n_voxels"):
        return  # found after resampling but not in the working-grid argmax: too small to judge
    share, margin = float(figures["boundary_share"]), float(figures["margin_mean"])
    if share > limits.net_boundary_share_review or margin < limits.net_margin_mean_review:
        verdict.add(
            "review",
            f"the network is unsure: {share:.0%} of the label within {BOUNDARY_MARGIN:g} of the next label "
            f"(mean margin {margin:.2f})",
        )


def _border_check(verdict: SideVerdict, labels, value: int, ff, body, box, axis: int, limits: QCLimits) -> None:
    """Ask for review when the tissue just outside the label is mostly like the label's own (under-segmented)."""
    share, median, n = border_like_share(labels, value, ff, body, box, axis, limits.border_like_pp)
    if n and share > limits.border_like_review:
        verdict.add(
            "review",
            f"{share:.0%} of the tissue just outside it has its own FF (within {limits.border_like_pp:g} pp of "
            f"{median:.0f} %): the label may stop inside the muscle (under-segmented?)",
        )


def _relation_checks(
    verdicts: Mapping[int, SideVerdict], per_slice: Mapping[int, np.ndarray], limits: QCLimits
) -> None:
    """QL judged against its neighbours on the same side: a QL found on few of the psoas's slices, or much thinner
    than the ES+MF beside it, is mostly missed (its FF then comes from a sliver)."""
    for side in ("left", "right"):
        ql, es, psoas = (label_value(m, side) for m in ("quadratus_lumborum", "erector_spinae_multifidus", "psoas"))
        if ql not in per_slice:
            continue
        if es in per_slice:
            shared = (per_slice[ql] > 0) & (per_slice[es] > 0)
            if shared.any():
                share = per_slice[ql][shared].sum() / per_slice[es][shared].sum()
                if share < limits.ql_to_es_area_review:
                    verdicts[ql].add(
                        "review",
                        f"cross-section {share:.1%} of the ES+MF beside it on the same slices "
                        f"(expected at least {limits.ql_to_es_area_review:.0%}): mostly missed?",
                    )
        if psoas in per_slice:
            n_ql, n_psoas = int((per_slice[ql] > 0).sum()), int((per_slice[psoas] > 0).sum())
            if n_psoas and n_ql / n_psoas < limits.ql_to_psoas_slices_review:
                verdicts[ql].add("review", f"found on {n_ql} of the {n_psoas} slices that show the psoas")


def _extent_checks(
    verdicts: Mapping[int, SideVerdict],
    per_slice: Mapping[int, np.ndarray],
    affine: np.ndarray,
    shape: tuple[int, ...],
    axis: int,
    limits: QCLimits,
) -> None:
    """Each side against its partner on the same slices (:func:`scripts.quality.extent.extent_findings`)."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    centre = (np.asarray(shape, np.float64) - 1.0) / 2.0
    ijk = np.repeat(centre[None], shape[axis], axis=0)
    ijk[:, axis] = np.arange(shape[axis])
    slice_z = _world(affine, ijk)[:, 2]  # world z of each slice at the grid's centre (oblique slices tilt)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    findings = extent_findings(per_slice, voxel_ml, float(spacing[axis]), slice_z, limits.extent)
    for value, found in findings.items():
        for severity, reason in found:
            verdicts[value].add(severity, reason)


def _label_boxes(labels: np.ndarray, max_label: int) -> list[tuple[slice, ...] | None]:
    """Bounding box of each label value 1..``max_label`` (``None`` when absent), in one pass over the label map."""
    if not np.issubdtype(labels.dtype, np.integer):
        # a value that is not a whole number is no label (``labels == value`` never holds for it)
        whole = np.rint(labels)
        labels = np.where(whole == labels, whole, 0).astype(np.int64)
    return ndimage.find_objects(labels, max_label=max_label)


def assess_segmentation(
    labels: np.ndarray,
    affine: np.ndarray,
    ff: np.ndarray | None = None,
    body: np.ndarray | None = None,
    limits: QCLimits | None = None,
    confidence: Mapping[int, Mapping[str, float]] | None = None,
    spine_from_image: bool = True,
    image_spine: ImageSpine | None = None,
) -> dict[int, SideVerdict]:
    """Judge every muscle label of one subject.

    Args:
        labels: (X, Y, Z) integer label map (docs/design.md values; 0 background), any storage orientation.
        affine: (4, 4) voxel -> RAS world mm of ``labels`` (and of ``ff`` and ``body``, which share its grid).
        ff: (X, Y, Z) voxel FF in percent, NaN where excluded; ``None`` skips the signal checks.
        body: (X, Y, Z) bool body mask; default: the finite voxels of ``ff``, else labels > 0 dilated (weaker).
        limits: the ranges; default :class:`QCLimits`.
        confidence: label -> the network's confidence figures
            (:func:`scripts.quality.confidence.label_confidence`); ``None`` skips the confidence check.
        spine_from_image: when ``labels`` holds no vertebral label (9-14), find the vertebral bodies in ``ff``
            (:func:`scripts.quality.image_spine.find_spine`) and judge each side against them; not found (or
            ``ff`` is ``None``): the body outline alone judges the position.
        image_spine: those bodies when they were already found in ``ff`` with ``body`` and ``limits.image_spine``
            (:class:`scripts.pipeline.image_vertebrae.VertebraeFromFFMapd`); None searches ``ff`` here.

    Returns:
        label value -> :class:`SideVerdict` for the eight muscle labels (a missing label is ``review``).
    """
    limits = limits or QCLimits()
    labels = np.asarray(labels)
    if labels.ndim != 3 or np.shape(affine) != (4, 4):
        raise ValueError(
            f"quality control needs a 3D label map and a 4x4 affine, got {labels.shape} and {np.shape(affine)}"
        )
    if body is None:
        body = np.isfinite(ff) if ff is not None else ndimage.binary_dilation(labels > 0, iterations=10)
    axis = _slice_axis(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    points = _body_points(np.asarray(body, dtype=bool), affine, axis)
    anchored = has_spine(labels)
    frame = None
    if not anchored and spine_from_image and ff is not None:
        image = image_spine if image_spine is not None else find_spine(ff, affine, body, limits.image_spine)
        frame = image.frame()
        logger.info("spine from the FF map: %s%s", "" if image.found else "not found: ", image.reason)
    verdicts, mean_ff, per_slice = {}, {}, {}
    # every label is judged inside its bounding box, all found in one pass: the box's voxels in C order are the
    # whole grid's in C order, so coordinates, sums and FF values come out in the same order as over the grid
    boxes = _label_boxes(labels, max(LABELS))
    for value in sorted(v for v in LABELS if v):
        muscle, side = muscle_and_side(value)
        verdict = verdicts[value] = SideVerdict(value, muscle, side)
        box = boxes[value - 1]
        if box is None:
            verdict.add("review", "not found in the scan")
            continue
        mask = labels[box] == value
        per_slice[value] = np.zeros(labels.shape[axis], dtype=np.intp)
        per_slice[value][box[axis]] = mask.sum(axis=tuple(a for a in range(3) if a != axis))
        ijk = np.argwhere(mask) + np.array([b.start for b in box])
        centre = _world(affine, ijk.mean(axis=0, keepdims=True))[0]
        slices = np.unique(ijk[:, axis])
        midline, posterior, anterior = _body_frame(points, slices)
        if not np.isfinite(midline):
            verdict.add("review", "no body outline on its slices: position not judged")
            _shape_checks(verdict, mask, per_slice[value], voxel_ml, float(spacing[axis]), limits)
            continue
        depth = max(anterior - posterior, 1.0)
        ap = (centre[1] - posterior) / depth
        _position_checks(verdict, centre[0] - midline, ap, limits, "" if anchored or frame else _NO_ANCHOR)
        _shape_checks(verdict, mask, per_slice[value], voxel_ml, float(spacing[axis]), limits)
        if confidence is not None:
            _confidence_checks(verdict, confidence.get(value), limits)
        if ff is not None:
            mean_ff[value] = _signal_checks(verdict, np.asarray(ff)[box][mask], limits)
            _border_check(verdict, labels, value, np.asarray(ff), np.asarray(body, dtype=bool), box, axis, limits)
    _relation_checks(verdicts, per_slice, limits)
    _extent_checks(verdicts, per_slice, affine, labels.shape, axis, limits)
    for value, found in spine_findings(labels, affine, axis, limits.spine, frame).items():
        for severity, reason in found:
            verdicts[value].add(severity, reason)
    for value, ff_mean in mean_ff.items():
        other = mean_ff.get(LEFT_RIGHT_SWAP[value])
        if other is not None and np.isfinite(ff_mean) and np.isfinite(other):
            if abs(ff_mean - other) > limits.lr_ff_difference_pp:
                verdicts[value].add("review", f"mean FF {ff_mean:.1f} % vs {other:.1f} % on the other side")
    return verdicts


def subject_verdict(verdicts: Mapping[int, SideVerdict]) -> tuple[str, float, list[str]]:
    """One subject's status (its worst side's), score (the mean of the found sides') and reasons."""
    found = [v for v in verdicts.values() if not any("not found" in r for r in v.reasons)]
    if not found:
        return "fail", 0.0, ["no muscle found"]
    status = max((v.status for v in found), key=STATUSES.index)
    reasons = [f"{v.muscle} {v.side}: {r}" for v in found for r in v.reasons]
    return status, float(np.mean([v.score for v in found])), reasons


def _net_values(sides: list[SideVerdict], confidence: Mapping[int, Mapping[str, float]]) -> list[float]:
    """The :data:`NET_COLUMNS` values of one row: a side's figures, or both sides' pooled (voxel-weighted)."""
    figures = [confidence.get(v.label) or {} for v in sides]
    counts = np.array([float(f.get("n_voxels") or 0) for f in figures])
    values = [float(counts.sum())]
    for field in list(NET_COLUMNS.values())[1:]:
        x = np.array([float(f.get(field, np.nan)) for f in figures])
        ok = (counts > 0) & np.isfinite(x)
        values.append(round(float(np.average(x[ok], weights=counts[ok])), 4) if ok.any() else float("nan"))
    return values


def add_qc_columns(
    table: pd.DataFrame,
    verdicts: Mapping[int, SideVerdict],
    confidence: Mapping[int, Mapping[str, float]] | None = None,
) -> pd.DataFrame:
    """``table`` (one row per muscle side, plus L/R ``mean`` rows) with :data:`QC_COLUMNS`: a side's verdict on its
    row; a mean row takes its worse side's status, the lower score and both sides' reasons. With ``confidence``
    (label -> figures of :func:`scripts.quality.confidence.label_confidence`) also the :data:`NET_COLUMNS`; a mean
    row pools both sides (voxel counts summed, means weighted by them); without it the table has no such column."""
    by_side = {(v.muscle, v.side): v for v in verdicts.values()}
    status, score, reasons, net = [], [], [], []
    for muscle, side in zip(table["muscle"], table["side"]):
        sides = [by_side[(muscle, s)] for s in ("left", "right")] if side == "mean" else [by_side[(muscle, side)]]
        status.append(max((v.status for v in sides), key=STATUSES.index))
        score.append(round(min(v.score for v in sides), 3))
        reasons.append("; ".join(f"{v.side}: {r}" if side == "mean" else r for v in sides for r in v.reasons))
        if confidence is not None:
            net.append(_net_values(sides, confidence))
    out = table.copy()
    out["qc_status"], out["qc_score"], out["qc_reasons"] = status, score, reasons
    if confidence is not None:
        columns = pd.DataFrame(net, columns=list(NET_COLUMNS), index=out.index)
        out = pd.concat([out, columns.astype({"net_voxels": "int64"})], axis=1)
    return out
