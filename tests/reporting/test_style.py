"""Tests of scripts.reporting.style: one colour per label, display names, side spellings."""

from __future__ import annotations

from scripts.labels import MUSCLES, NUM_CLASSES
from scripts.reporting.style import LABEL_COLOURS, MUSCLE_DISPLAY_NAMES, muscle_name, side_key


def test_every_label_and_muscle_has_a_colour_and_a_name() -> None:
    assert sorted(LABEL_COLOURS) == list(range(1, NUM_CLASSES))
    assert len(set(LABEL_COLOURS.values())) == len(LABEL_COLOURS)
    assert list(MUSCLE_DISPLAY_NAMES) == list(MUSCLES)


def test_side_key_and_muscle_name() -> None:
    assert (side_key("lr_mean"), side_key(" Mean "), side_key("Left")) == ("mean", "mean", "left")
    assert (muscle_name("psoas"), muscle_name("gluteus")) == ("Psoas", "gluteus")
