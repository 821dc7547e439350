"""Find, load and validate a user's Dixon images, and compute the fat fraction (FF) from whatever set they have.

Three steps, each usable on its own:

1. :func:`discover_subjects` turns a MONAI datalist, a folder of NIfTI files, or a folder plus explicit glob
   patterns into one entry per subject: the path of each Dixon image (``water``, ``fat``, ``inphase``,
   ``opposed``, ``ff``), an optional ``label``, the network input ``image`` and the ``dixon_set``.
2. :func:`load_dixon` reads an entry, checks every file (present, NIfTI, 3D, finite, non-zero, magnitude-like),
   checks that all images share one voxel grid (:func:`scripts.grid.check_same_grid`), that the
   slices
   are axial and that the field of view is large enough, and returns a :class:`DixonScan`. Every refusal is a
   :class:`DixonInputError` whose message names the file and the problem.
3. :func:`compute_ff` picks the FF method the images allow (``auto``: water/fat, else in-phase/opposed-phase,
   else a vendor FF map) and returns an :class:`FFResult` with the FF map (fraction, NaN = excluded) on the native
   Dixon grid and the provenance that every output row carries (docs/design.md).

Dixon sets (docs/design.md) and the ``dixon_set`` names used here:

- ``"water_fat"``: water + fat magnitude images (the canonical set); FF = F / (F + W).
- ``"inphase_opposed"``: 2-point Dixon in-phase + opposed-phase; water and fat are derived under the
  water-dominant assumption (valid where FF < 50 %, i.e. muscle).
- ``"ff_map"``: a vendor FF or PDFF map, with the in-phase image as network input.
- ``+inphase`` is appended when an in-phase image is there too (``"water_fat+inphase"``, ``"ff_map+inphase"``):
  the network then reads the in-phase image, and water + fat + in-phase allow magnitude discrimination.
  ``"inphase_opposed"`` contains the in-phase image by definition and gets no suffix.

Network input (docs/design.md, as in the paper): the in-phase image, or the sum water + fat when there is no in-phase
image; an entry's ``image`` is the in-phase path or ``[water_path, fat_path]`` (two channels the pipeline sums).

References:
    - Dixon WT. Simple proton spectroscopic imaging. Radiology 1984;153:189-194.
    - Liu CY et al. Fat quantification with IDEAL gradient echo imaging: correction of bias from T1 and noise.
      Magn Reson Med 2007;58:354-364 (magnitude discrimination).
    - The 2026 BMC Medical Imaging paper this bundle reproduces (doi 10.1186/s12880-026-02329-9).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from scripts.grid import check_same_grid
from scripts.quantification.ff_scale import detect_ff_scale, normalise_ff_map
from scripts.quantification.formulas import (
    denominator_threshold,
    exclude_out_of_range,
    fat_fraction_from_water_fat,
    fat_fraction_magnitude_discrimination,
    water_fat_from_in_opposed,
)

__all__ = [
    "inference_datalist",
    "IMAGE_ROLES",
    "MAGNITUDE_ROLES",
    "FF_METHODS",
    "DixonInputError",
    "DixonScan",
    "FFResult",
    "NETWORK_CHANNELS",
    "num_network_channels",
    "dixon_set_of",
    "recognise_role",
    "discover_subjects",
    "load_dixon",
    "compute_ff",
]

logger = logging.getLogger(__name__)

#: the image roles of a Dixon entry, in the order they are reported.
IMAGE_ROLES: tuple[str, ...] = ("water", "fat", "inphase", "opposed", "ff")
#: roles that hold magnitude images (negative values are checked; the FF map is not a magnitude image).
MAGNITUDE_ROLES: tuple[str, ...] = ("water", "fat", "inphase", "opposed")
#: ``compute_ff`` method names (besides ``"auto"``) -> the ``ff_method`` written to the provenance.
FF_METHODS: dict[str, str] = {
    "water_fat": "water_fat",
    "inphase_opposed": "inphase_opposed_water_dominant",
    "inphase_opposed_water_dominant": "inphase_opposed_water_dominant",
    "vendor_map": "vendor_map",
    "magnitude_discrimination": "magnitude_discrimination",
}

_ROLE_WORDS: dict[str, str] = {
    "water": "water",
    "fat": "fat",
    "inphase": "in-phase",
    "opposed": "opposed-phase",
    "ff": "FF map",
    "label": "label",
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

_NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
_DATALIST_SECTIONS: tuple[str, ...] = ("training", "validation", "testing")
# datalist / mapping key aliases -> role
_KEY_ALIASES: dict[str, str] = {
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

_SLICE_AXIS_ANISOTROPY = 1.2  # an axis >= 1.2x thicker than the others is the slice axis of a 2D acquisition
_MIN_MASK_VOXELS = 20


def _token_regex(tokens: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9])(?:{tokens})(?![a-z0-9])", re.IGNORECASE)


_ROLE_REGEX: dict[str, re.Pattern[str]] = {role: _token_regex(tok) for role, tok in _ROLE_TOKENS.items()}
_IGNORE_REGEX = _token_regex(_IGNORE_TOKENS)
_FILLER_REGEX = _token_regex(_FILLER_TOKENS)


class DixonInputError(ValueError):
    """A Dixon input that cannot be used as given; the message names the file (or subject) and the problem.

    Attributes:
        file: the offending file, when one file is to blame.
    """

    # str(error) must stay the message alone, so only the message goes to Exception's args
    def __init__(self, message: str, file: str | os.PathLike[str] | None = None) -> None:  # noqa: B042
        super().__init__(message)
        self.file = None if file is None else str(file)


# ----------------------------------------------------------------------------------------------------------------
# Discovery
# ----------------------------------------------------------------------------------------------------------------


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


def _strip_nifti_suffix(name: str) -> str | None:
    low = name.lower()
    for suffix in _NIFTI_SUFFIXES:
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
    stem = _strip_nifti_suffix(name)
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


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _files_under(root: Path) -> list[Path]:
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


def _folder_entries(found: Sequence[tuple[str, Mapping[str, str | None], str]], root: Path) -> list[dict[str, Any]]:
    """Entries of the subjects found in a folder; a subject whose files form no usable Dixon set is kept as an
    entry without ``image`` so that a cohort run records it as that subject's failure (the loader names the files
    and the sets it needs) while the others are processed. Only a folder where no subject is usable is refused.
    """
    entries, unusable = [], []
    for subject, paths, where in found:
        try:
            entries.append(_make_entry(subject, paths, where))
        except ValueError as err:
            unusable.append(str(err))
            entries.append({"subject": subject, **{r: (None if v is None else str(v)) for r, v in paths.items()}})
    if unusable and len(unusable) == len(found):
        raise ValueError(f"{root}: no subject has a usable Dixon set: " + "; ".join(unusable))
    for message in unusable:
        logger.warning("%s (the subject will fail alone; the others are processed)", message)
    return entries


def _make_entry(subject: str, paths: Mapping[str, str | None], where: str) -> dict[str, Any]:
    """Build a discovery entry, or raise ``ValueError`` when the files form no usable Dixon set."""
    entry: dict[str, Any] = {"subject": subject}
    for role in (*IMAGE_ROLES, "label"):
        value = paths.get(role)
        entry[role] = None if value is None else str(value)
    present = [r for r in IMAGE_ROLES if entry[r] is not None]
    dixon_set = dixon_set_of(present)
    if dixon_set is None:
        found = ", ".join(f"{_ROLE_WORDS[r]} ({Path(entry[r]).name})" for r in present) or "no image"
        raise ValueError(
            f"subject {subject!r} ({where}) has no usable Dixon set: found {found}; need water + fat, in-phase + "
            "opposed-phase, or an FF map with an in-phase image"
        )
    entry["image"] = entry["inphase"] if entry["inphase"] is not None else [entry["water"], entry["fat"]]
    entry["dixon_set"] = dixon_set
    return entry


def _assign(subject_files: dict[str, dict[str, list[Path]]], subject: str, role: str, path: Path) -> None:
    subject_files.setdefault(subject, {}).setdefault(role, []).append(path)


def _resolve_roles(subject: str, roles: Mapping[str, list[Path]], where: str) -> dict[str, str | None]:
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
            f"ambiguous {_ROLE_WORDS[role]} image for subject {subject!r} ({where}): {names} both match; rename one "
            "or give a mapping of glob patterns per role, e.g. mapping={'water': '*_W.nii.gz', 'fat': '*_F.nii.gz'}"
        )
    return out


def _unrecognised_folder_error(root: Path, files: Sequence[Path]) -> ValueError:
    nifti = [p for p in files if _strip_nifti_suffix(p.name) is not None]
    other = [p for p in files if _strip_nifti_suffix(p.name) is None]

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


def _discover_folder(root: Path) -> list[dict[str, Any]]:
    """Subfolders are subjects; NIfTI files at the top level are grouped by their subject prefix."""
    files = _files_under(root)
    by_subject: dict[str, dict[str, list[Path]]] = {}
    where: dict[str, str] = {}
    ignored: list[str] = []
    for path in files:
        rel = path.relative_to(root)
        if _strip_nifti_suffix(path.name) is None:
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
        _assign(by_subject, subject, role, path)
    if ignored:
        logger.info("%s: %d NIfTI file(s) without a Dixon role ignored: %s", root, len(ignored), ", ".join(ignored))
    with_images = {s: r for s, r in by_subject.items() if any(k in IMAGE_ROLES for k in r)}
    if not with_images:
        raise _unrecognised_folder_error(root, files)
    found = [
        (subject, _resolve_roles(subject, with_images[subject], where[subject]), where[subject])
        for subject in sorted(with_images)
    ]
    return _folder_entries(found, root)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a glob (``*``, ``?``, ``[...]``, ``**``) into a case-insensitive regex.

    The wildcards of the file-name part become capture groups: their text identifies the subject.
    """
    name_start = pattern.rfind("/") + 1
    out: list[str] = []
    i = 0
    while i < len(pattern):
        capture = i >= name_start
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        c = pattern[i]
        if c == "*":
            out.append("([^/]*)" if capture else "[^/]*")
        elif c == "?":
            out.append("([^/])" if capture else "[^/]")
        elif c == "[" and "]" in pattern[i + 2 :]:
            j = pattern.index("]", i + 2)
            body = pattern[i + 1 : j]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.IGNORECASE)


