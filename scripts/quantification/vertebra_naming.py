"""Vertebral bodies named by counting up from the sacrum instead of by the network's own names.

Why: a network that sees a 96x96x48 window at 2x2x4 mm (about five bodies) names the lumbar bodies by their look and
their neighbours, and a body that looks like the one below it gets the wrong name: the 15-output candidates of
docs/studies/training_history.md found L4-L5 well but called L1-L3 one level off on many subjects. Where the
sacrum is in view the names follow from counting: the first body above the sacrum is L5, the next L4, and so on
(the clinical convention, also used by readers of lumbar MRI; a lumbosacral transitional vertebra, in about one
person in ten, shifts it just as it shifts a reader's count).

Rule, in world RAS mm (superior +z) from the affine, any storage orientation:

1. every connected piece (faces) of each body value 9-13 is a candidate; pieces under ``min_piece_share`` of the
   largest piece are specks, removed when the bodies are renamed (as the largest-component step would have), and
   so are the specks of the sacrum when its top is found;
2. candidates that share slices, or touch (gap under ``GAP_RANGE_MM[0]``) and together stay within the
   plausible height of one body (``HEIGHT_RANGE_MM[1]``), are one body given two names; a candidate taller than that
   height is two bodies given one name and is split at its narrowest slice (no disc is asked between the parts);
3. the sacrum is its pieces whose centre lies within ``SACRUM_MAX_OFF_COLUMN_MM`` of the column of bodies (the
   median left-right and front-back position of the body voxels), and of those the ones not under
   ``min_piece_share`` of the largest: a piece of "sacrum" far from the column (a spine network's false positive in
   fat at the edge of the field of view) is no anchor, which matters most when the true sacrum is out of view;
4. the bodies above the top of the sacrum, caudal to cranial, are L5, L4, ... L1, as long as every gap (sacrum to
   the first body, body to body) is a disc (``GAP_RANGE_MM``); a sixth body is T12 (or a sixth lumbar
   vertebra) and is left unlabelled. Between the sacrum and the first body an overlap down to
   ``SACRUM_OVERLAP_MM`` is accepted: a network's sacrum class that runs a slice or two into the L5/S1 disc or
   the bottom of L5 (measured on thick slices), not a missing body, which would leave a gap of a body and a disc;
5. nothing is counted, and the record says why, from a sacrum that cannot be one: a body piece lies wholly below it
   (no vertebral body lies below the sacrum: a "sacrum" drawn inside or between bodies), or its largest axial
   cross-section is under ``SACRUM_MIN_AREA_SHARE`` of a body's. A wrong anchor would shift every name and every
   level silently; no names give no levels, which the tables say.

6. a stated anchor (``lowest``: "the lowest lumbar body in the field of view is L5", which the user knows from the
   protocol or the localiser) names the bodies where the sacrum cannot: when the map has no sacrum, or a doubtful
   one (rule 5), the lowest body found is the stated one and the bodies above it follow, as long as every gap is a
   disc and no more than ``STATED_MAX_ROOM_BELOW_MM`` of the field of view lies below it (more would leave room for
   the stated body itself, missed by the network, and every name would be one level off). Where the sacrum anchors
   the count, the statement must agree with it, or nothing is named: one of the two is wrong and the map cannot
   tell which. A scan of L2-L5 (the common lumbar Dixon protocol), which never shows the sacrum, gets levels this
   way and no other.

A spine network (``configs/spine_train.json``) segments every body as one class and gives no names:
:func:`count_bodies_from_sacrum` applies the same rule to its map (0 background, 1 body, 2 sacrum) and writes 9-14.

Nothing is renamed, and the record says why, when the map has no sacrum (nothing to count from: the levels are then
``uncertain``, :mod:`scripts.quantification.levels`), or when a gap is not a disc (a body missed by the network
would shift every name above it).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage
from scripts.label_values import present_values
from scripts.labels import VERTEBRAL_LABELS
from scripts.quantification.levels import (
    GAP_RANGE_MM,
    HEIGHT_RANGE_MM,
    SACRUM_OVERLAP_MM,
    SACRUM_VALUE,
    field_of_view_z,
    z_of_voxels,
)

__all__ = [
    "LOWEST_BODY_NAMES",
    "NamingResult",
    "SACRUM_MAX_OFF_COLUMN_MM",
    "SACRUM_MIN_AREA_SHARE",
    "STATED_MAX_ROOM_BELOW_MM",
    "NAMED_STATUSES",
    "count_bodies_from_sacrum",
    "levels_anchor",
    "lowest_body_value",
    "name_bodies_from_sacrum",
]

#: a sacrum piece's centre may lie this far (mm, in the axial plane) from the column of bodies. The sacrum lies
#: behind and below L5: its centre 33-47 mm from the column's on the 20 anatomy-complete held-out phantoms, its top
#: 21-33 mm; in adults the sacral promontory is under L5, so 80 mm leaves room for a steep lordosis.
SACRUM_MAX_OFF_COLUMN_MM = 80.0

#: the sacrum's largest axial cross-section must be at least this share of the bodies' (median of each body's
#: largest). S1 alone is about as wide as L5 and its alae add as much again: 2.0-2.6 times on the 19 held-out
#: phantoms whose sacrum is in view; the spine network with test-time batch-norm adaptation drew "sacrum" pieces of
#: 0.5-5.4 cm2 inside or between bodies on the three real MR samples (none shows the sacrum), from which every body
#: above them was named (docs/studies/real_scans.md).
SACRUM_MIN_AREA_SHARE = 0.5

#: the most field of view (mm) that may lie below the lowest body found when the names come from a stated lowest body
#: (rule 6): about a disc. The L5/S1 disc is 8-14 mm high in adults; with more room below, the stated body itself may
#: be there, cut by the field of view or missed by the network, and the body found would be the one above it.
STATED_MAX_ROOM_BELOW_MM = 15.0

#: body values, cranial (L1 = 9) to caudal (L5 = 13)
_BODY_VALUES: tuple[int, ...] = tuple(v for v in sorted(VERTEBRAL_LABELS) if v != SACRUM_VALUE)
_NAMES: dict[int, str] = {v: VERTEBRAL_LABELS[v].rsplit("_", 1)[-1] for v in _BODY_VALUES}
#: the names a stated lowest body may have (rule 6)
LOWEST_BODY_NAMES: tuple[str, ...] = tuple(_NAMES[v] for v in _BODY_VALUES)


#: naming statuses whose names the count gave (the others kept the network's names or named nothing)
NAMED_STATUSES: tuple[str, ...] = ("counted", "confirmed", "renamed")


def levels_anchor(status: str | None, anchor: str | None) -> str:
    """What the level rule (:func:`scripts.quantification.levels.assign_levels`) should take as the names' anchor,
    from a naming record's ``status`` and ``anchor``: a stated lowest body when the count named the bodies from it,
    else ``"sacrum"`` (which the level rule then asks to see)."""
    return str(anchor) if status in NAMED_STATUSES and anchor else "sacrum"


def lowest_body_value(name: str | None) -> int | None:
    """Label value (9-13) of a stated lowest body ``"L1"`` ... ``"L5"`` (any case); None for None.

    Raises:
        ValueError: any other name, with the names allowed.
    """
    if name is None:
        return None
    key = str(name).strip().upper()
    for v, n in _NAMES.items():
        if n == key:
            return v
    raise ValueError(f"lowest_vertebra must be one of {', '.join(LOWEST_BODY_NAMES)} (or null), got {name!r}")


@dataclasses.dataclass
class NamingResult:
    """What :func:`name_bodies_from_sacrum` did.

    Attributes:
        status: ``"confirmed"`` (the count gives the network's names), ``"renamed"``, ``"kept"`` (not counted: see
            ``reasons``), ``"no vertebral bodies"``; for a spine network's unnamed bodies
            (:func:`count_bodies_from_sacrum`) ``"counted"`` or ``"not named"`` (see ``reasons``).
        renamed: ``"network name -> counted name"`` per body whose name changed, caudal to cranial.
        reasons: why the names were kept, or facts about the count (a sixth body left unlabelled).
        anchor: what the names were counted from: ``"sacrum"``, or ``"stated lowest body L5"`` (rule 6 of the
            module; also when nothing was named and a lowest body was stated).
    """

    status: str
    renamed: list[str] = dataclasses.field(default_factory=list)
    reasons: list[str] = dataclasses.field(default_factory=list)
    anchor: str = "sacrum"
    #: the sacrum found cannot be one (rule 5): it is not written as the sacrum either
    doubtful_sacrum: bool = dataclasses.field(default=False, repr=False)

    @property
    def stated(self) -> bool:
        """The names come from a stated lowest body, not from the sacrum."""
        return self.anchor != "sacrum"

    def to_meta(self) -> dict:
        meta = dataclasses.asdict(self)
        meta.pop("doubtful_sacrum")
        rule = "counted up from the sacrum"
        if self.stated:
            rule = f"counted up from the {self.anchor} (the user's statement: the sacrum does not anchor this scan)"
        return {"rule": rule, **meta}


@dataclasses.dataclass
class _Body:
    voxels: list[tuple[np.ndarray, ...]]  # index arrays of its pieces
    values: list[int]  # the network's name of each piece
    z: np.ndarray  # world z of every voxel (mm)
    split: bool = False  # the upper part of a piece cut at its narrowest slice: no gap below it to check

    @property
    def low(self) -> float:
        return float(self.z.min())

    @property
    def high(self) -> float:
        return float(self.z.max())


def _column(lab: np.ndarray, affine: np.ndarray) -> np.ndarray | None:
    """World (R, A) in mm of the column of bodies: the median of the body voxels' positions; None without bodies."""
    idx = np.argwhere(np.isin(lab, _BODY_VALUES))
    if not len(idx):
        return None
    return np.median(idx @ affine[:2, :3].T + affine[:2, 3], axis=0)


