"""Phantom vs the real MuscleMap lumbar sample: the comparison figure and the phantom gallery are drawn and saved."""

from __future__ import annotations

import pytest
from scripts.studies.phantom_real_figures import plot_comparison, plot_gallery
from scripts.studies.phantom_real_measures import volume_metrics
from scripts.studies.phantom_real_volumes import phantom_volume

from tests.studies.phantom_real_cases import real_sample

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def phantom():
    # one "low" geometry subject (2 x 2 x 5 mm, ~2 s) with the images the gallery shows
    return phantom_volume(0, "low", extra_keys=("water", "fat", "ff"))


def test_comparison_figure_has_the_slices_coronal_planes_and_area_profiles(shared_dir, phantom, tmp_path):
    real = real_sample()
    out = tmp_path / "figs" / "phantom_vs_real.png"
    fig = plot_comparison(real, phantom, volume_metrics(real, None), [volume_metrics(phantom)], out, dpi=30)
    assert out.read_bytes()[:8] == PNG_MAGIC
    # 3 axial rows and a coronal row of real | phantom, then one area profile per compared muscle
    assert len(fig.axes) == 4 * 2 + 3
    assert [ax.get_title() for ax in fig.axes[-3:]] == ["psoas", "QL", "ES+MF"]


def test_gallery_shows_every_image_axially_and_coronally(phantom, tmp_path):
    out = tmp_path / "phantom_gallery.png"
    fig = plot_gallery([phantom], out, dpi=30)
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert len(fig.axes) == 2 * 5  # in-phase, water, fat, FF, labels; axial over coronal
    assert fig.axes[0].get_title().startswith("seed 0 inphase, z_rel ")