def _load_mapping(mapping: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, list[str]]:
    if isinstance(mapping, (str, os.PathLike)):
        path = Path(mapping)
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read the mapping file {path}: {err}") from err
        if not isinstance(raw, dict):
            raise ValueError(f"mapping file {path} must hold a JSON object {{role: glob}}, got {type(raw).__name__}")
    else:
        raw = dict(mapping)
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        role = _KEY_ALIASES.get(str(key).lower())
        if role is None:
            raise ValueError(f"unknown role {key!r} in mapping; expected one of {sorted(set(_KEY_ALIASES))}")
        patterns = [value] if isinstance(value, str) else list(value)
        if not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise ValueError(f"mapping[{key!r}] must be a glob pattern or a list of them, got {value!r}")
        out.setdefault(role, []).extend(patterns)
    if not out:
        raise ValueError("mapping is empty; give at least {'water': ..., 'fat': ...} or {'inphase': ..., ...}")
    return out


def _discover_mapping(root: Path, mapping: Mapping[str, Any] | str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Group files matched by per-role glob patterns into subjects (see :func:`discover_subjects`)."""
    patterns = _load_mapping(mapping)
    files = _files_under(root)
    groups: dict[tuple[str, str], dict[str, list[Path]]] = {}
    for role, globs in patterns.items():
        for glob in globs:
            rx = _glob_regex(glob)
            for path in files:
                rel = path.relative_to(root).as_posix()
                # a pattern without "/" is matched against the file name at any depth
                m = rx.fullmatch(rel if "/" in glob else path.name)
                if m is None:
                    continue
                captures = "_".join(g for g in m.groups() if g)
                parent = path.parent.relative_to(root).as_posix()
                roles = groups.setdefault((parent, captures), {})
                if path not in roles.get(role, []):
                    roles.setdefault(role, []).append(path)
    if not groups:
        listing = ", ".join(str(p.relative_to(root)) for p in files[:10]) or "nothing"
        raise ValueError(f"mapping {dict(patterns)} matches no file in {root} (found: {listing})")
    # subject id: the wildcard text of the file name, else the subject's folder; folder-qualified when not unique
    ids = {key: (key[1] or (Path(key[0]).name if key[0] != "." else root.name)) for key in groups}
    counts: dict[str, int] = {}
    for sid in ids.values():
        counts[sid] = counts.get(sid, 0) + 1
    found = []
    for key in sorted(groups, key=lambda k: ids[k]):
        sid = ids[key] if counts[ids[key]] == 1 else f"{key[0]}/{key[1]}"
        where = f"mapping in {root}"
        if not any(r in IMAGE_ROLES for r in groups[key]):
            continue
        found.append((sid, _resolve_roles(sid, groups[key], where), where))
    return sorted(_folder_entries(found, root), key=lambda e: e["subject"])


def _resolve_path(value: str, bases: Sequence[Path]) -> str:
    """Absolute path of a datalist value: as is when absolute, else under the first base where it exists."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    for base in bases:
        if (base / path).exists():
            return str((base / path).absolute())
    # missing everywhere: resolve against the first base so that load_dixon names the expected location
    return str((bases[0] / path).absolute())


def _datalist_entries(data: Any, key: str | None, source: str) -> list[Any]:
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"datalist {source} must be a JSON object or list, got {type(data).__name__}")
    if key is not None and isinstance(data.get(key), list) and data[key]:
        return data[key]
    present = [k for k in _DATALIST_SECTIONS if isinstance(data.get(k), list)]
    if not present:
        raise ValueError(
            f"datalist {source} has none of the keys {_DATALIST_SECTIONS}"
            + (f" nor {key!r}" if key not in (None, *_DATALIST_SECTIONS) else "")
        )
    if key is not None:
        logger.warning(
            "datalist %s: key %r is %s; using all subjects of %s",
            source,
            key,
            "empty" if key in data else "absent",
            ", ".join(present),
        )
    return [e for k in present for e in data[k]]


