"""Vertebral levels L1-L5 from the vertebral-body labels of a label map: names, checks and cranio-caudal bounds.

The naming evidence is the label map's own values 9-13 (vertebral bodies L1-L5) and 14 (sacrum), as
:mod:`scripts.labels` defines them; nothing is renamed here. The names are checked for consistency (cranio-caudal
order, one piece per body, plausible body heights and disc gaps, no name skipped between two visible bodies) and
anchored on the sacrum: only when the sacrum is visible, directly below the body called L5, and every check passes
are the levels ``ok``; otherwise every level is ``uncertain`` and the reasons say why. A field of view that shows
L2-L5 without the sacrum is therefore never reported as certain, whatever the names say.

Coordinates: world RAS millimetres from the affine; the cranio-caudal axis is world z (superior +). Bounds are axial
planes (constant world z), so a scan stored in LPS, with anisotropic or oblique voxels, gives the same bounds. Level
bounds (``rule="mid_disc"``, the default): the plane midway between the caudal end of one body and the cranial end of
the next (mid-disc); the outer bound of the first or last visible body lies half the mean disc gap beyond it, and a
body cut by the field of view is completed with the mean height of the uncut bodies. ``rule="mid_body"`` gives
disc-centred segments instead ("L3-L4" from the mid-plane of L3 to that of L4; the S1 mid-plane lies half a mean body
height below the top of the sacrum).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scripts.grid import slice_axis_from_affine, truncation_flags
from scripts.label_values import present_values
from scripts.labels import VERTEBRAL_LABELS

__all__ = [
    "BOUNDARY_RULES",
    "SACRUM_VALUE",
    "Body",
    "Level",
    "LevelAssignment",
    "assign_levels",
    "field_of_view_z",
    "z_of_voxels",
    "has_vertebral_context",
    "measure_bodies",
    "naming_problems",
]

#: the level bound rules: mid-disc planes (default) or vertebral-body mid-planes (disc-centred segments)
BOUNDARY_RULES: tuple[str, ...] = ("mid_disc", "mid_body")
#: label value of the sacrum (the anchor)
SACRUM_VALUE: int = max(VERTEBRAL_LABELS)
#: body value -> short name ("L1" ... "L5", "sacrum")
_SHORT: dict[int, str] = {
    v: ("sacrum" if v == SACRUM_VALUE else n.rsplit("_", 1)[-1]) for v, n in VERTEBRAL_LABELS.items()
}
#: plausible adult lumbar body height (mm, cranio-caudal); outside: the name or the segmentation is doubtful
HEIGHT_RANGE_MM: tuple[float, float] = (20.0, 40.0)
#: plausible gap between two adjacent bodies (mm: a disc, thinned to ~2 mm by degeneration and voxel rounding)
GAP_RANGE_MM: tuple[float, float] = (1.0, 20.0)
#: the lowest gap accepted between L5 and the sacrum (mm; negative: they overlap in z). A spine network's sacrum class
#: ran 1-3 slices up into the L5/S1 disc or beside the bottom of L5 on 2 of the 20 held-out phantoms (0 and -5 mm),
#: where no body was missing; a missing body would leave a gap of a body and a disc, beyond GAP_RANGE_MM.
SACRUM_OVERLAP_MM = -10.0
#: used when no uncut body is visible: a nominal adult lumbar body height (mm) and disc height / body height
_NOMINAL_HEIGHT_MM = 28.0
_NOMINAL_GAP_RATIO = 0.33
#: the start of the problem that says the sacrum is missing (a stated anchor replaces it)
_NO_SACRUM = "the sacrum is not in the label map"
#: a second piece of one body label counts when it holds at least this share of the largest piece's voxels
_PIECE_FRACTION = 0.1


@dataclass(frozen=True)
class Body:
    """One vertebral body (or the sacrum) as the label map shows it, in world z (RAS mm, superior +).

    Attributes:
        value: label value (9-13 bodies L1-L5, 14 sacrum).
        name: ``"L1"`` ... ``"L5"`` or ``"sacrum"``.
        z_low: caudal end (mm): the lowest voxel centre of the largest piece minus half a voxel's z extent.
        z_high: cranial end (mm), likewise.
        n_voxels: voxels of the label (all pieces).
        n_pieces: pieces holding at least 10 % of the largest piece's voxels (1 for a well-formed body; always 1
            for the sacrum, whose body, alae and dorsal plate are separate pieces once cut, and whose extent is
            that of all its voxels).
        cut_low: the body touches the caudal end of the field of view (its true caudal end is unknown).
        cut_high: the body touches the cranial end of the field of view.
    """

    value: int
    name: str
    z_low: float
    z_high: float
    n_voxels: int
    n_pieces: int
    cut_low: bool
    cut_high: bool

    @property
    def height(self) -> float:
        """Visible cranio-caudal extent (mm)."""
        return self.z_high - self.z_low

    @property
    def is_sacrum(self) -> bool:
        return self.value == SACRUM_VALUE


@dataclass(frozen=True)
class Level:
    """One level: a cranio-caudal slab between two axial planes of world z.

    Attributes:
        name: ``"L1"`` ... ``"L5"`` (``mid_disc``) or ``"L3-L4"``, ``"L5-S1"``, ``"T12-L1"`` (``mid_body``).
        z_low: caudal bound (mm, world z).
        z_high: cranial bound (mm).
        coverage: share (0-1) of ``z_high - z_low`` that lies inside the field of view.
        status: ``"ok"`` or ``"uncertain"`` (the assignment's status).
        notes: facts about this level that do not change its status (estimated bounds, partial coverage).
    """

    name: str
    z_low: float
    z_high: float
    coverage: float
    status: str
    notes: tuple[str, ...] = ()

    @property
    def z_mid(self) -> float:
        return 0.5 * (self.z_low + self.z_high)


@dataclass
class LevelAssignment:
    """The levels of one label map.

    Attributes:
        levels: cranial to caudal.
        bodies: the measured bodies, cranial to caudal.
        status: ``"ok"`` or ``"uncertain"``.
        reasons: why uncertain (empty when ok).
        rule: the bound rule (:data:`BOUNDARY_RULES`).
        fov_z: ``(low, high)`` world z (mm) of the field of view at the grid's in-plane centre.
        estimates: mean body height and disc gap (mm) used for cut bodies and end bounds.
        anchor: what anchors the names: ``"sacrum"``, or the user's statement (``"stated lowest body L5"``).
    """

    levels: list[Level]
    bodies: list[Body]
    status: str
    reasons: list[str]
    rule: str
    fov_z: tuple[float, float]
    estimates: dict[str, float] = field(default_factory=dict)
    anchor: str = "sacrum"

    def to_meta(self) -> dict[str, Any]:
        """A JSON-ready description (the ``levels`` section of the FF table JSON)."""
        return {
            "status": self.status,
            "reasons": list(self.reasons),
            "anchor": self.anchor,
            "boundary_rule": _RULE_TEXT[self.rule],
            "coordinates": "world RAS mm from the affine; bounds are axial planes of constant z (superior +)",
            "field_of_view_z_mm": [float(self.fov_z[0]), float(self.fov_z[1])],
            "estimates_mm": {k: float(v) for k, v in self.estimates.items()},
            "bodies": [
                {
                    "name": b.name,
                    "label": b.value,
                    "z_low_mm": b.z_low,
                    "z_high_mm": b.z_high,
                    "height_mm": b.height,
                    "n_voxels": b.n_voxels,
                    "n_pieces": b.n_pieces,
                    "cut_caudal": b.cut_low,
                    "cut_cranial": b.cut_high,
                }
                for b in self.bodies
            ],
            "levels": [
                {
                    "level": lv.name,
                    "z_low_mm": lv.z_low,
                    "z_high_mm": lv.z_high,
                    "coverage": lv.coverage,
                    "status": lv.status,
                    "notes": list(lv.notes),
                }
                for lv in self.levels
            ],
        }


_RULE_TEXT = {
    "mid_disc": "mid_disc: a level is bounded by the planes midway between its body and the next body above and "
    "below; an end body's outer bound lies half the mean disc gap beyond it",
    "mid_body": "mid_body: disc-centred segments between the mid-planes of consecutive bodies (S1's mid-plane half a "
    "mean body height below the top of the sacrum)",
}


def has_vertebral_context(label: np.ndarray) -> bool:
    """Whether ``label`` holds any vertebral value (9-14)."""
    lab = np.asarray(label)
    return bool(np.isin(lab, list(VERTEBRAL_LABELS)).any())


def z_of_voxels(affine: np.ndarray, idx: tuple[np.ndarray, ...]) -> np.ndarray:
    """World z (mm) of the voxel centres ``idx`` (one index array per axis)."""
    return affine[2, 0] * idx[0] + affine[2, 1] * idx[1] + affine[2, 2] * idx[2] + affine[2, 3]


def field_of_view_z(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[float, float]:
    """World z range (mm) covered by a grid along its slice axis, at the in-plane centre.

    Args:
        affine: 4x4 voxel-to-world (RAS, mm) affine.
        shape: spatial shape ``(I, J, K)``.

    Returns:
        ``(low, high)``: the outer faces of the end slices (slice centres +- half the slice step in z).
    """
    aff = np.asarray(affine, dtype=np.float64)
    axis = slice_axis_from_affine(aff)
    centre = (np.asarray(shape[:3], dtype=np.float64) - 1.0) / 2.0
    ends = []
    for k in (0, shape[axis] - 1):
        vox = centre.copy()
        vox[axis] = k
        ends.append(float(aff[2, :3] @ vox + aff[2, 3]))
    half = 0.5 * abs(float(aff[2, axis]))
    return min(ends) - half, max(ends) + half


def measure_bodies(label: np.ndarray, affine: np.ndarray) -> list[Body]:
    """The vertebral bodies and sacrum of a label map, cranial to caudal (by the centre of their extent).

    Args:
        label: 3D label map (values of :mod:`scripts.labels`; 9-14 are read).
        affine: 4x4 voxel-to-world (RAS, mm) affine of ``label``.

    Returns:
        One :class:`Body` per vertebral value present, sorted by decreasing mid z.
    """
    lab = np.asarray(label)
    if lab.ndim != 3:
        raise ValueError(f"the label map must be 3D, got shape {lab.shape}")
    aff = np.asarray(affine, dtype=np.float64)
    half_z = 0.5 * float(np.abs(aff[2, :3]).sum())  # half the z extent of one voxel (any orientation)
    present = set(present_values(lab))
    values = [v for v in VERTEBRAL_LABELS if v in present]
    cut = truncation_flags(lab, values, aff)
    objects = ndimage.find_objects(np.where(np.isin(lab, values), lab, 0).astype(np.int32))
    bodies = []
    for v in values:
        box = objects[v - 1]
        comp, n = ndimage.label(lab[box] == v)
        sizes = np.bincount(comp.ravel())[1:]
        largest = int(np.argmax(sizes)) + 1
        # the sacrum is one bone in several pieces once cut (body, alae, dorsal plate): all of it counts
        piece = comp > 0 if v == SACRUM_VALUE else comp == largest
        idx = tuple(c + s.start for c, s in zip(np.nonzero(piece), box))
        z = z_of_voxels(aff, idx)
        bodies.append(
            Body(
                value=v,
                name=_SHORT[v],
                z_low=float(z.min()) - half_z,
                z_high=float(z.max()) + half_z,
                n_voxels=int(sizes.sum()),
                n_pieces=1 if v == SACRUM_VALUE else int((sizes >= _PIECE_FRACTION * sizes.max()).sum()),
                cut_low=bool(cut[v]["truncated_inferior"]),
                cut_high=bool(cut[v]["truncated_superior"]),
            )
        )
    return sorted(bodies, key=lambda b: -(b.z_low + b.z_high))


def naming_problems(bodies: list[Body]) -> list[str]:
    """Why the bodies' names cannot be trusted as they stand; empty when they are consistent and anchored.

    Checks: one piece per body; cranio-caudal order L1 ... L5 then the sacrum; each uncut body 20-40 mm high;
    1-20 mm between adjacent bodies; no name skipped between two visible bodies; the sacrum visible (the anchor:
    without it a uniformly shifted naming, e.g. L2-L5 called L1-L4, cannot be told from the truth).

    Args:
        bodies: output of :func:`measure_bodies` (cranial to caudal).

    Returns:
        One sentence per problem.
    """
    problems = [
        f"{b.name} is in {b.n_pieces} separate pieces (two bodies given one name?)" for b in bodies if b.n_pieces > 1
    ]
    order = [b.value for b in bodies]
    if order != sorted(order):
        problems.append(
            "cranio-caudal order is " + ", ".join(b.name for b in bodies) + "; expected L1 to L5, then the sacrum"
        )
    lo, hi = HEIGHT_RANGE_MM
    for b in bodies:
        if not b.is_sacrum and not (b.cut_low or b.cut_high) and not lo <= b.height <= hi:
            problems.append(f"{b.name} is {b.height:.0f} mm high (plausible {lo:.0f}-{hi:.0f} mm)")
    for upper, lower in zip(bodies[:-1], bodies[1:]):
        gap = upper.z_low - lower.z_high
        lowest = SACRUM_OVERLAP_MM if lower.is_sacrum else GAP_RANGE_MM[0]
        if not lowest <= gap <= GAP_RANGE_MM[1]:
            problems.append(
                f"{gap:.0f} mm between {upper.name} and {lower.name} (a disc: {lowest:.0f} to {GAP_RANGE_MM[1]:.0f} mm)"
            )
        if upper.value < lower.value - 1:
            skipped = ", ".join(_SHORT[v] for v in range(upper.value + 1, lower.value))
            problems.append(f"no {skipped} between {upper.name} and {lower.name}")
    if not any(b.is_sacrum for b in bodies):
        problems.append(
            f"{_NO_SACRUM} (outside the field of view or not segmented): nothing anchors the names, which are the "
            "network's own"
        )
    return problems


def _estimates(bodies: list[Body]) -> dict[str, float]:
    """Mean height of the uncut lumbar bodies and mean gap between adjacent visible bodies (mm), or nominal ones."""
    heights = [b.height for b in bodies if not b.is_sacrum and not (b.cut_low or b.cut_high)]
    height = float(np.mean(heights)) if heights else _NOMINAL_HEIGHT_MM
    gaps = [u.z_low - w.z_high for u, w in zip(bodies[:-1], bodies[1:]) if u.value == w.value - 1]
    gaps = [g for g in gaps if GAP_RANGE_MM[0] <= g <= GAP_RANGE_MM[1]]
    gap = float(np.mean(gaps)) if gaps else _NOMINAL_GAP_RATIO * height
    return {"body_height": height, "disc_gap": gap}


def _completed(b: Body, height: float) -> tuple[float, float, list[str]]:
    """The body's ends, a cut end replaced by the other end -+ the mean height; notes say which."""
    low, high, notes = b.z_low, b.z_high, []
    if b.cut_low and not b.cut_high:
        low = min(low, high - height)
        notes.append(f"{b.name} is cut by the field of view: its caudal end estimated from the mean body height")
    elif b.cut_high and not b.cut_low:
        high = max(high, low + height)
        notes.append(f"{b.name} is cut by the field of view: its cranial end estimated from the mean body height")
    return low, high, notes


def _mid_disc_levels(bodies: list[Body], est: dict[str, float]) -> list[tuple[str, float, float, list[str]]]:
    """``(name, low, high, notes)`` per lumbar body, bounded by mid-disc planes."""
    ends = [_completed(b, est["body_height"]) for b in bodies]
    out = []
    for i, b in enumerate(bodies):
        if b.is_sacrum:
            continue
        low, high, notes = ends[i]
        notes = list(notes)
        if i > 0:
            top = 0.5 * (ends[i - 1][0] + high)
        else:
            top = high + 0.5 * est["disc_gap"]
            notes.append(f"cranial bound {b.name} + half the mean disc gap (no body above in view)")
        if i + 1 < len(bodies):
            bottom = 0.5 * (low + ends[i + 1][1])
        else:
            bottom = low - 0.5 * est["disc_gap"]
            notes.append(f"caudal bound {b.name} - half the mean disc gap (no body below in view)")
        out.append((b.name, bottom, top, notes))
    return out


def _neighbour_name(value: int, step: int) -> str:
    v = value + step
    if v < min(VERTEBRAL_LABELS):
        return "T12"
    return "S1" if v == SACRUM_VALUE else _SHORT[v]


def _mid_body_levels(bodies: list[Body], est: dict[str, float]) -> list[tuple[str, float, float, list[str]]]:
    """``(name, low, high, notes)`` per disc-centred segment between consecutive body mid-planes."""
    height, pitch = est["body_height"], est["body_height"] + est["disc_gap"]
    mids, names = [], []
    for b in bodies:
        low, high, _ = _completed(b, height)
        mids.append(b.z_high - 0.5 * height if b.is_sacrum else 0.5 * (low + high))
        names.append("S1" if b.is_sacrum else b.name)
    out = []
    if bodies and not bodies[0].is_sacrum:
        name = f"{_neighbour_name(bodies[0].value, -1)}-{names[0]}"
        out.append((name, mids[0], mids[0] + pitch, [f"cranial bound one body height + disc gap above {names[0]}"]))
    for i in range(len(bodies) - 1):
        out.append((f"{names[i]}-{names[i + 1]}", mids[i + 1], mids[i], []))
    if bodies and not bodies[-1].is_sacrum:
        name = f"{names[-1]}-{_neighbour_name(bodies[-1].value, 1)}"
        out.append((name, mids[-1] - pitch, mids[-1], [f"caudal bound one body height + disc gap below {names[-1]}"]))
    return out


def assign_levels(
    label: np.ndarray, affine: np.ndarray, rule: str = "mid_disc", anchor: str = "sacrum"
) -> LevelAssignment | None:
    """The vertebral levels of a label map, their bounds in world z and whether their names can be trusted.

    Args:
        label: 3D label map (values of :mod:`scripts.labels`; 9-13 L1-L5, 14 sacrum), any orientation and spacing.
        affine: 4x4 voxel-to-world (RAS, mm) affine of ``label``.
        rule: ``"mid_disc"`` (default: levels L1-L5 bounded by mid-disc planes) or ``"mid_body"`` (disc-centred
            segments between body mid-planes).
        anchor: ``"sacrum"`` (default: the names must be anchored on the sacrum in the map), or the user's statement
            the names were counted from (``"stated lowest body L5"``,
            :func:`scripts.quantification.vertebra_naming.count_bodies_from_sacrum` with ``lowest_vertebra``): the
            sacrum is then not asked for; every other check stands.

    Returns:
        A :class:`LevelAssignment`, or ``None`` when the map holds no vertebral value (a 9-output model).

    Raises:
        ValueError: an unknown ``rule`` or a label map that is not 3D.

    Example:
        >>> import numpy as np
        >>> lab = np.zeros((4, 4, 60), np.uint8)
        >>> lab[..., 0:10], lab[..., 13:40] = 14, 13  # sacrum top at z = 10 mm, L5 from 13 to 40 mm
        >>> res = assign_levels(lab, np.eye(4))
        >>> res.status, [(lv.name, round(lv.z_low, 1), round(lv.z_high, 1)) for lv in res.levels]
        ('ok', [('L5', 11.0, 41.0)])
    """
    if rule not in BOUNDARY_RULES:
        raise ValueError(f"rule must be one of {BOUNDARY_RULES}, got {rule!r}")
    lab = np.asarray(label)
    if not has_vertebral_context(lab):
        return None
    aff = np.asarray(affine, dtype=np.float64)
    bodies = measure_bodies(lab, aff)
    reasons = naming_problems(bodies)
    if anchor != "sacrum":
        # the statement anchors the names that the sacrum would have (docs/design.md "Levels")
        reasons = [r for r in reasons if not r.startswith(_NO_SACRUM)]
    if all(b.is_sacrum for b in bodies):
        reasons.append("no lumbar vertebral body in the label map, only the sacrum: no level to give")
    status = "uncertain" if reasons else "ok"
    est = _estimates(bodies)
    fov = field_of_view_z(aff, lab.shape)
    raw = _mid_disc_levels(bodies, est) if rule == "mid_disc" else _mid_body_levels(bodies, est)
    levels = []
    for name, low, high, notes in raw:
        inside = max(0.0, min(high, fov[1]) - max(low, fov[0]))
        coverage = inside / (high - low) if high > low else 0.0
        if coverage < 1.0:
            notes = [*notes, f"{coverage:.0%} of the level lies inside the field of view"]
        levels.append(Level(name, float(low), float(high), float(coverage), status, tuple(notes)))
    return LevelAssignment(levels, bodies, status, reasons, rule, fov, est, anchor)
