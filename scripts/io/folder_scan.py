"""Subjects from a folder of NIfTI files: subfolders are subjects, top-level files are grouped by name prefix."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scripts.io.entry import resolve_roles, subject_entries
from scripts.io.roles import IMAGE_ROLES, recognise_role, strip_nifti_suffix

__all__ = ["discover_folder", "files_under"]

logger = logging.getLogger(__name__)


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def files_under(root: Path) -> list[Path]:
    """All visible files under ``root`` (hidden files and folders such as ``.tmp`` writes are skipped), sorted.

    Symbolic links to folders are followed (a cohort assembled from links to the scanner's export is common); a
    folder reached twice through links (a loop) is read once.
    """
    found: list[Path] = []
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(folder) / f for f in files if not f.startswith(".") and (Path(folder) / f).is_file())
    return sorted(p for p in found if not _is_hidden(p, root))


def _unrecognised_folder_error(root: Path, files: Sequence[Path]) -> ValueError:
    nifti = [p for p in files if strip_nifti_suffix(p.name) is not None]
    other = [p for p in files if strip_nifti_suffix(p.name) is None]

    def listing(paths: Sequence[Path]) -> str:
        names = [str(p.relative_to(root)) for p in paths[:10]]
        return ", ".join(names) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")

    found = f"{len(nifti)} NIfTI file(s)" + (f" ({listing(nifti)})" if nifti else "")
    found += f" and {len(other)} other file(s)" + (f" ({listing(other)})" if other else "")
    dicom_hint = ""
    if any(p.suffix.lower() in (".dcm", ".ima") or p.suffix == "" for p in other):
        dicom_hint = (
            " DICOM files are read only from a folder without NIfTI files: give the DICOM study its own "
            "folder (see docs/guides/dicom.md)."
        )
    return ValueError(
        f"no Dixon images recognised in {root}: found {found}. Name files with a role token before .nii/.nii.gz "
        "(P01_W.nii.gz, P01_F.nii.gz, P01_IP.nii.gz, P01_OP.nii.gz, P01_FF.nii.gz; or one subfolder per subject "
        "holding water.nii.gz, fat.nii.gz, ...), or pass mapping={'water': '*_W.nii.gz', 'fat': '*_F.nii.gz', "
        "'inphase': '*_IP.nii.gz'} (glob patterns relative to dataset_dir, a dict or a JSON file)." + dicom_hint
    )


def discover_folder(root: Path) -> list[dict[str, Any]]:
    """Subfolders are subjects; NIfTI files at the top level are grouped by their subject prefix.

    Roles come from :func:`scripts.io.roles.recognise_role`; NIfTI files without a role are ignored (logged).

    Raises:
        ValueError: nothing recognisable (the message lists what was found and how to give a mapping), a subject
            found both as a folder and as files, two files for one image role, no subject with a usable set.
    """
    files = files_under(root)
    by_subject: dict[str, dict[str, list[Path]]] = {}
    where: dict[str, str] = {}
    ignored: list[str] = []
    for path in files:
        rel = path.relative_to(root)
        if strip_nifti_suffix(path.name) is None:
            continue
        role, prefix = recognise_role(path.name)
        if role is None:
            ignored.append(str(rel))
            continue
        if len(rel.parts) > 1:
            subject, origin = rel.parts[0], f"folder {root / rel.parts[0]}"
        else:
            subject, origin = (prefix or root.name), f"files {prefix or root.name}* in {root}"
        if subject in where and where[subject] != origin:
            raise ValueError(f"subject {subject!r} is found twice: as {where[subject]} and as {origin}")
        where[subject] = origin
        by_subject.setdefault(subject, {}).setdefault(role, []).append(path)
    if ignored:
        logger.info("%s: %d NIfTI file(s) without a Dixon role ignored: %s", root, len(ignored), ", ".join(ignored))
    with_images = {s: r for s, r in by_subject.items() if any(k in IMAGE_ROLES for k in r)}
    if not with_images:
        raise _unrecognised_folder_error(root, files)
    found = [
        (subject, resolve_roles(subject, with_images[subject], where[subject]), where[subject])
        for subject in sorted(with_images)
    ]
    return subject_entries(found, root)