def _entry_from_datalist(item: Any, bases: Sequence[Path], index: int, source: str) -> dict[str, Any]:
    if isinstance(item, str):
        item = {"image": item}
    if not isinstance(item, dict):
        raise ValueError(f"datalist {source}: entry {index} must be an object or a path, got {item!r}")
    paths: dict[str, str | None] = {}
    for key, value in item.items():
        role = _KEY_ALIASES.get(str(key).lower())
        if role is not None and value is not None:
            if not isinstance(value, str):
                raise ValueError(f"datalist {source}: entry {index} key {key!r} must be a path, got {value!r}")
            paths[role] = _resolve_path(value, bases)
    image = item.get("image")
    # "image" only fills in what the entry does not say: the network input is always re-derived from the roles
    if isinstance(image, (list, tuple)) and len(image) == 1:
        image = image[0]
    if isinstance(image, str):
        img = _resolve_path(image, bases)
        if "inphase" not in paths and img not in (paths.get("water"), paths.get("fat")):
            paths["inphase"] = img
    elif isinstance(image, (list, tuple)) and len(image) == 2:
        paths.setdefault("water", _resolve_path(str(image[0]), bases))
        paths.setdefault("fat", _resolve_path(str(image[1]), bases))
    elif image is not None:
        raise ValueError(f"datalist {source}: entry {index} 'image' must be a path or [water, fat], got {image!r}")
    subject = item.get("subject")
    if subject is None:
        first = next((paths[r] for r in ("inphase", "water", "fat", "opposed", "ff") if r in paths), None)
        if first is None:
            raise ValueError(f"datalist {source}: entry {index} names no Dixon image: {item!r}")
        role, prefix = recognise_role(first)
        subject = prefix if role is not None and prefix else Path(first).parent.name
    return _make_entry(str(subject), paths, f"datalist {source}, entry {index}")


