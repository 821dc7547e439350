"""The label contract (docs/design.md): muscles 1-8, vertebral context 9-14, their swaps and channel definitions."""

import pytest
from scripts.labels import (
    ALL_LABELS,
    LABELS,
    LEFT_RIGHT_SWAP,
    MUSCLE_VALUES,
    NUM_CLASSES,
    NUM_CLASSES_WITH_CONTEXT,
    VERTEBRAL_LABELS,
    channel_def,
    label_name,
    label_value,
    muscle_and_side,
)


def test_numbers_are_the_design_table() -> None:
    assert NUM_CLASSES == 9 and MUSCLE_VALUES == (1, 2, 3, 4, 5, 6, 7, 8)
    assert label_value("psoas", "left") == 1 and label_value("erector_spinae_multifidus", "right") == 8
    assert VERTEBRAL_LABELS == {
        9: "vertebral_body_L1",
        10: "vertebral_body_L2",
        11: "vertebral_body_L3",
        12: "vertebral_body_L4",
        13: "vertebral_body_L5",
        14: "sacrum",
    }
    assert NUM_CLASSES_WITH_CONTEXT == 15 and set(ALL_LABELS) == set(range(15))
    assert set(LABELS) == set(range(9))  # the muscle table the statistics are built over stays 0-8


def test_swap_pairs_muscles_and_keeps_the_midline() -> None:
    assert [LEFT_RIGHT_SWAP[v] for v in range(9)] == [0, 2, 1, 4, 3, 6, 5, 8, 7]
    assert all(LEFT_RIGHT_SWAP[v] == v for v in VERTEBRAL_LABELS)


def test_names_and_channel_defs() -> None:
    assert label_name(14) == "sacrum" and label_name(3) == "iliacus_left"
    with pytest.raises(ValueError, match="0-14"):
        label_name(15)
    with pytest.raises(ValueError, match="not a muscle"):
        muscle_and_side(9)  # a vertebral body has no side and is never a muscle
    assert list(channel_def()) == [str(v) for v in range(9)]
    assert channel_def(15)["12"] == "vertebral_body_L4" and len(channel_def(15)) == 15
    with pytest.raises(ValueError, match="9 or 15"):
        channel_def(10)
