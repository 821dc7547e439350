"""The vertebral bodies as the anchor of each muscle's position, when the label map holds them (labels 9-14).

The body-outline checks of :mod:`scripts.quality.verdict` place a label within the body's outline; a model that also
outputs the vertebral bodies L1-L5 and the sacrum (``VERTEBRAL_LABELS``, the 15-output network) gives a firmer
frame: the psoas lies against the side of the vertebral bodies, in front of the transverse processes; the quadratus
lumborum lies lateral to and behind the psoas; the erector spinae and multifidus lie behind the bodies; a left
muscle lies at lower world x than the bodies' centre (RAS+); the iliacus lies in the iliac fossa, at or below the
level of L5 and the sacrum. A "psoas" drawn on the rectus abdominis (the failure seen on a real scan: FF 93 %,
status ok at the time) lies 10 cm in front of the bodies, whatever the body outline looks like.

All figures are measured on the axial slices a muscle shares with the vertebral labels, in world RAS mm (+x patient
right, +y anterior, +z superior), from the affine. Without vertebral labels (the shipped 9-output network) the
same checks run against the vertebral bodies found in the FF map (:mod:`scripts.quality.image_spine`, a
:class:`SpineFrame` from :func:`frame_from_points`; its reasons end with "(spine from the image)"; it knows no
vertebral level, so the iliacus's height is not checked); when neither exists nothing is added, and the verdict
says, only in the reasons about position, that the body outline alone judged it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial import cKDTree
from scripts.labels import MUSCLE_VALUES, VERTEBRAL_LABELS, label_value, muscle_and_side

__all__ = [
    "FROM_IMAGE",
    "SpineFrame",
    "SpineLimits",
    "frame_from_labels",
    "frame_from_points",
    "has_spine",
    "spine_findings",
]

_VERTEBRAE = tuple(sorted(VERTEBRAL_LABELS))
_BODIES, _SACRUM = _VERTEBRAE[:-1], _VERTEBRAE[-1]  # L1-L5, then the sacrum (docs/design.md)
_L5 = _BODIES[-1]
#: ends each reason judged against vertebral bodies found in the image rather than labelled in the map
FROM_IMAGE = " (spine from the image)"


@dataclasses.dataclass(frozen=True)
class SpineLimits:
    """Distances (mm) beyond which a muscle's place against the vertebral bodies asks for review or fails.

    Set from anatomy (the psoas arises from the sides of the bodies and the discs T12-L5; a correct label touches
    them on most slices) and checked on the true labels of an anatomy-complete training cohort (32 subjects of
    ``python -m scripts.phantom cohort --anatomy complete``, reference geometry with RAS/LPS storage and truncated
    coverage; docs/studies/quality_control.md): there the psoas's gap is 1-11 mm, every left muscle's centre at
    least 28 mm left of the bodies' centre, the ES+MF centre 29-39 mm behind their back edge, the QL centre 23-44 mm
    behind and 21-34 mm lateral to the psoas's, the iliacus centre 9-76 mm below the top of L5.
    """

    #: median over shared slices of the psoas's smallest in-plane distance to a vertebral label
    psoas_gap_review_mm: float = 15.0
    psoas_gap_fail_mm: float = 30.0
    #: a left muscle's centre more than this to the right of the bodies' centre (or a right one to the left) fails
    wrong_side_mm: float = 5.0
    #: ES+MF centre in front of the bodies' posterior edge by more than this asks for review; in front of their
    #: centre it fails
    es_ahead_review_mm: float = 10.0
    #: QL centre in front of the psoas's by more than this, or nearer the midline than the psoas by more than this,
    #: asks for review (twice as much fails)
    ql_margin_mm: float = 10.0
    #: iliacus centre above the top of L5 by more than this (or above the sacrum's top by twice as much) fails
    iliacus_above_l5_mm: float = 20.0


def has_spine(labels: np.ndarray) -> bool:
    """True when the label map holds at least one vertebral label (9-14)."""
    return bool(np.isin(labels, _VERTEBRAE).any())


@dataclasses.dataclass
class SpineFrame:
    """The vertebral bodies per axial slice (index along the slice axis), world RAS mm: their centre x, posterior
    and anterior edge y, a k-d tree of their voxels; the top z of L5 and of the sacrum where known; and where the
    frame came from (``"labels"``: vertebral labels of the map; ``"image"``: found in the FF map,
    :mod:`scripts.quality.image_spine`, which knows no level)."""

    centre_x: dict[int, float]
    posterior_y: dict[int, float]
    anterior_y: dict[int, float]
    tree: dict[int, cKDTree]
    top_z: dict[int, float]
    source: str = "labels"


def _world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def frame_from_points(
    slice_of: np.ndarray, xyz: np.ndarray, is_body: np.ndarray | None = None, source: str = "image"
) -> SpineFrame:
    """The frame of vertebral points from any source.

    Args:
        slice_of: (N,) slice index of each point along the slice axis of the label map's grid.
        xyz: (N, 3) world RAS mm of each point.
        is_body: (N,) bool, the points of the vertebral bodies proper (the edges and the centre come from them where
            a slice has any; the sacrum's wings would move them); default: all.
        source: ``"labels"`` or ``"image"`` (the reasons of an image-derived frame say so).
    """
    slice_of = np.asarray(slice_of)
    is_body = np.ones(len(slice_of), dtype=bool) if is_body is None else np.asarray(is_body, dtype=bool)
    frame = SpineFrame({}, {}, {}, {}, {}, source)
    for k in np.unique(slice_of):
        on = slice_of == k
        bodies = on & is_body
        pts = xyz[bodies] if bodies.any() else xyz[on]
        frame.centre_x[int(k)] = float(np.median(pts[:, 0]))
        frame.posterior_y[int(k)] = float(np.percentile(pts[:, 1], 2))
        frame.anterior_y[int(k)] = float(np.percentile(pts[:, 1], 98))
        frame.tree[int(k)] = cKDTree(xyz[on])
    return frame


def frame_from_labels(labels: np.ndarray, affine: np.ndarray, axis: int) -> SpineFrame | None:
    """The frame of the vertebral labels 9-14 of a label map (``None`` without any), with the top of L5 and of the
    sacrum."""
    ijk = np.argwhere(np.isin(labels, _VERTEBRAE))
    if not len(ijk):
        return None
    values = labels[tuple(ijk.T)]
    xyz = _world(affine, ijk.astype(np.float64))
    frame = frame_from_points(ijk[:, axis], xyz, np.isin(values, _BODIES), source="labels")
    for v in (_L5, _SACRUM):
        if (values == v).any():
            frame.top_z[v] = float(xyz[values == v, 2].max())
    return frame


def _side_figures(mask: np.ndarray, affine: np.ndarray, axis: int, frame: SpineFrame) -> dict[str, float] | None:
    """Centre (mm, RAS) and place against the spine of one label on the slices it shares with the spine."""
    ijk = np.argwhere(mask)
    shared = np.isin(ijk[:, axis], list(frame.tree))
    if not shared.any():
        return None
    xyz = _world(affine, ijk[shared].astype(np.float64))
    k = ijk[shared, axis]
    # per-slice figures looked up for every voxel by array indexing (a label holds ~10^5 voxels)
    spine_slices = np.array(sorted(frame.tree))
    at = np.searchsorted(spine_slices, k)
    posterior = np.array([frame.posterior_y[int(i)] for i in spine_slices])[at]
    anterior = np.array([frame.anterior_y[int(i)] for i in spine_slices])[at]
    cx = np.array([frame.centre_x[int(i)] for i in spine_slices])[at]
    order = np.argsort(k, kind="stable")
    label_slices, starts = np.unique(k[order], return_index=True)
    groups = np.split(xyz[order], starts[1:])
    gaps = [float(frame.tree[int(i)].query(g, k=1)[0].min()) for i, g in zip(label_slices, groups)]
    return {
        "lateral": float(np.mean(xyz[:, 0] - cx)),  # + towards the patient's right of the bodies' centre
        "y": float(xyz[:, 1].mean()),
        "behind_edge": float(np.mean(xyz[:, 1] - posterior)),
        "centre_y": float(np.mean((posterior + anterior) / 2)),
        "gap": float(np.median(gaps)),
        "z": float(_world(affine, ijk.mean(axis=0, keepdims=True))[0, 2]),
    }


def _grade(value: float, review: float, fail: float) -> str | None:
    return "fail" if value > fail else ("review" if value > review else None)


def _muscle_findings(muscle: str, side: str, f: dict, figures: dict, frame: SpineFrame, limits: SpineLimits) -> list:
    out = []
    wrong = f["lateral"] if side == "left" else -f["lateral"]
    if wrong > limits.wrong_side_mm:
        where = "right" if f["lateral"] > 0 else "left"
        out.append(("fail", f"lies {abs(f['lateral']):.0f} mm to the patient's {where} of the vertebral bodies"))
    if muscle == "psoas":
        grade = _grade(f["gap"], limits.psoas_gap_review_mm, limits.psoas_gap_fail_mm)
        if grade:
            ahead = f["y"] - f["centre_y"]
            out.append(
                (
                    grade,
                    f"lies {f['gap']:.0f} mm from the vertebral bodies (median over its slices; a psoas lies against "
                    f"them), its centre {abs(ahead):.0f} mm {'in front of' if ahead > 0 else 'behind'} their centre",
                )
            )
    if muscle == "erector_spinae_multifidus" and f["behind_edge"] > limits.es_ahead_review_mm:
        grade = "fail" if f["y"] > f["centre_y"] else "review"
        out.append((grade, f"its centre lies {f['behind_edge']:.0f} mm in front of the vertebral bodies' back edge"))
    psoas = figures.get(label_value("psoas", side))
    if muscle == "quadratus_lumborum" and psoas is not None:
        ahead = f["y"] - psoas["y"]
        medial = abs(psoas["lateral"]) - abs(f["lateral"])
        for what, value in (("in front of", ahead), ("nearer the midline than", medial)):
            grade = _grade(value, limits.ql_margin_mm, 2 * limits.ql_margin_mm)
            if grade:
                out.append((grade, f"its centre lies {value:.0f} mm {what} the psoas's (QL is lateral and behind)"))
    if muscle == "iliacus":
        if _L5 in frame.top_z:
            above, level, margin = f["z"] - frame.top_z[_L5], "the top of L5", limits.iliacus_above_l5_mm
        elif _SACRUM in frame.top_z:
            above, level = f["z"] - frame.top_z[_SACRUM], "the top of the sacrum"
            margin = 2 * limits.iliacus_above_l5_mm
        else:
            return out
        if above > margin:
            out.append(("fail", f"its centre lies {above:.0f} mm above {level} (the iliacus lies at or below L5)"))
    return out


def spine_findings(
    labels: np.ndarray,
    affine: np.ndarray,
    axis: int,
    limits: SpineLimits | None = None,
    frame: SpineFrame | None = None,
) -> dict[int, list[tuple[str, str]]]:
    """Each muscle side's place against the vertebral bodies: those of the same map, or ``frame``.

    Args:
        labels: (X, Y, Z) label map holding muscles (1-8) and maybe vertebral labels (9-14), any storage orientation.
        affine: (4, 4) voxel -> RAS world mm.
        axis: the array axis of the axial slices.
        limits: the distances; default :class:`SpineLimits`.
        frame: the bodies from elsewhere (:meth:`scripts.quality.image_spine.ImageSpine.frame`, slice indices of the
            same grid); default: the map's vertebral labels.

    Returns:
        label value -> list of (``review``/``fail``, reason in words, naming the vertebral bodies; an image-derived
        frame's reasons end with :data:`FROM_IMAGE`); empty without a frame or when no muscle shares a slice with it.
    """
    limits = limits or SpineLimits()
    labels = np.asarray(labels)
    frame = frame if frame is not None else frame_from_labels(labels, affine, axis)
    if frame is None or not frame.tree:
        return {}
    figures = {}
    for value in MUSCLE_VALUES:
        mask = labels == value
        if mask.any():
            f = _side_figures(mask, affine, axis, frame)
            if f is not None:
                figures[value] = f
    note = FROM_IMAGE if frame.source == "image" else ""
    findings = {}
    # the psoas first: a psoas that fails against the bodies is no reference for its QL (the QL is then judged
    # against the bodies alone)
    for value in sorted(figures, key=lambda v: muscle_and_side(v)[0] != "psoas"):
        muscle, side = muscle_and_side(value)
        found = _muscle_findings(muscle, side, figures[value], figures, frame, limits)
        if found:
            findings[value] = [(severity, reason + note) for severity, reason in found]
            if muscle == "psoas" and any(severity == "fail" for severity, _ in found):
                figures = {k: v for k, v in figures.items() if k != value}
    return findings
