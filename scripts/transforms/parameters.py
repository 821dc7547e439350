"""Argument validation shared by the training transforms, TorchIO style.

Every parser names the parameter, the axis (for per-axis values), the rule and the value received, so that a
wrong setting in ``configs/train.json`` fails at construction with a message that says what to change.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from monai.utils import ensure_tuple, ensure_tuple_rep

__all__ = [
    "is_number",
    "parse_probability",
    "parse_triplet",
    "parse_range",
    "parse_mode",
    "parse_padding_mode",
    "parse_world_axes",
    "parse_per_key",
]


_INTERP_MODES: dict[str, str] = {
    "bilinear": "bilinear",
    "linear": "bilinear",
    "trilinear": "bilinear",
    "nearest": "nearest",
}


_PADDING_MODES: tuple[str, ...] = ("zeros", "border", "reflection")


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def parse_probability(prob: Any, name: str = "prob") -> float:
    if not is_number(prob):
        raise TypeError(f"{name} must be a number in [0, 1], not {prob!r} ({type(prob).__name__})")
    if not 0.0 <= float(prob) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], not {prob!r}")
    return float(prob)


def parse_triplet(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    below: float | None = None,
    integer: bool = False,
    unit: str = "",
) -> tuple[float, float, float]:
    """A scalar or a 3-sequence (one per array axis) -> a checked triplet; ``minimum`` inclusive, ``below`` not."""
    values = (value,) * 3 if is_number(value) else tuple(value) if isinstance(value, Sequence) else None
    if values is None or len(values) != 3:
        raise ValueError(f"{name} must be a number or a sequence of 3 numbers (one per axis), not {value!r}")
    unit_txt = f" {unit}" if unit else ""
    for axis, v in enumerate(values):
        kind = "an integer" if integer else "a number"
        if not is_number(v) or (integer and float(v) != int(v)):
            raise ValueError(f"{name} for axis {axis} must be {kind}, not {v!r}")
        if minimum is not None and v < minimum:
            raise ValueError(f"{name} for axis {axis} must be {kind} >= {minimum}{unit_txt}, not {v!r}")
        if below is not None and v >= below:
            raise ValueError(f"{name} for axis {axis} must be {kind} < {below}{unit_txt}, not {v!r}")
    if integer:
        return tuple(int(v) for v in values)  # type: ignore[return-value]
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def parse_range(value: Any, name: str, *, minimum: float | None = None) -> tuple[float, float]:
    """A ``(low, high)`` pair with ``low <= high`` (a scalar ``v`` means ``(v, v)``)."""
    pair = (value, value) if is_number(value) else tuple(value) if isinstance(value, Sequence) else None
    if pair is None or len(pair) != 2 or not all(is_number(v) for v in pair):
        raise ValueError(f"{name} must be a number or a (low, high) pair of numbers, not {value!r}")
    low, high = float(pair[0]), float(pair[1])
    if low > high:
        raise ValueError(f"{name} must satisfy low <= high, not {value!r}")
    if minimum is not None and low < minimum:
        raise ValueError(f"{name} must have low >= {minimum}, not {value!r}")
    return low, high


def parse_mode(mode: Any, name: str = "mode") -> str:
    if not isinstance(mode, str):
        raise TypeError(f"{name} must be a string in {sorted(_INTERP_MODES)}, not {mode!r}")
    if mode.lower() not in _INTERP_MODES:
        raise ValueError(f"{name} must be one of {sorted(_INTERP_MODES)}, not {mode!r}")
    return _INTERP_MODES[mode.lower()]


def parse_padding_mode(padding_mode: Any, name: str = "padding_mode") -> str:
    if not isinstance(padding_mode, str):
        raise TypeError(f"{name} must be a string in {list(_PADDING_MODES)}, not {padding_mode!r}")
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"{name} must be one of {list(_PADDING_MODES)}, not {padding_mode!r}")
    return padding_mode


def parse_world_axes(world_axes: Any) -> tuple[int, ...]:
    axes = tuple(ensure_tuple(world_axes))
    if not axes or any(isinstance(a, bool) or a not in (0, 1, 2) for a in axes):
        raise ValueError(f"world_axes must be a non-empty sequence of 0, 1, 2, not {world_axes!r}")
    return axes


def parse_per_key(value: Any, n_keys: int, name: str, parser: Any) -> tuple[str, ...]:
    values = ensure_tuple_rep(value, n_keys) if isinstance(value, str) else tuple(value)
    if len(values) != n_keys:
        raise ValueError(f"{name} must be one value or one per key ({n_keys}), not {value!r}")
    return tuple(parser(v, name) for v in values)
