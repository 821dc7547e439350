"""Tests of scripts.reporting.montage_panels: slices, planes, window, and the panels file round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scripts.reporting.montage_panels import (
    _coronal_planes,
    _montage_slices,
    _window,
    load_panels,
    montage_panels,
    save_panels,
)


def test_montage_slices_follow_the_muscles_not_the_vertebral_context():
    lab = np.zeros((8, 8, 40), dtype=np.uint8)
    lab[2:4, 2:4, 10:20] = 7  # ES+MF on slices 10-19
    lab[4:6, 4:6, 0:40] = 12  # a "vertebral" column over the whole scan
    chosen = _montage_slices(lab, 5)
    assert chosen.min() >= 10 and chosen.max() <= 19 and chosen[0] > chosen[-1]  # superior first
    assert _montage_slices(np.zeros((4, 4, 9), np.uint8), 3).tolist() == [8, 4, 0]


def test_coronal_planes_pass_through_the_centroids_of_the_anterior_and_posterior_muscles():
    lab = np.zeros((10, 30, 5), dtype=np.uint8)
    lab[:, 20:23] = 1  # psoas: j 20-22, centroid 21
    lab[:, 4:6, :2] = 7  # ES+MF: j 4-5, centroid 4.5 -> 4 (round half to even, as Python's round)
    assert _coronal_planes(lab) == [("psoas + iliacus", 21), ("QL + ES/MF", 4)]
    assert _coronal_planes(np.zeros((4, 6, 2), np.uint8)) == [("centre", 3)]


def test_window_is_exact_on_small_volumes_and_within_a_grey_level_on_large_ones():
    rng = np.random.default_rng(0)
    small = rng.gamma(2.0, 100.0, (64, 64, 32)).astype(np.float32)
    small[:8] = 0.0  # background zeros are left out
    values = small[small != 0]
    assert _window(small) == pytest.approx(tuple(np.percentile(values, (1.0, 99.5))), rel=0, abs=0)
    large = rng.gamma(2.0, 100.0, (256, 256, 80)).astype(np.float32)  # 5.2 M voxels: a stride of 2
    lo, hi = np.percentile(large, (1.0, 99.5))
    got = _window(large)
    assert abs(got[0] - lo) < (hi - lo) / 256 and abs(got[1] - hi) < (hi - lo) / 256
    assert _window(np.zeros((4, 4, 4), np.float32)) == (0.0, 1.0)


def test_panels_round_trip_through_the_file_and_bad_files_are_refused(tmp_path: Path):
    img = np.random.default_rng(1).normal(100, 10, (30, 20, 12)).astype(np.float32)
    lab = np.zeros(img.shape, np.uint8)
    lab[5:10, 5:10, 2:9] = 2
    lab[20:25, 12:16, 3:8] = 9
    panels = montage_panels(img, np.diag([1.5, 1.5, 3.0, 1.0]), lab, n_slices=4, title="s1")
    path = save_panels(panels, tmp_path / "s1_report_inputs.npz", notes={"normative_attrs": {"reference_id": "r"}})
    back, notes = load_panels(path)
    for name in ("axial", "axial_labels", "coronal", "coronal_labels"):
        assert np.array_equal(getattr(back, name), getattr(panels, name)) and getattr(back, name).dtype == np.uint8
    assert (back.axial_titles, back.coronal_titles, back.marks, back.has_context, back.title) == (
        panels.axial_titles,
        panels.coronal_titles,
        panels.marks,
        True,
        "s1",
    )
    assert notes == {"normative_attrs": {"reference_id": "r"}}
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz.*--write_report later"):
        load_panels(bad)
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        load_panels(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="n_slices"):
        montage_panels(img, np.eye(4), lab, n_slices=0)


def test_panels_of_format_1_are_read_without_the_sagittal_plane_and_other_formats_refused(tmp_path: Path):
    """Runs of bundle 0.25.0 and before kept format "1" (no sagittal plane): their reports can still be drawn."""
    import json

    img = np.random.default_rng(2).normal(100, 10, (20, 16, 10)).astype(np.float32)
    panels = montage_panels(img, np.eye(4), np.zeros(img.shape, np.uint8), n_slices=2)
    texts = {
        "format": "1",
        "axial_titles": panels.axial_titles,
        "coronal_titles": panels.coronal_titles,
        "marks": panels.marks,
        "has_context": False,
        "title": "old",
        "notes": {},
    }
    arrays = {k: getattr(panels, k) for k in ("axial", "axial_labels", "coronal", "coronal_labels")}
    np.savez_compressed(tmp_path / "old.npz", texts=np.array(json.dumps(texts)), **arrays)
    old, _ = load_panels(tmp_path / "old.npz")
    assert old.sagittal is None and old.sagittal_z_mm is None and old.title == "old"
    np.savez_compressed(tmp_path / "future.npz", texts=np.array(json.dumps({**texts, "format": "9"})), **arrays)
    with pytest.raises(ValueError, match="panels format '9', this bundle reads '2'"):
        load_panels(tmp_path / "future.npz")
