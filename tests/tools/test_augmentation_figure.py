"""Tests of the augmentation documentation figure (scripts/tools/augmentation_figure.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scripts.tools.augmentation_figure import augmentation_examples, save_augmentation_figure

from tests.transforms.synthetic_volumes import AFFINE_LPS, anatomy_data, phantom


@pytest.fixture(scope="module")
def anatomy() -> dict[str, Any]:
    """The six-subject anatomy and its model (built once per session, see ``anatomy_data``)."""
    return anatomy_data()


def test_augmentation_figure_writes_png(tmp_path: Path, anatomy: dict[str, Any]) -> None:
    img, lab = phantom(AFFINE_LPS)
    model_path = anatomy["model"].save(tmp_path / "m.npz")
    out = save_augmentation_figure(img, lab, str(tmp_path / "fig" / "aug.png"), model=str(model_path), dpi=40)
    data = Path(out).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_augmentation_figure_with_dixon_contrasts_has_more_rows(tmp_path: Path) -> None:
    img, lab = phantom(AFFINE_LPS)
    water, fat = img * 0.8, img * 0.2 + 1.0
    plain = save_augmentation_figure(img, lab, str(tmp_path / "plain.png"), dpi=30)
    dixon = save_augmentation_figure(img, lab, str(tmp_path / "dixon.png"), water=water, fat=fat, dpi=30)
    height = {p: int.from_bytes(Path(p).read_bytes()[20:24], "big") for p in (plain, dixon)}
    assert height[dixon] > height[plain]
    titles = [t for t, _ in augmentation_examples(dixon=True)]
    assert "Dixon contrast: fat image" in titles and "short field of view (z)" in titles
    with pytest.raises(ValueError, match="share the image's grid"):
        save_augmentation_figure(img, lab, str(tmp_path / "bad.png"), water=water[:, :-1], fat=fat[:, :-1])