def _sacrum(
    lab: np.ndarray, affine: np.ndarray, min_piece_share: float, column: np.ndarray | None = None
) -> tuple[float, np.ndarray] | None:
    """The sacrum's pieces that are not specks and lie by the column of bodies (rule 3 of the module): the world z
    (mm) of their highest voxel centre and their mask; None without one."""
    comp, n = ndimage.label(lab == SACRUM_VALUE)
    if n == 0:
        return None
    sizes = np.bincount(comp.ravel())[1:].astype(float)
    if column is not None:
        # each piece's centre from its bounding box (a whole-volume centre_of_mass took 0.8 s on 400x320x145)
        centres = np.array(
            [
                [np.nonzero(comp[box] == k)[a].mean() + box[a].start for a in range(3)]
                for k, box in enumerate(ndimage.find_objects(comp), start=1)
            ]
        )
        world = centres @ affine[:2, :3].T + affine[:2, 3]
        sizes[np.hypot(*(world - column).T) > SACRUM_MAX_OFF_COLUMN_MM] = 0
    if not sizes.any():
        return None
    keep = np.isin(comp, np.flatnonzero((sizes > 0) & (sizes >= min_piece_share * sizes.max())) + 1)
    return float(z_of_voxels(affine, np.nonzero(keep)).max()), keep