def discover_subjects(
    dataset_dir: str | os.PathLike[str] | None,
    datalist: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    datalist_key: str | None = "testing",
    mapping: Mapping[str, Any] | str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Find each subject's Dixon images and say which set they form and what the network reads.

    Sources, in this order of precedence:

    - **datalist** (MONAI format, a JSON file or an already loaded dict/list): entries under ``datalist_key``.
      When that key is absent or empty (or ``datalist_key`` is ``None``), all entries of ``training``,
      ``validation`` and ``testing`` that exist are used, with a logged warning: an inference run should not
      silently find nothing. Role keys: ``water``, ``fat``, ``inphase``, ``opposed``, ``ff``, ``label`` (aliases
      such as ``in_phase``, ``ip``, ``pdff``, ``seg`` are accepted). An ``image`` key only fills in a missing
      in-phase path (a string) or missing water/fat paths (a two-element list). Relative paths are resolved
      against ``dataset_dir`` first, then against the datalist's folder (MONAI's default ``base_dir``); a file
      that exists in neither is resolved against the first, and :func:`load_dixon` reports it missing. The
      subject id is the entry's ``subject``, else the file-name prefix of its first image.
    - **mapping** (a dict or a JSON file ``{"water": "*_W.nii.gz", ...}``): glob patterns per role, relative to
      ``dataset_dir`` (``*``, ``?``, ``[...]``, ``**``; case-insensitive); a pattern without ``/`` matches the file
      name at any depth. Files group into one subject when they sit in the same folder and the wildcards of their
      names match the same text; that text (joined by ``_``) is the subject id, else the folder name.
    - **folder** scan of ``dataset_dir``: each subfolder is one subject (files searched recursively; the subject
      id is the subfolder name), and NIfTI files at the top level are grouped by the prefix left when the role
      token is removed (``P01_W.nii.gz`` -> ``P01``). Roles come from :func:`recognise_role`. Files with a label
      token are reported under ``label``; NIfTI files without a role, files with a ground-truth token
      (``ff_true``) and hidden files are ignored (logged at info level).

    Args:
        dataset_dir: folder holding the images (or a datalist JSON file, whose folder is then the dataset folder).
            May be ``None`` when ``datalist`` is a file.
        datalist: MONAI datalist (path or loaded object); ``None`` to scan the folder.
        datalist_key: datalist section to read (``"training"``, ``"validation"``, ``"testing"``, ...); ``None``
            reads all three.
        mapping: glob patterns per role (dict or JSON file) for names the folder scan does not recognise.

    Returns:
        One dict per subject (datalist order; folder and mapping: sorted by id) with keys ``subject``; ``water``,
        ``fat``, ``inphase``, ``opposed``, ``ff`` and ``label`` (absolute path or ``None``); ``image`` (the
        network input: the in-phase path, or ``[water_path, fat_path]`` to be summed); and ``dixon_set``
        (``"water_fat"``, ``"water_fat+inphase"``, ``"inphase_opposed"`` or ``"ff_map+inphase"``).

    Raises:
        ValueError: nothing recognisable in the folder (the message lists what was found and how to give a
            mapping); two files for one image role of a subject (both named); a subject without a usable Dixon
            set; a malformed datalist or mapping; both ``datalist`` and ``mapping`` given.

    Warning:
        Roles a subject lacks are ``None``; drop those keys before a PyTorch ``DataLoader``, whose default collate
        rejects ``None``.

    Example:
        >>> entries = discover_subjects("/data/lumbar")  # doctest: +SKIP
        >>> entries[0]["dixon_set"], entries[0]["image"]  # doctest: +SKIP
        ('water_fat+inphase', '/data/lumbar/P01/P01_IP.nii.gz')
    """
    if datalist is not None and mapping is not None:
        raise ValueError("give either a datalist or a mapping, not both")
    root = None if dataset_dir is None else Path(dataset_dir).expanduser()
    if root is not None and root.is_file() and root.name.lower().endswith(".json") and datalist is None:
        datalist, root = root, root.parent
    if datalist is not None:
        bases: list[Path] = []
        if root is not None:
            bases.append(root)
        if isinstance(datalist, (str, os.PathLike)):
            dl_path = Path(datalist).expanduser()
            try:
                data = json.loads(dl_path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise ValueError(f"cannot read the datalist {dl_path}: {err}") from err
            bases.append(dl_path.parent)
            source = str(dl_path)
        else:
            data, source = datalist, "(object)"
        if not bases:
            bases.append(Path.cwd())
        items = _datalist_entries(data, datalist_key, source)
        entries: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            entry = _entry_from_datalist(item, bases, i, source)
            if entry["subject"] in seen:
                logger.warning(
                    "datalist %s: subject %r listed again (entry %d); the first is kept", source, entry["subject"], i
                )
                continue
            seen.add(entry["subject"])
            entries.append(entry)
        return entries
    if root is None:
        raise ValueError("dataset_dir is required without a datalist")
    if not root.is_dir():
        raise ValueError(f"dataset_dir {root} is not a folder")
    # a folder of DICOM files (and no NIfTI): series selected and converted to NIfTI in a per-run cache folder;
    # ``mapping`` then holds the series rules ({role: {DICOM keyword: regex}}). Imported here: pydicom is only
    # needed for DICOM input.
    from scripts.io.dicom import dicom_dataset_entries, folder_holds_dicom

    if folder_holds_dicom(root):
        return dicom_dataset_entries(root, rules=mapping)
    if mapping is not None:
        return _discover_mapping(root, mapping)
    return _discover_folder(root)


# ----------------------------------------------------------------------------------------------------------------
# Loading and validation
# ----------------------------------------------------------------------------------------------------------------


#: ``network_channels`` setting -> number of network input channels (see :meth:`DixonScan.network_input`)
NETWORK_CHANNELS: dict[str, int] = {"inphase": 1, "water_fat": 2}


def num_network_channels(channels: str) -> int:
    """Number of network input channels for a ``network_channels`` setting (raises on an unknown one)."""
    if channels not in NETWORK_CHANNELS:
        raise ValueError(f"network_channels must be one of {sorted(NETWORK_CHANNELS)}, got {channels!r}")
    return NETWORK_CHANNELS[channels]


@dataclass
class DixonScan:
    """One subject's Dixon images, validated, in their stored orientation (no reorientation, no resampling).

    Attributes:
        subject: subject id.
        images: role (``water``, ``fat``, ``inphase``, ``opposed``, ``ff``) -> float32 3D array, as stored
            (scaling slope/intercept applied; magnitude images with tolerated small negatives clipped at 0 when
            ``clip_negative``). The FF map is in its stored units (see :func:`compute_ff`).
        affine: 4x4 voxel-to-world (RAS, mm) affine common to all images (that of the reference image).
        shape: spatial shape ``(I, J, K)``.
        files: role -> path of each loaded image.
        dixon_set: see :func:`dixon_set_of`.
        spacing_mm: voxel size per array axis (mm).
        slice_axis: the array axis of the slices (see :func:`load_dixon`).
        slice_tilt_deg: angle between the slice axis and world z (degrees).
        reference: role whose affine is ``affine`` (the network input: in-phase, else water).
        label_file: the entry's label path, not loaded (it is mapped to the FF grid by affine later).
        warnings: tolerated problems, one sentence each (also issued as ``RuntimeWarning``).
        corrections: short codes of what was corrected or tolerated silently otherwise (``negatives_clipped_water``,
            ``grid_adopted_from_water``, ``grid_within_tolerance``, ``thick_slices``, ``oblique_slices``): the FF
            table's flags, its JSON and the report name them.
    """

    subject: str
    images: dict[str, np.ndarray]
    affine: np.ndarray
    shape: tuple[int, int, int]
    files: dict[str, str]
    dixon_set: str
    spacing_mm: tuple[float, float, float]
    slice_axis: int
    slice_tilt_deg: float
    reference: str
    label_file: str | None = None
    warnings: list[str] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)

    @property
    def available(self) -> tuple[str, ...]:
        """Roles loaded, in :data:`IMAGE_ROLES` order."""
        return tuple(r for r in IMAGE_ROLES if r in self.images)

    def has(self, *roles: str) -> bool:
        """True when every role in ``roles`` was loaded."""
        return all(r in self.images for r in roles)

    def network_input(self, channels: str = "inphase") -> np.ndarray:
        """The network input, float32 in the stored orientation.

        Args:
            channels: ``"inphase"``: one ``(I, J, K)`` image, the in-phase image, else water + fat;
                ``"water_fat"``: a ``(2, I, J, K)`` stack of water and fat, taken as stored, else derived from
                in-phase + opposed-phase (water-dominant assumption, as :func:`compute_ff`), else from a vendor FF
                map and the in-phase image (``W = IP * (1 - FF)``, ``F = IP * FF``, excluded FF voxels 0).
        """
        num_network_channels(channels)
        if channels == "inphase":
            if "inphase" in self.images:
                return self.images["inphase"]
            if self.has("water", "fat"):
                return (self.images["water"] + self.images["fat"]).astype(np.float32)
            raise DixonInputError(f"subject {self.subject!r}: no network input (needs in-phase, or water and fat)")
        if self.has("water", "fat"):
            water, fat = self.images["water"], self.images["fat"]
        elif self.has("inphase", "opposed"):
            water, fat = water_fat_from_in_opposed(
                self.images["inphase"], self.images["opposed"], assume="water_dominant"
            )
        elif self.has("inphase", "ff"):
            ff = np.nan_to_num(np.clip(compute_ff(self, "vendor_map").ff, 0.0, 1.0), nan=0.0)
            water, fat = self.images["inphase"] * (1.0 - ff), self.images["inphase"] * ff
        else:
            raise DixonInputError(
                f"subject {self.subject!r}: a two-channel (water, fat) model needs water and fat, "
                f"in-phase and opposed-phase, or a vendor FF map and in-phase; the scan has "
                f"{', '.join(self.available) or 'no image'}"
            )
        return np.stack([water, fat]).astype(np.float32)


def _label(role: str, path: str | os.PathLike[str]) -> str:
    return f"{_ROLE_WORDS.get(role, role)} image '{path}'"


def _check_nifti_file(role: str, path: Path) -> None:
    """Existence, extension and magic number, before nibabel sees the file (its errors do not name the file)."""
    where = _label(role, path)
    if not path.exists():
        raise DixonInputError(f"{where}: file not found", path)
    if not path.is_file():
        raise DixonInputError(f"{where}: not a file (a folder? DICOM series must be converted to NIfTI first)", path)
    low = path.name.lower()
    if not low.endswith(_NIFTI_SUFFIXES):
        raise DixonInputError(
            f"{where}: not a NIfTI file (extension {''.join(path.suffixes) or 'none'!r}; expected .nii or .nii.gz)",
            path,
        )
    try:
        if low.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                head = fh.read(544)
        else:
            with open(path, "rb") as fh:
                head = fh.read(544)
    except (OSError, EOFError) as err:
        raise DixonInputError(f"{where}: not a NIfTI file: it cannot be read as gzip data ({err})", path) from err
    nifti1 = len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00")
    nifti2 = len(head) >= 12 and head[4:12] == b"n+2\x00\r\n\x1a\n"
    if not (nifti1 or nifti2):
        raise DixonInputError(
            f"{where}: not a NIfTI file (no NIfTI-1/NIfTI-2 magic in its {len(head)}-byte header; "
            f"first bytes {head[:8]!r})",
            path,
        )


def _read_volume(role: str, path: Path, scan_warnings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one 3D image as float32 with its affine; refuse what is not a single finite volume."""
    where = _label(role, path)
    _check_nifti_file(role, path)
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for corrupt headers; all mean "unreadable"
        raise DixonInputError(f"{where}: unreadable NIfTI header ({type(err).__name__}: {err})", path) from err
    dtype = img.get_data_dtype()
    if dtype.kind == "c" or dtype.fields is not None:
        raise DixonInputError(f"{where}: stores {dtype} values (complex or RGB); expected a real-valued image", path)
    shape = tuple(int(s) for s in img.shape)
    if len(shape) < 3:
        raise DixonInputError(
            f"{where}: is {len(shape)}D (shape {shape}), a single slice or projection; expected one 3D volume: "
            "convert the whole series (every slice of the stack) into one file",
            path,
        )
    if len(shape) > 3 and any(s != 1 for s in shape[3:]):
        kind = f"{len(shape)}D" if len(shape) != 4 else f"4D with {shape[3]} volumes"
        raise DixonInputError(
            f"{where}: is {kind} (shape {shape}); expected one 3D volume: split multi-echo or multi-volume series "
            "into one file per image",
            path,
        )
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape[:3])
    except Exception as err:  # truncated gzip streams, short files, ...
        raise DixonInputError(f"{where}: unreadable image data ({type(err).__name__}: {err})", path) from err
    header = img.header
    if int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0:
        _warn(scan_warnings, f"{where}: no qform or sform; its affine is guessed from the voxel sizes")
    return data, np.asarray(img.affine, dtype=np.float64)


