"""Tests of the stored anatomical-variability model (scripts/transforms/variability_model.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scripts.transforms.variability_model import AnatomicalVariabilityModel

INVALID = [
    (
        "model-shapes",
        lambda: AnatomicalVariabilityModel(
            np.zeros((2, 3, 4, 4, 4)), np.ones(3), np.eye(4), np.zeros(3), np.zeros((3, 4, 4, 4)), 3
        ),
        ValueError,
        r"eigenvalues_mm2 must have shape \(2,\)",
    ),
]


@pytest.mark.parametrize(("make", "error", "match"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_argument(make: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()
