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
    "MUSCLE_VALUES",
    "VERTEBRAL_LABELS",
    "ALL_LABELS",
    "NUM_CLASSES_WITH_CONTEXT",
    "channel_def",
]

MUSCLES: tuple[str, ...] = ("psoas", "iliacus", "quadratus_lumborum", "erector_spinae_multifidus")
SIDES: tuple[str, ...] = ("left", "right")

#: label value -> name; 0 is background. The numbers never change.
LABELS: dict[int, str] = {0: "background"}
for _i, _muscle in enumerate(MUSCLES):
    LABELS[2 * _i + 1] = f"{_muscle}_left"
    LABELS[2 * _i + 2] = f"{_muscle}_right"

#: number of muscle classes including background (0-8): the statistics, tables and swaps are built over these.
NUM_CLASSES: int = len(LABELS)
#: the muscle label values (1-8).
MUSCLE_VALUES: tuple[int, ...] = tuple(range(1, NUM_CLASSES))

#: vertebral context, after the muscles (docs/design.md): vertebral bodies L1-L5 and the sacrum. A network may
#: output them (15 channels) or not (9); muscle statistics never include them.
VERTEBRAL_LABELS: dict[int, str] = {
    **{NUM_CLASSES + i: f"vertebral_body_L{i + 1}" for i in range(5)},
    NUM_CLASSES + 5: "sacrum",
}
#: every label value a label map of the bundle can hold -> its name.
ALL_LABELS: dict[int, str] = {**LABELS, **VERTEBRAL_LABELS}
#: output channels of a network that also segments the vertebral context (0-14).
NUM_CLASSES_WITH_CONTEXT: int = len(ALL_LABELS)

#: label value -> the value of the same muscle on the other side (0 -> 0); used by left-right flips.
LEFT_RIGHT_SWAP: dict[int, int] = {0: 0}
for _v in range(1, NUM_CLASSES, 2):
    LEFT_RIGHT_SWAP[_v] = _v + 1
    LEFT_RIGHT_SWAP[_v + 1] = _v
for _v in VERTEBRAL_LABELS:  # midline structures mirror onto themselves
    LEFT_RIGHT_SWAP[_v] = _v


def label_value(muscle: str, side: str) -> int:
    """Return the label value of ``muscle`` on ``side`` ("left" or "right")."""
    if muscle not in MUSCLES:
        raise ValueError(f"unknown muscle {muscle!r}; expected one of {MUSCLES}")
    if side not in SIDES:
        raise ValueError(f"unknown side {side!r}; expected one of {SIDES}")
    return 2 * MUSCLES.index(muscle) + 1 + SIDES.index(side)


def label_name(value: int) -> str:
    """Return the name of label ``value`` (for example ``"psoas_left"`` for 1, ``"sacrum"`` for 14)."""
    if value not in ALL_LABELS:
        raise ValueError(f"unknown label value {value}; expected 0-{NUM_CLASSES_WITH_CONTEXT - 1}")
    return ALL_LABELS[value]


def muscle_and_side(value: int) -> tuple[str, str]:
    """Split a muscle label value into ``(muscle, side)``; background raises ``ValueError``."""
    if value < 1 or value >= NUM_CLASSES:
        raise ValueError(f"label value {value} is not a muscle; expected 1-{NUM_CLASSES - 1}")
    return MUSCLES[(value - 1) // 2], SIDES[(value - 1) % 2]


def channel_def(num_classes: int = NUM_CLASSES) -> dict[str, str]:
    """The ``channel_def`` of a network with ``num_classes`` outputs (9: muscles, 15: with the vertebral context),
    as metadata.json writes it: channel index (as text) -> label name."""
    if num_classes not in (NUM_CLASSES, NUM_CLASSES_WITH_CONTEXT):
        raise ValueError(f"num_classes must be {NUM_CLASSES} or {NUM_CLASSES_WITH_CONTEXT}, not {num_classes!r}")
    return {str(k): v for k, v in ALL_LABELS.items() if k < num_classes}
