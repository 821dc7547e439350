"""User rules that name the Dixon role of DICOM series: ``{role: {DICOM keyword: regex}}``.

They take precedence over the vendor conventions (:mod:`scripts.io.dicom_tokens`) for the roles they name; see
docs/guides/dicom.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts.io.dicom_series import DicomSeries, header_value
from scripts.io.dicom_tokens import VALUE_SEPARATOR
from scripts.io.roles import IMAGE_ROLES

__all__ = ["ParsedRules", "is_parsed", "load_rules", "series_matches"]

#: role -> DICOM keyword -> compiled regex
ParsedRules = dict[str, dict[str, re.Pattern[str]]]


def _rules_object(rules: Mapping[str, Any] | str | os.PathLike[str]) -> tuple[Any, str]:
    """(the rules as loaded JSON or as given, their name for messages)."""
    if not isinstance(rules, (str, os.PathLike)):
        return rules, "rules"
    source = "rules"
    text = str(rules)
    if not text.lstrip().startswith("{"):
        path = Path(text).expanduser()
        source = str(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise ValueError(f"cannot read the series rules file {path}: {err}") from err
    try:
        return json.loads(text), source
    except json.JSONDecodeError as err:
        raise ValueError(f"series rules {source} are not valid JSON: {err}") from err


def load_rules(rules: Mapping[str, Any] | str | os.PathLike[str] | None) -> ParsedRules:
    """Parse user series-selection rules.

    Args:
        rules: ``{role: {DICOM keyword: regex, ...}, ...}`` (a dict, a JSON file path or a JSON string). Roles are
            ``water``, ``fat``, ``inphase``, ``opposed``, ``ff``; keywords are DICOM attribute keywords of the
            series' first file (``SeriesDescription``, ``SeriesNumber``, ``ImageType``, ``ProtocolName``, ...).
            Each regex is searched case-insensitively in the value as text (multi-valued attributes joined by
            ``\\``); a series matches a role when all of its conditions match. Example:
            ``{"water": {"SeriesDescription": "_W$"}, "fat": {"SeriesDescription": "_F$", "SeriesNumber": "^5$"}}``.

    Returns:
        role -> keyword -> compiled regex.

    Raises:
        ValueError: an unreadable file, an unknown role, a condition that is not ``{keyword: regex}`` or a regex
            that does not compile (the message names it).
    """
    if rules is None:
        return {}
    rules, source = _rules_object(rules)
    if not isinstance(rules, Mapping):
        raise ValueError(f"series rules {source} must be a JSON object {{role: {{keyword: regex}}}}")
    out: ParsedRules = {}
    for role, conditions in rules.items():
        if role not in IMAGE_ROLES:
            raise ValueError(f"series rules {source}: unknown role {role!r}; expected one of {IMAGE_ROLES}")
        if not isinstance(conditions, Mapping) or not conditions:
            raise ValueError(f"series rules {source}: {role!r} must map DICOM keywords to regexes, got {conditions!r}")
        out[role] = {}
        for keyword, pattern in conditions.items():
            try:
                out[role][str(keyword)] = re.compile(str(pattern), re.IGNORECASE)
            except re.error as err:
                raise ValueError(
                    f"series rules {source}: {role}.{keyword} regex {pattern!r} is invalid: {err}"
                ) from err
    return out


def is_parsed(rules: Any) -> bool:
    """Whether ``rules`` is already the output of :func:`load_rules`."""
    return isinstance(rules, Mapping) and all(
        isinstance(c, Mapping) and all(isinstance(r, re.Pattern) for r in c.values()) for c in rules.values()
    )


def _rule_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return VALUE_SEPARATOR.join(str(v) for v in value)
    return str(value)


def series_matches(series: DicomSeries, conditions: Mapping[str, re.Pattern[str]]) -> bool:
    """Whether every condition (keyword -> regex) of one role's rule matches the series' first header."""
    for keyword, rx in conditions.items():
        value = series.header.get(keyword)
        if value is None and series.headers:
            value = header_value(series.headers[0], keyword)
        if value is None or rx.search(_rule_text(value)) is None:
            return False
    return True