def _warn(scan_warnings: list[str], message: str, stacklevel: int = 4) -> None:
    """Record a tolerated problem and issue it as a ``RuntimeWarning`` pointing at the caller of ``load_dixon``."""
    scan_warnings.append(message)
    warnings.warn(message, RuntimeWarning, stacklevel=stacklevel)


def _check_values(
    role: str,
    path: Path,
    data: np.ndarray,
    scan_warnings: list[str],
    max_negative_share: float,
    negative_level_rel: float,
    clip_negative: bool,
    corrections: list[str] | None = None,
    max_clipped_share: float = 1.0,
) -> np.ndarray:
    where = _label(role, path)
    finite = np.isfinite(data)
    if not finite.all():
        n_nan = int(np.isnan(data).sum())
        n_inf = int(data.size - finite.sum() - n_nan)
        if n_inf:
            raise DixonInputError(f"{where}: contains {n_inf} infinite (Inf) value(s) of {data.size} voxels", path)
        if role in MAGNITUDE_ROLES:
            raise DixonInputError(f"{where}: contains {n_nan} NaN value(s) of {data.size} voxels", path)
        # some tools write NaN where an FF map is undefined: that already means "excluded"
        _warn(scan_warnings, f"{where}: {n_nan} NaN value(s) are treated as excluded voxels")
    nonzero = data[finite & (data != 0)]
    if nonzero.size == 0:
        raise DixonInputError(f"{where}: is all zero (no signal)", path)
    if role not in MAGNITUDE_ROLES:
        return data
    negative = nonzero < 0
    if not negative.any():
        return data
    p99 = float(np.percentile(nonzero, 99))
    if p99 <= 0:
        raise DixonInputError(
            f"{where}: has negative intensities and no positive signal (99th percentile {p99:.4g}); "
            "expected a magnitude image",
            path,
        )
    level = -negative_level_rel * p99
    share = float(np.mean(nonzero < level))
    if share > max_negative_share:
        raise DixonInputError(
            f"{where}: has negative intensities: {share:.1%} of the non-zero voxels are below {level:.4g} "
            f"(-{negative_level_rel:.0%} of the 99th percentile {p99:.4g}), more than the {max_negative_share:.0%} "
            "a magnitude image may have; is it a phase, real or imaginary image?",
            path,
        )
    n_neg, vmin = int(negative.sum()), float(nonzero.min())
    neg_share = n_neg / nonzero.size
    if clip_negative and neg_share > max_clipped_share:
        # small negatives each, but so many that clipping them would move the FF of whole muscles: not noise
        raise DixonInputError(
            f"{where}: {neg_share:.1%} of the non-zero voxels are negative (min {vmin:.4g}); clipping more than "
            f"{max_clipped_share:.0%} of them to 0 would change the fat fraction, so the image is refused. Is it a "
            "real (signed) or phase image, or was an offset subtracted? Export magnitude images",
            path,
        )
    if clip_negative:
        if corrections is not None:
            corrections.append(f"negatives_clipped_{role}")
        _warn(
            scan_warnings,
            f"{where}: {n_neg} negative value(s) (min {vmin:.4g}, {share:.2%} below {level:.4g}) clipped to 0",
        )
        return np.maximum(data, 0.0, out=data)
    _warn(scan_warnings, f"{where}: {n_neg} negative value(s) (min {vmin:.4g}) kept (clip_negative=False)")
    return data


