"""Subjects from a MONAI datalist (a JSON file or an already loaded dict/list): one entry per item.

Role keys ``water``, ``fat``, ``inphase``, ``opposed``, ``ff``, ``label`` (and aliases, :data:`scripts.io.roles.
KEY_ALIASES`); an ``image`` key only fills in what the item does not say. See
:func:`scripts.io.discover.discover_subjects` for the rules.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.io.entry import make_entry
from scripts.io.roles import KEY_ALIASES, recognise_role

__all__ = ["discover_datalist"]

logger = logging.getLogger(__name__)

_DATALIST_SECTIONS: tuple[str, ...] = ("training", "validation", "testing")


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


def _datalist_items(data: Any, key: str | None, source: str) -> list[Any]:
    """The items under ``key``; all sections that exist when it is absent or empty (with a logged warning)."""
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


def _role_paths(item: Mapping[str, Any], bases: Sequence[Path], index: int, source: str) -> dict[str, str | None]:
    """Role -> absolute path from an item's role keys, with ``image`` filling in in-phase or water/fat."""
    paths: dict[str, str | None] = {}
    for key, value in item.items():
        role = KEY_ALIASES.get(str(key).lower())
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
    return paths


def _entry_from_item(item: Any, bases: Sequence[Path], index: int, source: str) -> dict[str, Any]:
    if isinstance(item, str):
        item = {"image": item}
    if not isinstance(item, dict):
        raise ValueError(f"datalist {source}: entry {index} must be an object or a path, got {item!r}")
    paths = _role_paths(item, bases, index, source)
    subject = item.get("subject")
    if subject is None:
        first = next((paths[r] for r in ("inphase", "water", "fat", "opposed", "ff") if r in paths), None)
        if first is None:
            raise ValueError(f"datalist {source}: entry {index} names no Dixon image: {item!r}")
        role, prefix = recognise_role(first)
        subject = prefix if role is not None and prefix else Path(first).parent.name
    return make_entry(str(subject), paths, f"datalist {source}, entry {index}")


def _read_datalist(
    datalist: str | os.PathLike[str] | Mapping[str, Any] | list[Any], root: Path | None
) -> tuple[Any, list[Path], str]:
    """(loaded datalist, folders relative paths are resolved against, its name for messages)."""
    bases: list[Path] = [] if root is None else [root]
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
    return data, bases, source


def discover_datalist(
    root: Path | None,
    datalist: str | os.PathLike[str] | Mapping[str, Any] | list[Any],
    datalist_key: str | None,
) -> list[dict[str, Any]]:
    """One entry per datalist item under ``datalist_key`` (datalist order); a subject listed again is skipped.

    Relative paths are resolved against ``root`` first, then the datalist's folder (else the working folder).

    Raises:
        ValueError: an unreadable or malformed datalist, an item without a Dixon image or a usable Dixon set.
    """
    data, bases, source = _read_datalist(datalist, root)
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(_datalist_items(data, datalist_key, source)):
        entry = _entry_from_item(item, bases, i, source)
        if entry["subject"] in seen:
            logger.warning(
                "datalist %s: subject %r listed again (entry %d); the first is kept", source, entry["subject"], i
            )
            continue
        seen.add(entry["subject"])
        entries.append(entry)
    return entries