def _pieces(lab: np.ndarray, affine: np.ndarray, min_piece_share: float) -> tuple[list[_Body], list[_Body]]:
    """``(pieces, specks)`` of the body values: every connected piece, split by size against the largest."""
    found = []
    objects = ndimage.find_objects(np.where(np.isin(lab, _BODY_VALUES), lab, 0).astype(np.int32))
    for v in _BODY_VALUES:
        if v > len(objects) or objects[v - 1] is None:
            continue
        box = objects[v - 1]
        comp, n = ndimage.label(lab[box] == v)
        for i in range(1, n + 1):
            idx = tuple(c + s.start for c, s in zip(np.nonzero(comp == i), box))
            found.append(_Body([idx], [v], z_of_voxels(affine, idx)))
    if not found:
        return [], []
    largest = max(b.z.size for b in found)
    return (
        [b for b in found if b.z.size >= min_piece_share * largest],
        [b for b in found if b.z.size < min_piece_share * largest],
    )


def _merge(pieces: list[_Body], half: float) -> list[_Body]:
    """Pieces of one body (sharing slices, or touching within one body's height) joined, caudal to cranial."""
    bodies: list[_Body] = []
    for p in sorted(pieces, key=lambda b: b.low):
        if bodies:
            last = bodies[-1]
            gap = p.low - last.high - 2 * half  # between the voxel faces
            height = max(p.high, last.high) - last.low + 2 * half
            if gap < 0 or (gap < GAP_RANGE_MM[0] and height <= HEIGHT_RANGE_MM[1]):
                bodies[-1] = _Body(last.voxels + p.voxels, last.values + p.values, np.concatenate([last.z, p.z]))
                continue
        bodies.append(p)
    return bodies


