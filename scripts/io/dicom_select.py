"""Name each DICOM series' Dixon role (:func:`classify_series`) and pick one series per role for a study
(:func:`select_dixon_series`), refusing ambiguity with a message naming the folder and the series."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from scripts.io.dicom_rules import is_parsed, load_rules, series_matches
from scripts.io.dicom_series import DicomSeries
from scripts.io.dicom_tokens import role_from_description, role_from_image_type
from scripts.io.errors import DixonInputError
from scripts.io.roles import dixon_set_of

__all__ = ["classify_series", "select_dixon_series"]


def classify_series(
    series: DicomSeries, rules: Mapping[str, Mapping[str, re.Pattern[str]]] | None = None
) -> tuple[str | None, str]:
    """Name the Dixon role of one series.

    Order: user rules (all conditions of a role must match; a series matching two roles' rules is not
    classified); then, for roles without a user rule, the ImageType values
    (:data:`scripts.io.dicom_tokens.IMAGE_TYPE_TOKENS`), then the SeriesDescription tokens
    (:data:`scripts.io.dicom_tokens.DESCRIPTION_TOKENS`). ImageType wins over a disagreeing description because
    it is written by the reconstruction, not typed by an operator.

    Args:
        series: the series.
        rules: parsed user rules (:func:`scripts.io.dicom_rules.load_rules`); a role with a user rule is decided
            by that rule alone.

    Returns:
        ``(role or None, reason)``; the reason says which attribute decided (or why nothing did).
    """
    rules = rules or {}
    hits = [role for role, cond in rules.items() if series_matches(series, cond)]
    if len(hits) == 1:
        return hits[0], f"user rule for {hits[0]}"
    if len(hits) > 1:
        return None, f"matches the user rules of several roles ({', '.join(hits)})"
    role, reason = role_from_image_type(series.image_type)
    if role is None and not reason:
        role, reason = role_from_description(series.description)
    if role is not None and role in rules:
        # the user decides this role: a built-in match for it does not count
        return None, f"{reason} names {role}, but the user rule for {role} does not match"
    return role, reason or "no Dixon role in ImageType or SeriesDescription"


def _candidates_by_role(
    series: Sequence[DicomSeries], rules: Mapping[str, Mapping[str, re.Pattern[str]]]
) -> tuple[dict[str, list[DicomSeries]], str]:
    """(role -> the series classified as it, a listing of every series with its role and reason)."""
    by_role: dict[str, list[DicomSeries]] = {}
    reasons: list[str] = []
    for s in series:
        role, reason = classify_series(s, rules)
        reasons.append(f"  - {s.summary()}: {role or 'no role'} ({reason})")
        if role is not None:
            by_role.setdefault(role, []).append(s)
    return by_role, "\n".join(reasons)


def select_dixon_series(
    series: Sequence[DicomSeries],
    rules: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    where: str | os.PathLike[str] | None = None,
) -> dict[str, DicomSeries]:
    """Pick one series per Dixon role among the series of one study.

    Args:
        series: the series of one study (:func:`scripts.io.dicom_series.scan_dicom_folder`).
        rules: user rules (see :func:`scripts.io.dicom_rules.load_rules`), raw or parsed.
        where: the folder named in messages (default: the series' scan folder).

    Returns:
        role -> series, for the roles found; they form a usable Dixon set (water + fat, in-phase +
        opposed-phase, or an FF map with in-phase).

    Raises:
        DixonInputError: two series for one role (both named, with how to write a rule), or no usable Dixon set
            (the message lists every series found with its ImageType, description and why it got no role).
    """
    parsed = rules if is_parsed(rules) else load_rules(rules)  # type: ignore[arg-type]
    folder = str(where if where is not None else (series[0].folder if series else "?"))
    by_role, listing = _candidates_by_role(series, parsed)
    for role, candidates in by_role.items():
        if len(candidates) > 1:
            names = "; ".join(c.summary() for c in candidates)
            example = json.dumps({role: {"SeriesNumber": f"^{candidates[0].header.get('SeriesNumber', 1)}$"}})
            raise DixonInputError(
                f"{folder}: {len(candidates)} series qualify as the {role} image: {names}. Give a rules file that "
                f"tells them apart, e.g. {example}. Series found:\n{listing}",
                folder,
            )
    selected = {role: c[0] for role, c in by_role.items()}
    if dixon_set_of(selected) is None:
        have = ", ".join(sorted(selected)) or "none"
        raise DixonInputError(
            f"{folder}: no usable Dixon set among the DICOM series (roles found: {have}); need water + fat, "
            f"in-phase + opposed-phase, or an FF map with an in-phase image. Series found:\n{listing}\n"
            'Name the series with a rules file, e.g. {"water": {"SeriesDescription": "_W$"}, '
            '"fat": {"SeriesDescription": "_F$"}}',
            folder,
        )
    return selected
