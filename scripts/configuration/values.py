"""Values that arrive from the command line as strings, read as the configs mean them.

Why: ``monai.bundle run --flip_ensemble false`` and fire's ``--overrides '{"adapt_batch_norm": false}'`` hand over
strings, and ``bool("false")`` is True; a switch read that way would silently stay on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["BOOL_SPELLINGS", "as_bool", "overrides_from_cli"]

#: the spellings of a boolean accepted on command lines and in configs (any case)
BOOL_SPELLINGS: tuple[str, ...] = ("true", "false", "yes", "no", "1", "0")
_TRUE = ("true", "yes", "1")


def as_bool(value: bool | str, name: str) -> bool:
    """``value`` as a boolean; the strings of :data:`BOOL_SPELLINGS` (any case) as such, others refused.

    Args:
        value: a boolean, the integers 0 / 1, or a command-line spelling (true/false/yes/no/1/0).
        name: the setting's name, for the error message.

    Raises:
        ValueError: a string that is not one of the spellings, or another value (2, None, a list): read by
            truthiness these would switch a setting on without the user saying so.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text not in BOOL_SPELLINGS:
            raise ValueError(f"{name} must be true or false (or yes/no, 1/0), not {value!r}")
        return text in _TRUE
    if hasattr(value, "item") and not isinstance(value, (list, tuple)):
        value = value.item()  # numpy / torch booleans
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{name} must be true or false (or yes/no, 1/0), not {value!r}")


def overrides_from_cli(value: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Config ids to replace, given as a JSON object string (``'{"adapt_batch_norm": false}'``) or a mapping.

    Raises:
        ValueError: not valid JSON, or not an object of ids.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"overrides must be a JSON object of config ids, not {value!r} ({e})") from e
    if not isinstance(value, Mapping):
        raise ValueError(f"overrides must be a JSON object of config ids, not {value!r}")
    return dict(value)
