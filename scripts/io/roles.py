"""The Dixon image roles, the sets they form, and the role a file name or a datalist key stands for.

Roles: ``water``, ``fat``, ``inphase``, ``opposed``, ``ff`` (a vendor FF or PDFF map), and ``label`` (optional,
for evaluation). Dixon sets (docs/design.md) and the ``dixon_set`` names used here:

- ``"water_fat"``: water + fat magnitude images (the canonical set); FF = F / (F + W).
- ``"inphase_opposed"``: 2-point Dixon in-phase + opposed-phase; water and fat are derived under the
  water-dominant assumption (valid where FF < 50 %, i.e. muscle).
- ``"ff_map"``: a vendor FF or PDFF map, with the in-phase image as network input.
- ``+inphase`` is appended when an in-phase image is there too (``"water_fat+inphase"``, ``"ff_map+inphase"``):
  the network then reads the in-phase image, and water + fat + in-phase allow magnitude discrimination.
  ``"inphase_opposed"`` contains the in-phase image by definition and gets no suffix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "IMAGE_ROLES",
    "MAGNITUDE_ROLES",
    "ROLE_WORDS",
    "KEY_ALIASES",
    "NIFTI_SUFFIXES",
    "dixon_set_of",
    "recognise_role",
    "role_label",
    "strip_nifti_suffix",
]

#: the image roles of a Dixon entry, in the order they are reported.
IMAGE_ROLES: tuple[str, ...] = ("water", "fat", "inphase", "opposed", "ff")
#: roles that hold magnitude images (negative values are checked; the FF map is not a magnitude image).
MAGNITUDE_ROLES: tuple[str, ...] = ("water", "fat", "inphase", "opposed")
#: role -> the words messages use for it.
ROLE_WORDS: dict[str, str] = {
    "water": "water",
    "fat": "fat",
    "inphase": "in-phase",
    "opposed": "opposed-phase",
    "ff": "FF map",
    "label": "label",
}
#: the file-name endings of NIfTI files.
NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
#: datalist / mapping key (lower case) -> role.
KEY_ALIASES: dict[str, str] = {
    "water": "water",
    "w": "water",
    "fat": "fat",
    "f": "fat",
    "inphase": "inphase",
    "in_phase": "inphase",
    "ip": "inphase",
    "opposed": "opposed",
    "opposed_phase": "opposed",
    "out_phase": "opposed",
    "op": "opposed",
    "opp": "opposed",
    "ff": "ff",
    "ff_map": "ff",
    "fat_fraction": "ff",
    "fatfraction": "ff",
    "pdff": "ff",
    "label": "label",
    "labels": "label",
    "seg": "label",
    "mask": "label",
}

# File-name tokens per role (case-insensitive). A token must stand between separators (``_ - .`` or a space) or
# at the start/end of the name, so that "w" matches "P01_W" but not "P01W" or "sweat". Multi-word tokens accept
# any separator or none ("in_phase", "in-phase", "inphase").
_SEP = r"[_\-. ]?"
_ROLE_TOKENS: dict[str, str] = {
    "water": rf"dixon{_SEP}w|water|wat|w",
    "fat": rf"dixon{_SEP}f|fat|f",
    "inphase": rf"in{_SEP}phase|inp|ip|in",
    "opposed": rf"opposed{_SEP}phase|opp{_SEP}phase|out{_SEP}of{_SEP}phase|out{_SEP}phase|opposed|opp|oop|op",
    "ff": rf"fat{_SEP}fraction|fat{_SEP}frac|pdff|ff",
    "label": r"labels?|segmentation|dseg|seg|masks?",
}
# Files with one of these tokens are ground truth or derived copies (the phantom's "ff_true"), not inputs.
_IGNORE_TOKENS = r"true|truth|gt|ground{_SEP}truth".replace("{_SEP}", _SEP)
# Words that often sit beside the role token and say nothing about the subject ("P01_dixon_W", "P01_ff_map").
_FILLER_TOKENS = r"dixon|map|image|img|mag|magnitude"


def _token_regex(tokens: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9])(?:{tokens})(?![a-z0-9])", re.IGNORECASE)


_ROLE_REGEX: dict[str, re.Pattern[str]] = {role: _token_regex(tok) for role, tok in _ROLE_TOKENS.items()}
_IGNORE_REGEX = _token_regex(_IGNORE_TOKENS)
_FILLER_REGEX = _token_regex(_FILLER_TOKENS)


def role_label(role: str, path: str | os.PathLike[str]) -> str:
    """How messages name one image: ``"water image '/data/P01_W.nii.gz'"``."""
    return f"{ROLE_WORDS.get(role, role)} image '{path}'"


def dixon_set_of(roles: Iterable[str]) -> str | None:
    """Name the Dixon set that a collection of image roles forms (see the module docstring).

    Args:
        roles: role names present, e.g. ``{"water", "fat", "inphase"}`` (``"label"`` is ignored).

    Returns:
        ``"water_fat"``, ``"water_fat+inphase"``, ``"inphase_opposed"``, ``"ff_map+inphase"`` or ``None`` when the
        roles give no FF source together with a network input (e.g. water alone, or an FF map with water only).
    """
    have = set(roles)
    ip = "inphase" in have
    if {"water", "fat"} <= have:
        return "water_fat+inphase" if ip else "water_fat"
    if {"inphase", "opposed"} <= have:
        return "inphase_opposed"
    if "ff" in have and ip:
        return "ff_map+inphase"
    return None


def strip_nifti_suffix(name: str) -> str | None:
    """``name`` without ``.nii``/``.nii.gz`` (any case), or ``None`` when it is not a NIfTI file name."""
    low = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _tidy_residue(text: str) -> str:
    """Collapse separator runs left by cutting a token out, and trim separators at both ends."""
    text = re.sub(r"([_\-. ])[_\-. ]+", r"\1", text)
    return text.strip("_-. ")


def recognise_role(file_name: str) -> tuple[str | None, str]:
    """The Dixon role a file name stands for, from the tokens before ``.nii``/``.nii.gz`` (case-insensitive).

    Tokens (each between separators ``_ - .``, a space or the ends of the name): water ``water|wat|w|dixon_w``;
    fat ``fat|f|dixon_f``; in-phase ``inphase|in_phase|ip|in|inp``; opposed-phase
    ``opposed|opp|op|oop|out_phase|outphase|out_of_phase|opposed_phase``; FF map
    ``ff|fatfraction|fat_fraction|fat_frac|pdff``; label ``label|labels|seg|segmentation|dseg|mask``. The longest
    token wins where they overlap (``fat_fraction`` is an FF map, not fat). When tokens of several roles stand
    apart, the one nearest the end of the name is the role and the others belong to the subject name
    (``f_trunc_W.nii.gz`` -> water of subject ``f_trunc``), as role tokens are suffixes by convention. A name with
    a ground-truth token (``true|truth|gt|ground_truth``, e.g. the phantom's ``ff_true``) is not an input and gets
    no role.

    Args:
        file_name: a file name (a path is reduced to its name).

    Returns:
        ``(role or None, subject prefix)``: the prefix is the name without the suffix, the role token and filler
        words (``dixon``, ``map``, ``image``, ``img``, ``mag``, ``magnitude``); ``P01_W.nii.gz`` -> ``("water",
        "P01")``. Not NIfTI or not recognised: ``(None, name without suffix)``.

    """
    name = Path(file_name).name
    stem = strip_nifti_suffix(name)
    if stem is None:
        return None, name
    if _IGNORE_REGEX.search(stem):
        return None, stem
    hits = [
        (m.end() - m.start(), m.start(), m.end(), role) for role, rx in _ROLE_REGEX.items() for m in rx.finditer(stem)
    ]
    if not hits:
        return None, stem
    # overlapping tokens: the longest wins (fat_fraction over fat); of the tokens left, the last one is the role
    hits.sort(key=lambda h: (-h[0], h[1]))
    kept: list[tuple[int, int, int, str]] = []
    for hit in hits:
        if all(hit[2] <= k[1] or hit[1] >= k[2] for k in kept):
            kept.append(hit)
    _, start, end, role = max(kept, key=lambda h: h[2])
    residue = _tidy_residue(stem[:start] + "_" + stem[end:])
    without_filler = _tidy_residue(_FILLER_REGEX.sub("_", residue))
    return role, without_filler if without_filler else residue
