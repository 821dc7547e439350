"""Known-answer tests of the per-level statistics on the box spine (tests/quantification/level_cases.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scripts.quantification.level_statistics import LEVEL_COLUMNS, level_statistics
from scripts.quantification.levels import Level, LevelAssignment, assign_levels

from tests.quantification.level_cases import affine, as_lps, crop_z, level_ff, spine_label


def _row(table, level, muscle, side):
    sel = table[(table.level == level) & (table.muscle == muscle) & (table.side == side)]
    assert len(sel) == 1
    return sel.iloc[0]


def _table(lab, aff, ff, ff_aff, **kw):
    return level_statistics(lab, aff, ff, ff_aff, assign_levels(lab, aff), subject="s1", **kw)


def test_ff_volume_and_csa_per_level():
    lab, aff, ff = spine_label(), affine(), level_ff()
    t = _table(lab, aff, ff, aff)
    assert list(t.columns) == list(LEVEL_COLUMNS)
    assert len(t) == 5 * 8
    for j, level in enumerate(("L1", "L2", "L3", "L4", "L5")):
        assert _row(t, level, "psoas", "left").ff_mean_pct == pytest.approx(10.0 + 2.0 * j, abs=1e-4)
        assert _row(t, level, "psoas", "right").ff_median_pct == pytest.approx(20.0, abs=1e-4)
    l3 = _row(t, "L3", "psoas", "left")
    # L3 spans 91-125 mm: 17 slices of 4 x 6 voxels of 8 mm^3; the box's area is 0.96 cm^2
    assert l3.n_voxels == 17 * 24 and l3.volume_ml == pytest.approx(17 * 24 * 8 / 1000)
    assert l3.csa_mean_cm2 == pytest.approx(0.96) and l3.csa_mid_cm2 == pytest.approx(0.96)
    l1 = _row(t, "L1", "psoas", "left")  # psoas ends at z = 178 mm, inside L1 (159-193): 10 of 17 slices
    assert l1.csa_mean_cm2 == pytest.approx(0.96 * 10 / 17) and l1.csa_mid_cm2 == pytest.approx(0.96)
    assert set(t[t.label.isin([1, 2, 7, 8])].status) == {"ok"} and set(t.level_status) == {"ok"}
    absent = t[t.label.isin([3, 4, 5, 6])]
    assert set(absent.status) == {"missing"} and absent.ff_mean_pct.isna().all() and (absent.volume_ml == 0).all()
    assert _row(t, "L5", "erector_spinae_multifidus", "right").ff_mean_pct == pytest.approx(40.0, abs=1e-4)


def test_lps_storage_gives_the_same_table():
    lab, aff, ff = spine_label(), affine(), level_ff()
    ref = _table(lab, aff, ff, aff)
    lab2, aff2 = as_lps(lab, aff, flip_z=True)
    ff2, _ = as_lps(ff, aff, flip_z=True)
    got = _table(lab2, aff2, ff2, aff2)
    cols = ["ff_mean_pct", "ff_median_pct", "volume_ml", "csa_mean_cm2", "csa_mid_cm2", "n_voxels"]
    np.testing.assert_allclose(got[cols].to_numpy(float), ref[cols].to_numpy(float), rtol=1e-9)


def test_truncated_level_csa_uses_the_covered_height():
    lab, aff = crop_z(spine_label(), affine(), 0, 56)
    ff, _ = crop_z(level_ff(), affine(), 0, 56)
    t = _table(lab, aff, ff, aff)
    l3 = _row(t, "L3", "psoas", "left")
    # L3 91-125 mm, field of view up to 111 mm: 20 mm covered, psoas slices 92-110 mm (10)
    assert l3.level_coverage == pytest.approx(20.0 / 34.0)
    assert l3.csa_mean_cm2 == pytest.approx(10 * 24 * 8 / 1000 / 2.0)
    assert l3.csa_mid_cm2 == pytest.approx(0.96)  # the mid-plane (108 mm) is inside the field of view
    lab, aff = crop_z(spine_label(), affine(), 0, 50)  # up to 99 mm: L3's mid-plane is outside
    ff, _ = crop_z(level_ff(), affine(), 0, 50)
    assert math.isnan(_row(_table(lab, aff, ff, aff), "L3", "psoas", "left").csa_mid_cm2)


def test_small_level_sides_and_border_trim():
    lab, aff, ff = spine_label(), affine(), level_ff()
    t = _table(lab, aff, ff, aff, min_volume_ml=2.0)
    l1 = _row(t, "L1", "psoas", "left")  # 10 slices x 24 voxels x 8 mm^3 = 1.92 mL < 2 mL
    assert l1.status == "too_small" and math.isnan(l1.ff_mean_pct) and l1.volume_ml == pytest.approx(1.92)
    ff_fat_edge = ff.copy()
    ff_fat_edge[2, 4:10, 20:90] = 0.75  # psoas left's outer column is mostly fat, next to fat: trimmed
    t = _table(lab, aff, ff_fat_edge, aff, border_trim_ff=0.7)
    l3 = _row(t, "L3", "psoas", "left")
    assert l3.n_trimmed_voxels == 17 * 6 and l3.n_voxels == 17 * 18
    assert l3.ff_mean_pct == pytest.approx(14.0, abs=1e-4)


def test_percent_ff_is_refused():
    lab, aff = spine_label(), affine()
    with pytest.raises(ValueError, match="must be a fraction"):
        _table(lab, aff, level_ff() * 100.0, aff)


def _tapered_case():
    """Psoas left (1) on 4 mm slices (centres 0-76 mm, faces -2 to 78 mm) with 10 + k voxels of 1 x 1 mm in slice k,
    and two levels meeting at 41 mm, a quarter into slice 10 (39-43 mm)."""
    lab = np.zeros((20, 4, 20), np.uint8)
    for k in range(20):
        lab[: 10 + k // 2, : 1 + k % 2, k] = 1
    aff = np.diag([1.0, 1.0, 4.0, 1.0])
    levels = [Level("L2", 41.0, 78.0, 1.0, "ok"), Level("L3", -2.0, 41.0, 1.0, "ok")]
    assignment = LevelAssignment(levels, [], "ok", [], "mid_disc", (-2.0, 78.0))
    return lab, aff, np.full(lab.shape, 0.1, np.float32), assignment


def test_a_slice_straddling_a_bound_is_shared_by_volume():
    lab, aff, ff, assignment = _tapered_case()
    t = level_statistics(lab, aff, ff, aff, assignment)
    per_slice = (lab == 1).sum(axis=(0, 1)) * 4 / 1000  # mL per slice
    l3, l2 = _row(t, "L3", "psoas", "left"), _row(t, "L2", "psoas", "left")
    # slices 0-9 whole, slice 10 (centre 40 mm) for (41 - 38) / 4 = 0.75 of its slab
    assert l3.volume_ml == pytest.approx(per_slice[:10].sum() + 0.75 * per_slice[10])
    assert l2.volume_ml == pytest.approx(0.25 * per_slice[10] + per_slice[11:].sum())
    assert l3.volume_ml + l2.volume_ml == pytest.approx(per_slice.sum())
    assert l3.csa_mean_cm2 == pytest.approx(l3.volume_ml / 4.3)
    # counts and FF still follow the centres: slice 10 (40 mm < 41) is in L3
    assert l3.n_voxels == int((lab[..., :11] == 1).sum()) and l2.n_voxels == int((lab[..., 11:] == 1).sum())


def test_mid_plane_area_is_interpolated_between_slices():
    lab, aff, ff, assignment = _tapered_case()
    t = level_statistics(lab, aff, ff, aff, assignment)
    area = (lab == 1).sum(axis=(0, 1)) / 100.0  # cm^2 per slice (1 mm^2 voxels)
    # L3's mid-plane 19.5 mm lies between slices 4 (16 mm) and 5 (20 mm), 7/8 of the way to slice 5
    assert _row(t, "L3", "psoas", "left").csa_mid_cm2 == pytest.approx(area[4] / 8 + 7 * area[5] / 8)
    # L2's mid-plane 59.5 mm: between slices 14 (56) and 15 (60)
    assert _row(t, "L2", "psoas", "left").csa_mid_cm2 == pytest.approx(area[14] / 8 + 7 * area[15] / 8)
    # a mid-plane between the last slice's centre and the face of the field of view takes that slice alone
    edge = LevelAssignment([Level("L1", 74.5, 78.0, 1.0, "ok")], [], "ok", [], "mid_disc", (-2.0, 78.0))
    assert _row(level_statistics(lab, aff, ff, aff, edge), "L1", "psoas", "left").csa_mid_cm2 == pytest.approx(area[19])
