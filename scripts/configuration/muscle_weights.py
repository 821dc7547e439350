"""``background_weight``: one number for every muscle, or one per muscle, read and checked.

A muscle's weight is how many times its probability must exceed the background's for a voxel to be called that
muscle (:mod:`scripts.pipeline.background_weight`). Given as a number (every muscle alike), a mapping such as
``{"psoas": 1.5, "iliacus": 1.5}`` (muscles left out keep 1), or either as command-line text
(``--background_weight 1.5``, ``--background_weight '{"psoas": 1.5}'``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from scripts.labels import MUSCLES

__all__ = ["MAX_BACKGROUND_WEIGHT", "muscle_weights"]

MAX_BACKGROUND_WEIGHT = 20.0
"""Largest accepted weight: at 20 a muscle needs a two-class probability above 0.95, beyond which labels vanish."""

_ACCEPTED = (
    f"a number from 1 (the plain argmax) to {MAX_BACKGROUND_WEIGHT:g}, or a mapping of muscle names "
    f"({', '.join(MUSCLES)}) to such numbers"
)


def _weight(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be {_ACCEPTED}, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be {_ACCEPTED}, got {value!r}") from None
    if not math.isfinite(number) or not 1.0 <= number <= MAX_BACKGROUND_WEIGHT:
        raise ValueError(
            f"{name} = {value!r} is out of range: expected {_ACCEPTED}; below 1 the labels would grow into their "
            "surroundings, above it they vanish"
        )
    return number


def muscle_weights(value: Any, name: str = "background_weight") -> dict[str, float]:
    """``value`` as muscle name -> weight for all four muscles (both sides share their muscle's weight).

    Raises:
        ValueError: naming ``name``, the value and what is accepted (a weight out of [1, 20], an unknown muscle).
    """
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{name} must be {_ACCEPTED}; {value!r} is not valid JSON") from None
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in MUSCLES)
        if unknown:
            raise ValueError(f"{name}: {', '.join(unknown)} is not a muscle; expected {_ACCEPTED}")
        return {m: _weight(value.get(m, 1.0), f"{name}[{m!r}]") for m in MUSCLES}
    number = _weight(value, name)
    return dict.fromkeys(MUSCLES, number)
