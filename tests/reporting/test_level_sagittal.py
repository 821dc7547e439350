"""Tests of scripts.reporting.level_sagittal: the level bounds on the mid-sagittal panel, rows from world z."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scripts.reporting.level_sagittal import level_bands, level_sagittal, level_sagittal_figure
from scripts.reporting.montage_panels import load_panels, montage_panels, save_panels

from tests.quantification.level_cases import affine as level_affine
from tests.quantification.level_cases import as_lps, level_ff, spine_label


def _table(bounds: dict[str, tuple[float, float]], status: str = "ok") -> pd.DataFrame:
    rows = [
        {"level": name, "label": v, "level_z_low_mm": lo, "level_z_high_mm": hi, "level_status": status}
        for name, (lo, hi) in bounds.items()
        for v in (1, 2)  # two muscle sides per level, as the per-level table has
    ]
    return pd.DataFrame(rows)


def test_bands_map_world_z_to_rows_clipped_to_the_panel():
    z = np.linspace(200.0, 0.0, 101)  # 2 mm per row, superior at the top
    bands = level_bands(_table({"L1": (190.0, 230.0), "L4": (40.0, 80.0), "L5": (-60.0, -10.0)}), z)
    assert [b["level"] for b in bands] == ["L1", "L4"]  # one band per level; L5 lies wholly below the panel
    assert bands[1]["top"] == pytest.approx(60.0) and bands[1]["bottom"] == pytest.approx(80.0)
    assert bands[0]["top"] == pytest.approx(0.0) and bands[0]["bottom"] == pytest.approx(5.0)  # cut by the edge
    # slices stored inferior first give the same rows
    assert level_bands(_table({"L4": (40.0, 80.0)}), z[::-1])[0]["top"] == pytest.approx(40.0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        level_bands(_table({"L4": (40.0, 80.0)}), np.array([1.0]))


@pytest.mark.parametrize("lps", [False, True])
def test_the_sagittal_plane_passes_through_the_bodies_and_each_body_lies_in_its_band(lps):
    lab, aff = spine_label(), level_affine()
    img = (1000.0 * (1.0 + level_ff())).astype(np.float32)
    z_of_k = aff[2, 3] + aff[2, 2] * np.arange(lab.shape[2])  # world z of each slice before any flip
    truth_lab = lab
    if lps:  # stored the other way round (and slices reversed): the panel must not change
        img, _ = as_lps(img, aff, flip_z=True)
        lab, aff = as_lps(lab, aff, flip_z=True)
    panels = montage_panels(img, aff, lab, n_slices=2)
    assert (
        panels.sagittal.shape == panels.sagittal_labels.shape
        and panels.sagittal_z_mm.shape[0] == panels.sagittal.shape[0]
    )
    assert "vertebral bodies" in panels.sagittal_title
    assert {9, 10, 11, 12, 13, 14} <= set(np.unique(panels.sagittal_labels))
    # the top row lies within the top slice's upper half, and z falls steadily down the panel
    half_slice = 0.5 * abs(aff[2, 2])
    assert z_of_k.max() < panels.sagittal_z_mm[0] < z_of_k.max() + half_slice
    assert np.all(np.diff(panels.sagittal_z_mm) < 0)
    # each body's true z extent (its voxels, half a slice beyond their centres) becomes a band that holds exactly
    # the body's rows on the panel
    bounds, half = {}, half_slice
    for v, name in zip(range(9, 14), ("L1", "L2", "L3", "L4", "L5")):
        ks = np.nonzero((truth_lab == v).any(axis=(0, 1)))[0]
        bounds[name] = (float(z_of_k[ks].min()) - half, float(z_of_k[ks].max()) + half)
    for band, v in zip(level_bands(_table(bounds), panels.sagittal_z_mm), range(9, 14)):
        rows = np.nonzero((panels.sagittal_labels == v).any(axis=1))[0]
        assert band["top"] - 0.5 <= rows.min() and rows.max() <= band["bottom"] + 0.5, (band, rows.min(), rows.max())
        assert rows.max() - rows.min() + 1 == pytest.approx(band["bottom"] - band["top"], abs=1.0)


def test_the_picture_is_drawn_and_old_panels_without_the_plane_are_refused(tmp_path):
    lab, aff = spine_label(), level_affine()
    panels = montage_panels((1000.0 * (1.0 + level_ff())).astype(np.float32), aff, lab, n_slices=2)
    table = _table({"L3": (60.0, 100.0)}, status="uncertain")
    fig = level_sagittal_figure(panels, table, {"anchor": "stated lowest body L5"})
    # the title is wrapped to the figure's width: compare its words
    assert "levels UNCERTAIN, named from the stated lowest body L5" in " ".join(
        fig.axes[0].get_title(loc="left").split()
    )
    assert [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("L")] == ["L3"]
    info = {"anchor": "stated lowest body L5", "naming": {"source": "FF map"}}
    title = " ".join(level_sagittal_figure(panels, table, info).axes[0].get_title(loc="left").split())
    assert "named from the stated lowest body L5, bodies found in the FF map" in title
    out = level_sagittal(panels, table, tmp_path / "s_levels_sagittal.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # saved and read back: the same plane (what --write_report later keeps)
    back, _ = load_panels(save_panels(panels, tmp_path / "p.npz"))
    np.testing.assert_array_equal(back.sagittal_labels, panels.sagittal_labels)
    np.testing.assert_allclose(back.sagittal_z_mm, panels.sagittal_z_mm)
    assert back.sagittal_title == panels.sagittal_title
    old = type(panels)(**{**panels.__dict__, "sagittal": None, "sagittal_labels": None, "sagittal_z_mm": None})
    with pytest.raises(ValueError, match="no sagittal plane"):
        level_sagittal_figure(old, table)
