"""The vocabulary of a normative reference: percentile keys, stratum levels, sides and age bands.

Every module of :mod:`scripts.normative` spells these the same way, so a reference built by
:mod:`scripts.normative.building` is read back by :mod:`scripts.normative.strata` without translation.

- Percentile keys are ``"p"`` plus the percentile: ``"p5"``, ``"p2.5"``.
- Sex and activity levels are compared in lower case, with ``f``/``woman`` read as ``female`` and ``m``/``man``
  as ``male``; ``"all"`` is the pooled level.
- Sides are ``left``, ``right`` or ``lr_mean`` (the mean of the left and right values, the paper's convention).
- Age bands are inclusive completed years ``"lo-hi"``: lo <= age < hi + 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "ALL",
    "LR_MEAN",
    "STRATUM_KEYS",
    "REQUIRED_PERCENTILES",
    "pkey",
    "parse_pkey",
    "is_number",
    "is_int",
    "norm_level",
    "norm_side",
    "band_label",
    "parse_band",
    "age_in_band",
    "sorted_table",
]

#: the pooled level of a stratum key
ALL = "all"
#: the side of the L/R mean
LR_MEAN = "lr_mean"
STRATUM_KEYS: tuple[str, ...] = ("sex", "age_band", "activity")
REQUIRED_PERCENTILES: tuple[float, ...] = (25.0, 50.0, 75.0)

_PKEY_RE = re.compile(r"^p(\d+(?:\.\d+)?)$")
_BAND_RE = re.compile(r"^(\d+)-(\d+)$")
_SEX_ALIASES: dict[str, str] = {
    "f": "female",
    "female": "female",
    "w": "female",
    "woman": "female",
    "women": "female",
    "m": "male",
    "male": "male",
    "man": "male",
    "men": "male",
}
_SIDE_ALIASES: dict[str, str] = {
    "left": "left",
    "l": "left",
    "right": "right",
    "r": "right",
    "mean": LR_MEAN,
    "lr_mean": LR_MEAN,
    "l/r mean": LR_MEAN,
    "lr": LR_MEAN,
    "both": LR_MEAN,
}


def pkey(q: float) -> str:
    """Percentile key of ``q``: 5 -> ``"p5"``, 2.5 -> ``"p2.5"``."""
    return f"p{float(q):g}"


def parse_pkey(key: str) -> float | None:
    """Percentile of a key such as ``"p25"``; ``None`` when the key is not a percentile key."""
    match = _PKEY_RE.match(key)
    return float(match.group(1)) if match else None


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool (JSON ``true`` must not pass as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def norm_level(value: Any, key: str) -> str:
    """Lower-case text of a stratum level; sex aliases (``F``, ``woman``) become ``female``/``male``."""
    text = str(value).strip().lower()
    if key == "sex":
        return _SEX_ALIASES.get(text, text)
    return text


def norm_side(value: Any) -> str:
    """``left``, ``right`` or ``lr_mean`` from any accepted spelling (``L``, ``mean``, ``both`` ...).

    Raises:
        ValueError: an unknown side.
    """
    text = str(value).strip().lower()
    if text not in _SIDE_ALIASES:
        raise ValueError(f"unknown side {value!r}; expected one of left, right, mean (or lr_mean)")
    return _SIDE_ALIASES[text]


def band_label(lo: int, hi: int) -> str:
    """Age-band label ``"lo-hi"``."""
    return f"{lo}-{hi}"


def parse_band(label: str) -> tuple[int, int] | None:
    """``(lo, hi)`` of an age-band label, ``None`` when it is not ``"lo-hi"``."""
    match = _BAND_RE.match(label)
    return (int(match.group(1)), int(match.group(2))) if match else None


def age_in_band(age: float, band: tuple[int, int]) -> bool:
    """Whether ``age`` (years) falls in the inclusive completed-year ``band``."""
    # Completed years: 29.9 is still in 20-29, 70.5 is in 60-70.
    return band[0] <= age < band[1] + 1


def sorted_table(entry: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Percentiles and values of one muscle entry, sorted by percentile."""
    pairs = sorted((q, float(v)) for k, v in entry.items() if (q := parse_pkey(k)) is not None)
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