def _split_tall(body: _Body, half: float) -> list[_Body]:
    """A body taller than one can be is several given one name: cut at the narrowest slice of its middle half, and
    the parts again while one is still too tall."""
    height = body.high - body.low + 2 * half
    if height <= HEIGHT_RANGE_MM[1] or half <= 0:
        return [body]
    bins = np.floor((body.z - body.low) / (2 * half) + 0.5).astype(int)
    counts = np.bincount(bins)
    lo, hi = len(counts) // 4, max(len(counts) // 4 + 1, (3 * len(counts)) // 4)
    cut = lo + int(np.argmin(counts[lo:hi]))
    parts = []
    for upper, keep in enumerate((bins <= cut, bins > cut)):
        if not keep.any():
            continue
        if keep.all():
            return [body]
        offset = 0
        voxels = []
        for idx in body.voxels:
            n = idx[0].size
            sel = keep[offset : offset + n]
            voxels.append(tuple(a[sel] for a in idx))
            offset += n
        parts.append(_Body(voxels, body.values, body.z[keep], split=bool(upper) or body.split))
    return [piece for part in parts for piece in _split_tall(part, half)]


def _count(
    lab: np.ndarray,
    aff: np.ndarray,
    min_piece_share: float,
    sacrum: tuple[float, np.ndarray] | None,
    lowest: int | None = None,
) -> tuple[list[_Body], int, list[_Body], int, str, list[str]] | NamingResult:
    """The bodies to name, caudal to cranial, the number at or below the sacrum's top, the specks, the value of the
    first body to name (L5 = 13 from the sacrum), the anchor and facts for the record; or the record of why they
    cannot be named (status ``"kept"``, or ``"no vertebral bodies"``). ``sacrum``: :func:`_sacrum` of ``lab``;
    ``lowest``: the value of a stated lowest body in view (rule 6), or None."""
    half = 0.5 * float(np.abs(aff[2, :3]).max())  # half the z step of one voxel
    pieces, specks = _pieces(lab, aff, min_piece_share)
    if not pieces:
        return NamingResult("no vertebral bodies")
    bodies = [part for b in _merge(pieces, half) for part in _split_tall(b, half)]
    doubt = _doubtful_sacrum(bodies, sacrum, aff, half) if sacrum is not None else ""
    if sacrum is None or doubt:
        why = doubt or "no sacrum in the label map: nothing to count from"
        if lowest is None:
            return NamingResult("kept", reasons=[why], doubtful_sacrum=bool(doubt))
        stated = _from_stated(bodies, aff, lab.shape, half, lowest)
        if isinstance(stated, NamingResult):
            stated.reasons.append(why)
            stated.doubtful_sacrum = bool(doubt)
            return stated
        return bodies, 0, specks, lowest, _stated_anchor(lowest), [f"{why}; named from the stated lowest body"]
    top = sacrum[0]
    above = [b for b in bodies if 0.5 * (b.low + b.high) > top]
    if not above:
        return NamingResult("kept", reasons=["no vertebral body above the sacrum"])
    missing = _missing_body([top] + [b.high for b in above[:-1]], above, half, SACRUM_OVERLAP_MM, "the sacrum")
    if missing:
        return NamingResult("kept", reasons=[missing])
    facts = []
    if lowest is not None:
        first = _BODY_VALUES[-1]
        if lowest != first:
            return NamingResult(
                "kept",
                reasons=[
                    f"the stated lowest body in view, {_NAMES[lowest]}, disagrees with the count up from the sacrum, "
                    f"which makes the lowest body above it {_NAMES[first]}: one of the two is wrong, so nothing is "
                    "counted"
                ],
                anchor=_stated_anchor(lowest),
            )
        facts.append(f"the stated lowest body in view, {_NAMES[lowest]}, agrees with the count up from the sacrum")
    return above, len(bodies) - len(above), specks, _BODY_VALUES[-1], "sacrum", facts


