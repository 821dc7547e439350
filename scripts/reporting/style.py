"""How labels, muscles and sides look to a reader: contour colours, display names, side spellings."""

from __future__ import annotations

from typing import Any

__all__ = ["LABEL_COLOURS", "CONTEXT_COLOUR", "MUSCLE_DISPLAY_NAMES", "side_key", "muscle_name"]

#: label value -> colour of its contour: 8 distinct colours, left and right of a muscle in one hue family.
LABEL_COLOURS: dict[int, str] = {
    1: "#1f77b4",
    2: "#17becf",  # psoas: blue, cyan
    3: "#2ca02c",
    4: "#bcbd22",  # iliacus: green, olive
    5: "#d62728",
    6: "#ff7f0e",  # quadratus lumborum: red, orange
    7: "#9467bd",
    8: "#e377c2",  # erector spinae + multifidus: purple, pink
}
#: contour colour of the vertebral context (labels 9-14, when the model outputs them): one neutral colour, so that
#: the spine reads as the anchor and never as a ninth muscle.
CONTEXT_COLOUR: str = "#ffffff"

#: muscle key of :mod:`scripts.labels` -> name shown to readers.
MUSCLE_DISPLAY_NAMES: dict[str, str] = {
    "psoas": "Psoas",
    "iliacus": "Iliacus",
    "quadratus_lumborum": "Quadratus lumborum",
    "erector_spinae_multifidus": "Erector spinae + multifidus",
}

_LR = ("lr_mean", "mean")


def side_key(side: Any) -> str:
    """``left``, ``right`` or ``mean``: the quantification's ``mean`` and the reference's ``lr_mean`` are one side."""
    text = str(side).strip().lower()
    return "mean" if text in _LR else text


def muscle_name(muscle: Any) -> str:
    """Display name of a muscle key; unknown keys are shown as they are."""
    return MUSCLE_DISPLAY_NAMES.get(str(muscle), str(muscle))
