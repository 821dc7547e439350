"""Values that arrive from the command line as strings, read as the configs mean them.

Why: ``monai.bundle run --flip_ensemble false`` and fire's ``--overrides '{"adapt_batch_norm": false}'`` hand over
strings, and ``bool("false")`` is True; a switch read that way would silently stay on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["as_bool", "overrides_from_cli"]


def as_bool(value: bool | str, name: str) -> bool:
    """``value`` as a boolean; the strings "true"/"false"/"1"/"0" (any case) as such, others refused.

    Args:
        value: a boolean, or its command-line spelling.
        name: the setting's name, for the error message.

    Raises:
        ValueError: a string that is not one of the four spellings.
    """
    if isinstance(value, str):
        if value.strip().lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{name} must be true or false, not {value!r}")
        return value.strip().lower() in ("true", "1")
    return bool(value)


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
