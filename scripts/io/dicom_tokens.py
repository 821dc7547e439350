"""The Dixon role a DICOM series names in its ImageType values or its SeriesDescription, by vendor convention.

Vendor conventions (see docs/guides/dicom.md for sources and caveats):

- Siemens (syngo Dixon, e.g. VIBE Dixon): ImageType ``...\\DIXON\\WATER`` (or ``W``), ``FAT`` (``F``),
  ``IN_PHASE``, ``OPP_PHASE``; SeriesDescription ending ``_W``, ``_F``, ``_in``, ``_opp``.
- GE (LAVA-Flex, IDEAL, IDEAL IQ): SeriesDescription prefixes ``WATER:``, ``FAT:``, ``InPhase:``, ``OutPhase:``,
  and ``FatFrac:`` for the IDEAL IQ fat-fraction map; ImageType is not role-specific.
- Philips (mDIXON): ImageType third/fourth values ``W``, ``F``, ``IP``, ``OP``, ``FF``; descriptions such as
  ``mDIXON W``; several image types may share one series (split by ImageType when the folder is scanned).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "IMAGE_TYPE_TOKENS",
    "DESCRIPTION_TOKENS",
    "VALUE_SEPARATOR",
    "description_tokens",
    "role_from_description",
    "role_from_image_type",
]

#: ImageType values (upper case, any position after the first two) that name a Dixon role.
IMAGE_TYPE_TOKENS: dict[str, frozenset[str]] = {
    "water": frozenset({"W", "WATER"}),
    "fat": frozenset({"F", "FAT"}),
    "inphase": frozenset({"IN_PHASE", "IP", "INPHASE", "IN"}),
    "opposed": frozenset({"OPP_PHASE", "OP", "OUT_PHASE", "OPPOSED", "OUTPHASE", "OOP"}),
    "ff": frozenset({"FF", "FAT_FRACTION", "FATFRACTION", "FATFRAC", "PDFF"}),
}
#: SeriesDescription tokens (lower case, after the multi-word phrases below are joined) that name a Dixon role.
DESCRIPTION_TOKENS: dict[str, frozenset[str]] = {
    "water": frozenset({"w", "water", "wat"}),
    "fat": frozenset({"f", "fat"}),
    "inphase": frozenset({"inphase", "in", "ip"}),
    "opposed": frozenset({"opposed", "opp", "op", "outphase", "oop", "out"}),
    "ff": frozenset({"ff", "fatfrac", "pdff"}),
}
#: the DICOM value separator of multi-valued attributes (f-string expressions cannot hold a backslash before 3.12).
VALUE_SEPARATOR = "\\"

# a description with one of these tokens is another contrast that merely mentions fat or water ("T2 FAT SAT",
# "STIR", "water excitation"): it gets no role from its description
_EXCLUDE_TOKENS: frozenset[str] = frozenset(
    {
        "sat",
        "fs",
        "fatsat",
        "suppressed",
        "suppression",
        "stir",
        "spair",
        "spir",
        "we",
        "excitation",
        "localizer",
        "localiser",
        "scout",
        "survey",
    }
)
# multi-word phrases joined into one token first, so that "fat fraction" is an FF map and not fat, and "in phase"
# is one token ("FatFrac: ...", "InPhase: ...", "Out of phase", "opp-phase", "fat_fraction" all normalise)
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"fat[\s_\-]*frac(?:tion)?|fat[\s_\-]*percent(?:age)?", re.IGNORECASE), " fatfrac "),
    (re.compile(r"in[\s_\-]*phase", re.IGNORECASE), " inphase "),
    (re.compile(r"(?:out[\s_\-]*(?:of[\s_\-]*)?|opp(?:osed)?[\s_\-]*)phase", re.IGNORECASE), " outphase "),
)
# the first two ImageType values are ORIGINAL/DERIVED and PRIMARY/SECONDARY: never a role
_IMAGE_TYPE_SKIP = 2


def role_from_image_type(image_type: Sequence[str]) -> tuple[str | None, str]:
    """The one role named by ImageType values after the first two, or None (none or several).

    Returns:
        ``(role or None, reason)``; the reason is empty when no value names a role.
    """
    values = [v.upper() for v in image_type[_IMAGE_TYPE_SKIP:]]
    roles = sorted({role for role, tokens in IMAGE_TYPE_TOKENS.items() if any(v in tokens for v in values)})
    text = VALUE_SEPARATOR.join(image_type)
    if len(roles) == 1:
        return roles[0], f"ImageType {text}"
    if len(roles) > 1:
        return None, f"ImageType {text} names several roles ({', '.join(roles)})"
    return None, ""


def description_tokens(description: str) -> list[str]:
    """Lower-case tokens of a SeriesDescription, with multi-word role phrases joined (``"in phase"`` -> ``inphase``).

    Args:
        description: the SeriesDescription text, e.g. ``"t1_vibe_dixon_tra_opp"`` or ``"WATER: Ax LAVA-Flex"``.

    Returns:
        Tokens split at anything that is not a letter or digit, e.g. ``["water", "ax", "lava", "flex"]``.
    """
    text = description
    for rx, repl in _PHRASES:
        text = rx.sub(repl, text)
    # camel case ("InPhase", "FatFrac") was handled by the phrases; split the rest at non-alphanumerics
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def role_from_description(description: str) -> tuple[str | None, str]:
    """The one role a SeriesDescription names, or None (none, several, or another contrast such as fat-sat).

    Returns:
        ``(role or None, reason)``; the reason is empty when no token names a role.
    """
    tokens = description_tokens(description)
    if _EXCLUDE_TOKENS.intersection(tokens):
        return None, f"SeriesDescription {description!r} names another contrast"
    roles = sorted({role for role, toks in DESCRIPTION_TOKENS.items() if any(t in toks for t in tokens)})
    if len(roles) == 1:
        return roles[0], f"SeriesDescription {description!r}"
    if len(roles) > 1:
        return None, f"SeriesDescription {description!r} names several roles ({', '.join(roles)})"
    return None, ""