def _slice_geometry(affine: np.ndarray) -> tuple[int, float, np.ndarray]:
    """(slice axis, its angle to world z in degrees, unit direction vectors as columns)."""
    lin = affine[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    directions = lin / spacing
    order = np.argsort(spacing)
    if spacing[order[2]] >= _SLICE_AXIS_ANISOTROPY * spacing[order[1]]:
        # thick slices (2D acquisition): the thick axis is where resolution is lost, so it must be world z
        axis = int(order[2])
    else:
        # (near-)isotropic volume: the axis closest to world z; a large angle means the whole volume is oblique
        axis = int(np.argmax(np.abs(directions[2])))
    tilt = float(np.degrees(np.arccos(min(1.0, abs(float(directions[2, axis]))))))
    return axis, tilt, directions


def _fov_mm_world(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """Field of view (mm) along world x, y, z: each voxel axis's extent goes to the world axis it is closest to."""
    lin = affine[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    fov = np.zeros(3)
    for i in range(3):
        world = int(np.argmax(np.abs(lin[:, i])))
        fov[world] = max(fov[world], shape[i] * spacing[i])
    return fov


def load_dixon(
    entry: Mapping[str, Any],
    tol_spacing_rel: float = 1e-3,
    min_shape_mm: float | Sequence[float] | None = None,
    max_negative_share: float = 0.05,
    negative_level_rel: float = 0.10,
    clip_negative: bool = True,
    tilt_warn_deg: float = 10.0,
    tilt_refuse_deg: float = 30.0,
    segmentation_only: bool = False,
    trust_voxel_grid: str | None = None,
    max_clipped_share: float = 0.35,
    thick_slice_warn_mm: float = 8.0,
) -> DixonScan:
    """Load and validate one subject's Dixon images (an entry of :func:`discover_subjects`).

    Checks, in order, each raising :class:`DixonInputError` with the file and the problem in its message:

    1. each file: present; extension ``.nii``/``.nii.gz`` and a NIfTI-1/2 magic number (gzip-readable when
       ``.gz``); a readable header and data; real-valued; 3D (trailing singleton dimensions such as
       ``(X, Y, Z, 1)`` are dropped, a real 4th dimension is refused);
    2. each value: no Inf; no NaN in magnitude images (NaN in an FF map means "excluded" and gives a warning); not
       all zero;
    3. negative intensities in magnitude images (water, fat, in-phase, opposed-phase): refused when more than
       ``max_negative_share`` of the non-zero voxels lie below ``-negative_level_rel`` times their 99th
       percentile (a phase, real or imaginary image has about half its voxels far below zero); otherwise
       clipped at 0 (``clip_negative``) with a warning. Why tolerated: real-valued 3-point reconstructions (GE)
       store signed water and fat, and noise makes the near-zero species negative. The real GE thigh sample
       has 15.8 % of its water voxels below -1 % of P99 but only 1.4 % below -10 %, so a 1 %/-1 % rule would
       refuse a valid scan. Clipping is recorded in :attr:`DixonScan.corrections`, and refused when more than
       ``max_clipped_share`` of the non-zero voxels are negative (the GE sample: 20.5 % of its water voxels);
    4. all images on one voxel grid as the reference image (in-phase, else water):
       :func:`scripts.grid.check_same_grid` with ``rtol_spacing=tol_spacing_rel`` (shape,
       spacing,
       direction, origin);
       With ``trust_voxel_grid`` (a role), an image with the trusted image's shape and spacing but another origin or
       direction (a conversion artefact) adopts the trusted image's affine, recorded as a correction; shape or
       spacing differences are still refused. A grid passed within tolerance but not exactly equal is recorded
       (``grid_within_tolerance``);
    5. axial slices: the slice axis (the thickest voxel axis when it is >= 1.2x the others, i.e. a 2D
       acquisition; otherwise the voxel axis closest to world z) must point within ``tilt_refuse_deg`` of
       world z; beyond ``tilt_warn_deg`` a warning is recorded. The model was trained on axial slices; sagittal
       or coronal slices lose resolution exactly where the lumbar muscles need it;
    6. field of view: with ``min_shape_mm``, the extent along each world axis (x, y, z) must reach it;
    7. slices thicker than ``thick_slice_warn_mm`` give a warning and the ``thick_slices`` correction code: the
       partial volume of such slices blurs muscle borders, and the model was trained at 4 mm.

    Args:
        entry: dict with role keys ``water``, ``fat``, ``inphase``, ``opposed``, ``ff`` (path or ``None``) and
            optionally ``subject`` and ``label``.
        tol_spacing_rel: relative voxel-spacing tolerance between the images (0.1 % absorbs DICOM/NIfTI rounding).
        min_shape_mm: minimum field of view in mm along world x, y, z (e.g. the network patch size times the
            training spacing), or one number for all three; ``None`` skips the check.
        max_negative_share: share of the non-zero voxels allowed below the negative level (see 3).
        negative_level_rel: the negative level as a fraction of the 99th percentile (see 3).
        clip_negative: clip tolerated negatives at 0. Clipping moves the mean FF of noisy, nearly fat-free
            voxels up slightly; pass ``False`` to keep signed values (``F / (F + W)`` then matches a vendor map
            computed from the same signed images).
        tilt_warn_deg: slice tilt (degrees from world z) above which a warning is recorded.
        tilt_refuse_deg: slice tilt above which the scan is refused.
        segmentation_only: also accept an in-phase image alone (Dixon set ``"inphase_only"``): enough for the
            network, not for FF. For tools that send the bundle one image (MONAI Label, MONAI Deploy).
        trust_voxel_grid: a role whose header the others adopt when only origin or direction differ (see 4).
        max_clipped_share: largest share of negative non-zero voxels that is clipped; more is refused (see 3).
        thick_slice_warn_mm: slice thickness (mm) above which a warning is recorded (see 7).

    Returns:
        A :class:`DixonScan`.

    Raises:
        DixonInputError: a file or the set fails a check above; or the entry has no usable Dixon set.
    """
    subject = str(entry.get("subject") or "?")
    paths = {r: Path(str(entry[r])).expanduser() for r in IMAGE_ROLES if entry.get(r) is not None}
    dixon_set = dixon_set_of(paths)
    if dixon_set is None and segmentation_only and set(paths) == {"inphase"}:
        dixon_set = "inphase_only"
    if dixon_set is None:
        found = ", ".join(f"{_ROLE_WORDS[r]} ({p.name})" for r, p in paths.items()) or "no image"
        raise DixonInputError(
            f"subject {subject!r}: no usable Dixon set: found {found}; need water + fat, in-phase + opposed-phase, "
            "or an FF map with an in-phase image"
        )
    if not 0 < tilt_warn_deg <= tilt_refuse_deg <= 90:
        raise ValueError(f"need 0 < tilt_warn_deg <= tilt_refuse_deg <= 90, got {tilt_warn_deg}, {tilt_refuse_deg}")
    scan_warnings: list[str] = []
    corrections: list[str] = []
    images: dict[str, np.ndarray] = {}
    affines: dict[str, np.ndarray] = {}
    for role, path in paths.items():
        data, affine = _read_volume(role, path, scan_warnings)
        images[role] = _check_values(
            role,
            path,
            data,
            scan_warnings,
            max_negative_share,
            negative_level_rel,
            clip_negative,
            corrections,
            max_clipped_share,
        )
        affines[role] = affine

    reference = "inphase" if "inphase" in images else "water"
    if trust_voxel_grid is not None:
        _adopt_trusted_grid(trust_voxel_grid, images, affines, paths, tol_spacing_rel, scan_warnings, corrections)
    _check_one_grid(reference, images, affines, paths, tol_spacing_rel, corrections)
    ref_path, ref_affine, ref_shape = paths[reference], affines[reference], images[reference].shape

    axis, tilt, directions = _slice_geometry(ref_affine)
    spacing = tuple(float(v) for v in np.linalg.norm(ref_affine[:3, :3], axis=0))
    closest = "xyz"[int(np.argmax(np.abs(directions[:, axis])))]
    plane = {"x": "sagittal", "y": "coronal", "z": "axial"}[closest]
    geometry = (
        f"the slice axis (array axis {axis}, {spacing[axis]:.3g} mm) points {tilt:.1f} degrees from world z "
        f"(closest world axis {closest}: {plane} slices)"
    )
    where = _label(reference, ref_path)
    if tilt > tilt_refuse_deg:
        raise DixonInputError(
            f"{where}: slices are not axial: {geometry}; more than {tilt_refuse_deg:g} degrees is refused because "
            "the model was trained on axial slices; reformat or acquire axial slices",
            ref_path,
        )
    if tilt > tilt_warn_deg:
        _warn(scan_warnings, f"{where}: oblique slices: {geometry}", stacklevel=3)
        corrections.append("oblique_slices")

    if spacing[axis] > thick_slice_warn_mm:
        _warn(
            scan_warnings,
            f"{where}: very thick slices ({spacing[axis]:.3g} mm, more than {thick_slice_warn_mm:g} "
            "mm): partial volume blurs the muscle borders; FF and volumes are less accurate",
            stacklevel=3,
        )
        corrections.append("thick_slices")

    if min_shape_mm is not None:
        wanted = np.broadcast_to(np.asarray(min_shape_mm, dtype=np.float64), (3,))
        fov = _fov_mm_world(ref_shape, ref_affine)
        short = [a for a in range(3) if fov[a] + 1e-6 < wanted[a]]
        if short:
            fmt = " x ".join
            raise DixonInputError(
                f"{where}: field of view {fmt(f'{v:.1f}' for v in fov)} mm (world x, y, z) is smaller than the "
                f"minimum {fmt(f'{v:.1f}' for v in wanted)} mm along {', '.join('xyz'[a] for a in short)}",
                ref_path,
            )
    label = entry.get("label")
    return DixonScan(
        subject=subject,
        images=images,
        affine=ref_affine,
        shape=(int(ref_shape[0]), int(ref_shape[1]), int(ref_shape[2])),
        files={r: str(p) for r, p in paths.items()},
        dixon_set=dixon_set,
        spacing_mm=(spacing[0], spacing[1], spacing[2]),
        slice_axis=axis,
        slice_tilt_deg=tilt,
        reference=reference,
        label_file=None if label is None else str(label),
        warnings=scan_warnings,
        corrections=corrections,
    )


def _same_shape_and_spacing(
    shape_a: Sequence[int], affine_a: np.ndarray, shape_b: Sequence[int], affine_b: np.ndarray, rtol: float
) -> bool:
    sa, sb = np.linalg.norm(affine_a[:3, :3], axis=0), np.linalg.norm(affine_b[:3, :3], axis=0)
    return tuple(shape_a[:3]) == tuple(shape_b[:3]) and bool(np.allclose(sa, sb, rtol=rtol, atol=0.0))


def _adopt_trusted_grid(
    trusted: str,
    images: Mapping[str, np.ndarray],
    affines: dict[str, np.ndarray],
    paths: Mapping[str, Path],
    rtol: float,
    scan_warnings: list[str],
    corrections: list[str],
) -> None:
    """Give every image with the trusted image's shape and spacing the trusted image's affine (user's override)."""
    if trusted not in images:
        word = _ROLE_WORDS.get(trusted, trusted)
        raise DixonInputError(
            f"trust_voxel_grid = {trusted!r}, but the subject has no {word} image (it has {', '.join(images)})"
        )
    for role in images:
        if role == trusted or np.array_equal(affines[role], affines[trusted]):
            continue
        if _same_shape_and_spacing(images[role].shape, affines[role], images[trusted].shape, affines[trusted], rtol):
            _warn(
                scan_warnings,
                f"{_label(role, paths[role])}: header replaced by that of "
                f"{_label(trusted, paths[trusted])} (trust_voxel_grid)",
                stacklevel=4,
            )
            affines[role] = affines[trusted].copy()
            if f"grid_adopted_from_{trusted}" not in corrections:
                corrections.append(f"grid_adopted_from_{trusted}")


def _check_one_grid(
    reference: str,
    images: Mapping[str, np.ndarray],
    affines: Mapping[str, np.ndarray],
    paths: Mapping[str, Path],
    rtol: float,
    corrections: list[str],
) -> None:
    """Refuse images off the reference image's grid, naming the override when only the header differs."""
    ref_affine, ref_shape = affines[reference], images[reference].shape
    for role in images:
        if role == reference:
            continue
        try:
            check_same_grid(
                ref_shape,
                ref_affine,
                images[role].shape,
                affines[role],
                rtol_spacing=rtol,
                name_a=_label(reference, paths[reference]),
                name_b=_label(role, paths[role]),
            )
        except ValueError as err:
            hint = ""
            if _same_shape_and_spacing(images[role].shape, affines[role], ref_shape, ref_affine, rtol):
                hint = (
                    ". Shape and spacing agree, so only the header's origin or direction differs (a common "
                    f"conversion artefact): if you have checked that the images are aligned, pass "
                    f"--trust_voxel_grid {reference} to adopt that image's header for the others (recorded in the "
                    "provenance and the report)"
                )
            raise DixonInputError(
                f"{err}; the Dixon images of one subject must share one voxel grid{hint}", paths[role]
            ) from err
        if not np.array_equal(affines[role], ref_affine) and "grid_within_tolerance" not in corrections:
            corrections.append("grid_within_tolerance")


# ----------------------------------------------------------------------------------------------------------------
# Fat fraction
# ----------------------------------------------------------------------------------------------------------------


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
    have = ", ".join(f"{_ROLE_WORDS[r]} ({Path(scan.files[r]).name})" for r in scan.available)
    need = ", ".join(_ROLE_WORDS[r] for r in needed)
    return DixonInputError(f"subject {scan.subject!r}: method {method!r} needs {need} images; available: {have}")


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
       accordingly;
       voxels whose network-input signal is below the denominator threshold are excluded like 1 and 2.

    ``"magnitude_discrimination"`` (Liu 2007) needs water, fat and in-phase. Voxels whose denominator is below
    the threshold (:func:`scripts.quantification.formulas.denominator_threshold`: ``min_denominator``, else
    ``relative_threshold`` times the 99th percentile of the positive denominators) are NaN, and so are values
    outside the physical range -0.05..1.05 (:func:`scripts.quantification.formulas.exclude_out_of_range`).

    Args:
        scan: a :class:`DixonScan` from :func:`load_dixon`.
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
    if method != "auto" and method not in FF_METHODS:
        raise ValueError(f"unknown FF method {method!r}; expected 'auto' or one of {sorted(FF_METHODS)}")
    if ff_scale is not None and ff_scale not in ("fraction", "percent", "permille"):
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
    needed = {
        "water_fat": ("water", "fat"),
        "inphase_opposed_water_dominant": ("inphase", "opposed"),
        "vendor_map": ("ff",),
        "magnitude_discrimination": ("water", "fat", "inphase"),
    }[ff_method]
    if not scan.has(*needed):
        raise _missing_error(scan, method, needed)
    img = scan.images
    provenance: dict[str, Any] = {
        "ff_method": ff_method,
        "ff_source": _source(scan, needed),
        "ff_scale": None,
        "ff_scale_detected": None,
        "ff_scale_override": False,
        "ff_scale_reason": None,
    }

    if ff_method == "water_fat":
        den = img["water"].astype(np.float64) + img["fat"]
        threshold = denominator_threshold(den, min_denominator, relative_threshold)
        ff = fat_fraction_from_water_fat(img["water"], img["fat"], min_denominator=threshold)
        assumption = "FF = F / (F + W), signal fat fraction of the water and fat images (PDFF only if they are)"
    elif ff_method == "inphase_opposed_water_dominant":
        water, fat = water_fat_from_in_opposed(img["inphase"], img["opposed"], assume="water_dominant")
        # W + F = IP exactly, so the threshold is the one the in-phase image gives
        threshold = denominator_threshold(img["inphase"], min_denominator, relative_threshold)
        ff = fat_fraction_from_water_fat(water, fat, min_denominator=threshold)
        assumption = (
            "water-dominant: W = (IP + OP) / 2, F = (IP - OP) / 2; valid where FF < 50 % (muscle), "
            "fat-dominant voxels read 1 - FF"
        )
    elif ff_method == "magnitude_discrimination":
        threshold = denominator_threshold(np.abs(img["inphase"]), min_denominator, relative_threshold)
        ff = fat_fraction_magnitude_discrimination(img["water"], img["fat"], img["inphase"], min_denominator=threshold)
        assumption = (
            "magnitude discrimination (Liu 2007): FF = |F| / IP where fat dominates, 1 - |W| / IP "
            "elsewhere; removes the noise bias of F / (F + W) at low and high FF"
        )
    else:
        ff, threshold, assumption = _vendor_ff(scan, ff_scale, min_denominator, relative_threshold, provenance)

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
    mask: np.ndarray | None = None
    threshold: float | None = None
    if scan.has("inphase") or scan.has("water", "fat"):
        # the body mask keeps background noise (random values in unthresholded F/(F+W) maps) out of the statistics
        signal = np.abs(scan.network_input())
        threshold = denominator_threshold(signal, min_denominator, relative_threshold)
        mask = signal >= threshold
        if int(mask.sum()) < _MIN_MASK_VOXELS:
            mask = None
    detected: str | None = None
    detect_error: ValueError | None = None
    try:
        detected = detect_ff_scale(raw, mask=mask, source=name).scale
    except ValueError as err:
        detect_error = err
    if ff_scale is None and detect_error is not None:
        raise DixonInputError(
            f"{_label('ff', path)}: the scale of the FF map cannot be decided: {detect_error} "
            "(compute_ff: ff_scale='fraction'|'percent'|'permille')",
            path,
        ) from detect_error
    if ff_scale is not None and detected is not None and detected != ff_scale:
        warnings.warn(
            f"{_label('ff', path)}: ff_scale={ff_scale!r} overrides the detected scale {detected!r}",
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


def inference_datalist(
    dataset_dir: str | os.PathLike[str] | None,
    datalist: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    datalist_key: str | None = "testing",
    mapping: Mapping[str, Any] | str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """:func:`discover_subjects` with the roles a subject lacks left out, ready for a MONAI ``Dataset``.

    PyTorch's collate cannot batch ``None``, so absent images are dropped from each entry instead.
    """
    return [
        {k: v for k, v in e.items() if v is not None}
        for e in discover_subjects(dataset_dir, datalist, datalist_key, mapping)
    ]
