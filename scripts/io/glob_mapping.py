"""Subjects from explicit glob patterns per role (``{"water": "*_W.nii.gz", ...}``), for names the folder scan
does not recognise."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.io.entry import resolve_roles, subject_entries
from scripts.io.folder_scan import files_under
from scripts.io.roles import IMAGE_ROLES, KEY_ALIASES

__all__ = ["discover_mapping", "load_mapping"]


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


def load_mapping(mapping: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, list[str]]:
    """Role -> glob patterns, from a dict or a JSON file; keys may be aliases (``ip``, ``pdff``, ``seg``, ...).

    Raises:
        ValueError: an unreadable file, an unknown role, a value that is not a pattern or a list of them, or an
            empty mapping.
    """
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
        role = KEY_ALIASES.get(str(key).lower())
        if role is None:
            raise ValueError(f"unknown role {key!r} in mapping; expected one of {sorted(set(KEY_ALIASES))}")
        patterns = [value] if isinstance(value, str) else list(value)
        if not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise ValueError(f"mapping[{key!r}] must be a glob pattern or a list of them, got {value!r}")
        out.setdefault(role, []).extend(patterns)
    if not out:
        raise ValueError("mapping is empty; give at least {'water': ..., 'fat': ...} or {'inphase': ..., ...}")
    return out


def _group_matches(
    root: Path, files: Sequence[Path], patterns: Mapping[str, list[str]]
) -> dict[tuple[str, str], dict[str, list[Path]]]:
    """(folder, wildcard text) -> role -> matched files."""
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
    return groups


def _subject_ids(root: Path, groups: Mapping[tuple[str, str], Any]) -> dict[tuple[str, str], str]:
    """Subject id per group: the wildcard text of the file name, else the subject's folder; folder-qualified when
    not unique."""
    ids = {key: (key[1] or (Path(key[0]).name if key[0] != "." else root.name)) for key in groups}
    counts: dict[str, int] = {}
    for sid in ids.values():
        counts[sid] = counts.get(sid, 0) + 1
    return {key: sid if counts[sid] == 1 else f"{key[0]}/{key[1]}" for key, sid in ids.items()}


def discover_mapping(root: Path, mapping: Mapping[str, Any] | str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Group files matched by per-role glob patterns into subjects (see
    :func:`scripts.io.discover.discover_subjects`)."""
    patterns = load_mapping(mapping)
    files = files_under(root)
    groups = _group_matches(root, files, patterns)
    if not groups:
        listing = ", ".join(str(p.relative_to(root)) for p in files[:10]) or "nothing"
        raise ValueError(f"mapping {dict(patterns)} matches no file in {root} (found: {listing})")
    ids = _subject_ids(root, groups)
    where = f"mapping in {root}"
    found = []
    for key in sorted(groups, key=lambda k: ids[k]):
        if any(r in IMAGE_ROLES for r in groups[key]):
            found.append((ids[key], resolve_roles(ids[key], groups[key], where), where))
    return sorted(subject_entries(found, root), key=lambda e: e["subject"])
