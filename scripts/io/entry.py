"""A subject's discovery entry: its Dixon image paths per role, the network input ``image`` and the ``dixon_set``.

Every source of subjects (a folder, glob patterns, a datalist, a DICOM study) ends here, so an entry always has
the same keys: ``subject``; ``water``, ``fat``, ``inphase``, ``opposed``, ``ff``, ``label`` (path or ``None``);
``image`` (the in-phase path, or ``[water_path, fat_path]``, two channels the pipeline sums; docs/design.md) and
``dixon_set`` (:func:`scripts.io.roles.dixon_set_of`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.io.roles import IMAGE_ROLES, ROLE_WORDS, dixon_set_of

__all__ = ["make_entry", "resolve_roles", "subject_entries"]

logger = logging.getLogger(__name__)


def make_entry(subject: str, paths: Mapping[str, str | None], where: str) -> dict[str, Any]:
    """Build a discovery entry, or raise ``ValueError`` when the files form no usable Dixon set.

    Args:
        subject: the subject id.
        paths: role -> path (roles absent or ``None`` are missing).
        where: where the files were found, for the message.
    """
    entry: dict[str, Any] = {"subject": subject}
    for role in (*IMAGE_ROLES, "label"):
        value = paths.get(role)
        entry[role] = None if value is None else str(value)
    present = [r for r in IMAGE_ROLES if entry[r] is not None]
    dixon_set = dixon_set_of(present)
    if dixon_set is None:
        found = ", ".join(f"{ROLE_WORDS[r]} ({Path(entry[r]).name})" for r in present) or "no image"
        raise ValueError(
            f"subject {subject!r} ({where}) has no usable Dixon set: found {found}; need water + fat, in-phase + "
            "opposed-phase, or an FF map with an in-phase image"
        )
    entry["image"] = entry["inphase"] if entry["inphase"] is not None else [entry["water"], entry["fat"]]
    entry["dixon_set"] = dixon_set
    return entry


def resolve_roles(subject: str, roles: Mapping[str, list[Path]], where: str) -> dict[str, str | None]:
    """One file per role; two files for an image role raise, two label files leave the label out with a warning."""
    out: dict[str, str | None] = {}
    for role, files in roles.items():
        if len(files) == 1:
            out[role] = str(files[0])
            continue
        names = " and ".join(f"'{p}'" for p in files)
        if role == "label":
            # labels are optional (evaluation only): an unclear label must not block FF measurement
            warnings.warn(
                f"subject {subject!r} ({where}): several label files ({names}); no label is used",
                RuntimeWarning,
                stacklevel=3,
            )
            out[role] = None
            continue
        raise ValueError(
            f"ambiguous {ROLE_WORDS[role]} image for subject {subject!r} ({where}): {names} both match; rename one "
            "or give a mapping of glob patterns per role, e.g. mapping={'water': '*_W.nii.gz', 'fat': '*_F.nii.gz'}"
        )
    return out


def subject_entries(found: Sequence[tuple[str, Mapping[str, str | None], str]], root: Path) -> list[dict[str, Any]]:
    """Entries of the subjects found in a folder; a subject whose files form no usable Dixon set is kept as an
    entry without ``image`` so that a cohort run records it as that subject's failure (the loader names the files
    and the sets it needs) while the others are processed. Only a folder where no subject is usable is refused.

    Args:
        found: ``(subject, role -> path, where)`` per subject.
        root: the folder searched, for the message.
    """
    entries, unusable = [], []
    for subject, paths, where in found:
        try:
            entries.append(make_entry(subject, paths, where))
        except ValueError as err:
            unusable.append(str(err))
            entries.append({"subject": subject, **{r: (None if v is None else str(v)) for r, v in paths.items()}})
    if unusable and len(unusable) == len(found):
        raise ValueError(f"{root}: no subject has a usable Dixon set: " + "; ".join(unusable))
    for message in unusable:
        logger.warning("%s (the subject will fail alone; the others are processed)", message)
    return entries