def _stated_anchor(lowest: int) -> str:
    return f"stated lowest body {_NAMES[lowest]}"


def _from_stated(
    bodies: list[_Body], aff: np.ndarray, shape: tuple[int, ...], half: float, lowest: int
) -> None | NamingResult:
    """None when the bodies can be named up from the stated lowest body (rule 6), else the record of why not."""
    anchor = _stated_anchor(lowest)
    room = bodies[0].low - half - field_of_view_z(aff, shape)[0]
    if room > STATED_MAX_ROOM_BELOW_MM:
        return NamingResult(
            "kept",
            reasons=[
                f"{room:.0f} mm of the field of view lie below the lowest vertebral body found (at most "
                f"{STATED_MAX_ROOM_BELOW_MM:.0f} mm, about a disc, for the stated lowest body {_NAMES[lowest]}): the "
                "stated body may be there, missed by the network, so nothing is counted from the statement"
            ],
            anchor=anchor,
        )
    missing = _missing_body([b.high for b in bodies[:-1]], bodies[1:], half, GAP_RANGE_MM[0], "the stated lowest body")
    return NamingResult("kept", reasons=[missing], anchor=anchor) if missing else None


def _missing_body(edges: list[float], bodies: list[_Body], half: float, first_lowest: float, start: str) -> str:
    """Why a body may be missing between the ones counted up from ``start`` (a gap that is no disc), or ``""``.

    ``edges``: world z (mm) of the top of what lies below each of ``bodies``; the first gap may be as low as
    ``first_lowest`` (a network's sacrum may overlap L5), the others ``GAP_RANGE_MM[0]``. A body split from a taller
    piece has no gap of its own to check.
    """
    for k, (lower_top, b) in enumerate(zip(edges, bodies)):
        gap = b.low - lower_top - 2 * half
        lowest = first_lowest if k == 0 else GAP_RANGE_MM[0]
        if not b.split and not lowest <= gap <= GAP_RANGE_MM[1]:
            return (
                f"{gap:.0f} mm between the bodies counted up from {start} (a disc: {lowest:.0f} to "
                f"{GAP_RANGE_MM[1]:.0f} mm): a body may be missing"
            )
    return ""


def _largest_cross_section_mm2(z: np.ndarray, half: float, voxel_mm2: float) -> float:
    """Largest axial cross-section (mm^2) of the voxels whose world z (mm) is ``z``, slice by slice."""
    if not z.size:
        return 0.0
    slices = np.floor((z - z.min()) / (2 * half) + 0.5).astype(int) if half > 0 else np.zeros(z.size, int)
    return float(np.bincount(slices).max()) * voxel_mm2


def _doubtful_sacrum(bodies: list[_Body], sacrum: tuple[float, np.ndarray], aff: np.ndarray, half: float) -> str:
    """Why the sacrum found cannot anchor the count (rule 5 of the module), or ``""`` when it can."""
    sac_z = z_of_voxels(aff, np.nonzero(sacrum[1]))
    under = [b for b in bodies if b.high < sac_z.min()]
    if under:
        return (
            f"{len(under)} vertebral body piece(s) lie wholly below the sacrum found: no vertebral body lies below "
            "the sacrum, so the sacrum found is doubtful (a false sacrum inside or between bodies) and nothing is "
            "counted from it"
        )
    voxel_mm2 = abs(float(np.linalg.det(aff[:3, :3]))) / (2 * half) if half > 0 else 1.0
    body = float(np.median([_largest_cross_section_mm2(b.z, half, voxel_mm2) for b in bodies]))
    sac = _largest_cross_section_mm2(sac_z, half, voxel_mm2)
    if sac < SACRUM_MIN_AREA_SHARE * body:
        return (
            f"the sacrum found is at most {sac / 100:.1f} cm2 in cross-section, under {SACRUM_MIN_AREA_SHARE:.0%} "
            f"of a vertebral body's ({body / 100:.1f} cm2): too small to be the sacrum, so nothing is counted from it"
        )
    return ""


