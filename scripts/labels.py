"""The one label table of the bundle (docs/design.md); every other module builds names and columns from it.

Left and right are the patient's, in RAS world coordinates (RAS+: +x points to the patient's right), never
array directions.
"""

from __future__ import annotations

__all__ = [
    "LABELS",
    "MUSCLES",
    "SIDES",
    "NUM_CLASSES",
    "label_value",
    "label_name",
    "muscle_and_side",
    "LEFT_RIGHT_SWAP",
    "channel_def",
]

MUSCLES: tuple[str, ...] = ("psoas", "iliacus", "quadratus_lumborum", "erector_spinae_multifidus")
SIDES: tuple[str, ...] = ("left", "right")

#: label value -> name; 0 is background. The numbers never change.
LABELS: dict[int, str] = {0: "background"}
for _i, _muscle in enumerate(MUSCLES):
    LABELS[2 * _i + 1] = f"{_muscle}_left"
    LABELS[2 * _i + 2] = f"{_muscle}_right"

NUM_CLASSES: int = len(LABELS)

#: label value -> the value of the same muscle on the other side (0 -> 0); used by left-right flips.
LEFT_RIGHT_SWAP: dict[int, int] = {0: 0}
for _v in range(1, NUM_CLASSES, 2):
    LEFT_RIGHT_SWAP[_v] = _v + 1
    LEFT_RIGHT_SWAP[_v + 1] = _v


def label_value(muscle: str, side: str) -> int:
    """Return the label value of ``muscle`` on ``side`` ("left" or "right")."""
    if muscle not in MUSCLES:
        raise ValueError(f"unknown muscle {muscle!r}; expected one of {MUSCLES}")
    if side not in SIDES:
        raise ValueError(f"unknown side {side!r}; expected one of {SIDES}")
    return 2 * MUSCLES.index(muscle) + 1 + SIDES.index(side)


def label_name(value: int) -> str:
    """Return the name of label ``value`` (for example ``"psoas_left"`` for 1)."""
    if value not in LABELS:
        raise ValueError(f"unknown label value {value}; expected 0-{NUM_CLASSES - 1}")
    return LABELS[value]


def muscle_and_side(value: int) -> tuple[str, str]:
    """Split a muscle label value into ``(muscle, side)``; background raises ``ValueError``."""
    if value < 1 or value >= NUM_CLASSES:
        raise ValueError(f"label value {value} is not a muscle; expected 1-{NUM_CLASSES - 1}")
    return MUSCLES[(value - 1) // 2], SIDES[(value - 1) % 2]


def channel_def() -> dict[str, str]:
    """The ``channel_def`` of the network output in metadata.json: channel index (as text) -> label name."""
    return {str(k): v for k, v in LABELS.items()}