def _counted_value(k: int, first: int = _BODY_VALUES[-1]) -> int:
    """Label value of the ``k``-th body counted up from the one named ``first`` (k 0; L5 = 13 above the sacrum);
    0 beyond L1."""
    return first - k if first - k >= _BODY_VALUES[0] else 0


_SIXTH = "a sixth body above the sacrum (T12, or a sixth lumbar vertebra) is left unlabelled"
_ABOVE_L1 = "a body above the one counted as L1 (T12, or a sixth lumbar vertebra) is left unlabelled"


def _note_unlabelled(record: NamingResult, value: int) -> None:
    """Say once in ``record`` that a body above L1 was left unlabelled (``value`` 0)."""
    text = _ABOVE_L1 if record.stated else _SIXTH
    if value == 0 and text not in record.reasons:
        record.reasons.append(text)


def name_bodies_from_sacrum(
    label: np.ndarray, affine: np.ndarray, min_piece_share: float = 0.1, lowest_vertebra: str | None = None
) -> tuple[np.ndarray, NamingResult]:
    """Rename the lumbar vertebral bodies of a label map by counting up from the sacrum.

    Args:
        label: 3D integer label map (:mod:`scripts.labels`: muscles 1-8, bodies L1-L5 9-13, sacrum 14).
        affine: 4x4 voxel-to-world (RAS, mm) affine of ``label``.
        min_piece_share: a piece of a body value smaller than this share of the largest piece is a speck, left as
            it is.
        lowest_vertebra: the lowest lumbar body in the field of view as the user knows it (``"L1"`` ... ``"L5"``),
            used where the sacrum cannot anchor the count (rule 6 of the module); None: the sacrum only.

    Returns:
        ``(renamed copy of label, record)``. Muscles and the sacrum are never changed; bodies only get new body
        values (or 0 for a sixth body above the sacrum, and for specks of body labels when anything is renamed);
        slice-split bodies keep every voxel.

    Raises:
        ValueError: a label map that is not 3D, or an unknown ``lowest_vertebra``.

    Example:
        >>> import numpy as np
        >>> lab = np.zeros((4, 4, 80), np.uint8)
        >>> lab[..., 0:10] = 14  # sacrum, then two bodies the network called L4 and L3
        >>> lab[..., 14:40], lab[..., 46:72] = 12, 11
        >>> out, rec = name_bodies_from_sacrum(lab, np.eye(4))
        >>> rec.status, rec.renamed, int(out[0, 0, 20]), int(out[0, 0, 50])
        ('renamed', ['L4 -> L5', 'L3 -> L4'], 13, 12)
    """
    lab = np.asarray(label)
    if lab.ndim != 3:
        raise ValueError(f"the label map must be 3D, got shape {lab.shape}")
    aff = np.asarray(affine, dtype=np.float64)
    lowest = lowest_body_value(lowest_vertebra)
    count = _count(lab, aff, min_piece_share, _sacrum(lab, aff, min_piece_share, _column(lab, aff)), lowest)
    if isinstance(count, NamingResult):
        if count.status == "kept" and count.reasons and count.reasons[0].startswith("no sacrum"):
            count.reasons = ["no sacrum in the label map: nothing to count from; the network's names are kept"]
        elif count.status == "kept" and count.reasons:
            count.reasons[0] += "; the network's names are kept"
        return lab.copy(), count
    above, below, specks, first, anchor, facts = count
    out = lab.copy()
    record = NamingResult("confirmed", reasons=list(facts), anchor=anchor)
    for k, b in enumerate(above):
        new = _counted_value(k, first)
        old = sorted(set(b.values), key=b.values.index)
        for idx in b.voxels:
            out[idx] = new
        if old != [new]:
            was = "+".join(_NAMES[v] for v in old)
            record.renamed.append(f"{was} -> {_NAMES.get(new, 'unlabelled')}")
        _note_unlabelled(record, new)
    if below:
        record.reasons.append(f"{below} body label(s) at or below the top of the sacrum left as they are")
    if record.renamed:
        record.status = "renamed"
        # Why: the largest-component step would have removed a speck beside its own body; once the bodies are
        # renamed a speck may be the only voxels of its value left, and it would be taken for a body
        for b in specks:
            for idx in b.voxels:
                out[idx] = 0
        if specks:
            record.reasons.append(f"{len(specks)} speck(s) of body labels removed")
    return out, record


def count_bodies_from_sacrum(
    spine: np.ndarray, affine: np.ndarray, min_piece_share: float = 0.1, lowest_vertebra: str | None = None
) -> tuple[np.ndarray, NamingResult]:
    """Name a spine network's bodies by counting up from the sacrum: its map becomes a vertebral label map.

    Args:
        spine: 3D map of :data:`scripts.transforms.label_maps.spine_target.SPINE_CLASSES` (0 background,
            1 vertebral body of any level, 2 sacrum).
        affine: 4x4 voxel-to-world (RAS, mm) affine of ``spine``.
        min_piece_share: a body piece smaller than this share of the largest piece is a speck and removed.
        lowest_vertebra: the lowest lumbar body in the field of view as the user knows it (``"L1"`` ... ``"L5"``),
            used where the sacrum cannot anchor the count (rule 6 of the module); None: the sacrum only.

    Returns:
        ``(vertebral label map, record)``: uint8, 9-13 the bodies counted L5, L4, ... up from the sacrum (or up
        from the stated lowest body), 14 the sacrum that anchored the count, 0 elsewhere (also bodies above L1 and
        specks). When the bodies cannot be counted (no anchor, a gap that is not a disc) they are left out (0: a
        body without a name gives no level) and only a sacrum that can be one is written; the record (status
        ``"not named"``) says why.

    Raises:
        ValueError: ``spine`` is not 3D or holds values other than 0, 1, 2, or an unknown ``lowest_vertebra``.
    """
    lowest = lowest_body_value(lowest_vertebra)
    sp = np.asarray(spine)
    if sp.ndim != 3:
        raise ValueError(f"the spine map must be 3D, got shape {sp.shape}")
    bad = sorted(set(present_values(sp)) - {0, 1, 2})
    if bad:
        raise ValueError(f"the spine map holds values {bad}; expected 0 (background), 1 (body), 2 (sacrum)")
    lab = np.zeros(sp.shape, np.uint8)
    lab[sp == 2] = SACRUM_VALUE
    lab[sp == 1] = _BODY_VALUES[0]  # one value for every body: a placeholder, never written out
    aff = np.asarray(affine, dtype=np.float64)
    # only the sacrum that anchors the count is written: a piece of the class far from the column or a speck is
    # not the sacrum, and the level rule (scripts.quantification.levels) would take its extent for the sacrum's
    sacrum = _sacrum(lab, aff, min_piece_share, _column(lab, aff))
    out = np.zeros(sp.shape, np.uint8)
    if sacrum is not None:
        out[sacrum[1]] = SACRUM_VALUE
    count = _count(lab, aff, min_piece_share, sacrum, lowest)
    if (isinstance(count, NamingResult) and count.doubtful_sacrum) or (
        not isinstance(count, NamingResult) and count[4] != "sacrum"
    ):
        out[:] = 0  # not the sacrum: written as one, its extent would stand for the sacrum's in the level rule
    dropped = int((sp == 2).sum() - (out == SACRUM_VALUE).sum())
    if isinstance(count, NamingResult):
        if count.status == "kept":
            count.status = "not named"
            count.reasons[0] += ": the vertebral bodies found are not named, and no levels are given"
        if dropped:
            count.reasons.append(f"{dropped} voxel(s) of the sacrum class away from the column or in specks left out")
        return out, count
    above, below, specks, first, anchor, facts = count
    record = NamingResult("counted", reasons=list(facts), anchor=anchor)
    for k, b in enumerate(above):
        new = _counted_value(k, first)
        for idx in b.voxels:
            out[idx] = new
        _note_unlabelled(record, new)
    if below:
        record.reasons.append(f"{below} body piece(s) at or below the top of the sacrum left out")
    if specks:
        record.reasons.append(f"{len(specks)} speck(s) of body labels left out")
    if dropped:
        record.reasons.append(f"{dropped} voxel(s) of the sacrum class away from the column or in specks left out")
    return out, record
