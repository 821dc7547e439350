"""Known-answer tests of the level assignment on box spines (tests/quantification/level_cases.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.grid import map_labels_to_grid
from scripts.quantification.levels import assign_levels, field_of_view_z, has_vertebral_context, measure_bodies

from tests.quantification.level_cases import BODIES, SHAPE, TRUE_BOUNDS, affine, as_lps, crop_z, spine_label


def _bounds(res) -> dict[str, tuple[float, float]]:
    return {lv.name: (lv.z_low, lv.z_high) for lv in res.levels}


def test_complete_spine_is_ok_with_mid_disc_bounds():
    res = assign_levels(spine_label(), affine())
    assert res.status == "ok" and res.reasons == []
    assert [lv.name for lv in res.levels] == ["L1", "L2", "L3", "L4", "L5"]
    for name, (lo, hi) in TRUE_BOUNDS.items():
        got = _bounds(res)[name]
        assert got == pytest.approx((lo, hi), abs=1e-9), name
    assert all(lv.coverage == 1.0 and lv.status == "ok" for lv in res.levels)
    assert res.estimates == pytest.approx({"body_height": 26.0, "disc_gap": 8.0})
    assert [b.name for b in res.bodies] == ["L1", "L2", "L3", "L4", "L5", "sacrum"]
    assert res.bodies[-1].cut_low and not res.bodies[-1].cut_high


@pytest.mark.parametrize("flip_z", [False, True])
def test_lps_storage_gives_the_same_bounds(flip_z):
    lab, aff = as_lps(spine_label(), affine(), flip_z=flip_z)
    res = assign_levels(lab, aff)
    assert res.status == "ok"
    for name, (lo, hi) in TRUE_BOUNDS.items():
        assert _bounds(res)[name] == pytest.approx((lo, hi), abs=1e-9)
    assert field_of_view_z(aff, lab.shape) == pytest.approx((-1.0, 199.0))


def test_anisotropic_and_oblique_grids_agree_within_the_slice_step():
    src, src_aff = spine_label(), affine()
    # anisotropic 1.5 x 1.5 x 4 mm, and the same tilted by 8 degrees about x (oblique axial slices)
    aniso = np.diag([1.5, 1.5, 4.0, 1.0])
    aniso[:3, 3] = [0.25, 0.25, 0.0]
    t = np.deg2rad(8.0)
    rot = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    oblique = aniso.copy()
    oblique[:3, :3] = rot @ aniso[:3, :3]
    oblique[:3, 3] = [0.25, 8.0, -4.0]
    for aff, shape in ((aniso, (26, 26, 50)), (oblique, (26, 30, 52))):
        lab = map_labels_to_grid(src, src_aff, shape, aff)
        res = assign_levels(lab, aff)
        assert res.status == "ok", res.reasons
        for name, (lo, hi) in TRUE_BOUNDS.items():
            got = _bounds(res)[name]
            assert abs(got[0] - lo) <= 3.0 and abs(got[1] - hi) <= 3.0, (name, got)


def test_l2_to_l5_without_sacrum_keeps_names_and_is_uncertain():
    lab, aff = crop_z(spine_label(), affine(), 12, 80)
    res = assign_levels(lab, aff)
    assert [lv.name for lv in res.levels] == ["L2", "L3", "L4", "L5"]  # L2 is never called L1
    assert res.status == "uncertain" and all(lv.status == "uncertain" for lv in res.levels)
    assert any("sacrum is not in the label map" in r for r in res.reasons)
    for name in ("L3", "L4"):
        assert _bounds(res)[name] == pytest.approx(TRUE_BOUNDS[name])


def test_field_of_view_cut_through_a_body_completes_it_and_reports_coverage():
    lab, aff = crop_z(spine_label(), affine(), 0, 56)  # sacrum, L5, L4 and the caudal 16 mm of L3
    res = assign_levels(lab, aff)
    assert res.status == "ok"
    assert [lv.name for lv in res.levels] == ["L3", "L4", "L5"]
    l3 = res.levels[0]
    assert (l3.z_low, l3.z_high) == pytest.approx(TRUE_BOUNDS["L3"])  # cranial end from the mean height + gap
    assert l3.coverage == pytest.approx((111.0 - 91.0) / 34.0)
    assert any("cut by the field of view" in n for n in l3.notes)
    assert res.levels[1].coverage == 1.0


def test_two_bodies_called_l3_are_uncertain():
    bodies = dict(BODIES)
    bodies[10] = (65, 78)
    lab = spine_label(bodies)
    lab[8:12, 4:9, 65:78] = 11  # L2 labelled L3 too: L3 in two pieces, L2 missing
    res = assign_levels(lab, affine())
    assert res.status == "uncertain"
    assert any("L3 is in 2 separate pieces" in r for r in res.reasons)
    assert any("no L2 between L1 and L3" in r for r in res.reasons)


def test_reversed_order_is_uncertain():
    bodies = dict(BODIES)
    bodies[10], bodies[11] = BODIES[11], BODIES[10]
    res = assign_levels(spine_label(bodies), affine())
    assert res.status == "uncertain"
    assert any("cranio-caudal order is L1, L3, L2, L4, L5, sacrum" in r for r in res.reasons)


def test_shifted_names_above_the_sacrum_are_uncertain():
    # the network calls L5 "L4", L4 "L3" ...: the sacrum anchor catches the shift
    shifted = {14: BODIES[14], 12: BODIES[13], 11: BODIES[12], 10: BODIES[11], 9: BODIES[10]}
    res = assign_levels(spine_label(shifted), affine())
    assert res.status == "uncertain"
    assert any("no L5 between L4 and sacrum" in r for r in res.reasons)


def test_implausible_height_and_gap_are_reported():
    bodies = dict(BODIES)
    bodies[11] = (46, 63)  # L3 34 mm high, 4 mm gaps around it: plausible
    bodies[9] = (86, 95)  # L1 18 mm high, 16 mm gap below: implausible height, plausible gap
    res = assign_levels(spine_label(bodies), affine())
    assert res.reasons == ["L1 is 18 mm high (plausible 20-40 mm)"]
    far = dict(BODIES)
    far[9] = (90, 100)  # cut at the top: its height is not judged, but the 24 mm gap is
    res = assign_levels(spine_label(far), affine())
    assert res.reasons == ["24 mm between L1 and L2 (a disc: 1 to 20 mm)"]


@pytest.mark.parametrize(("top", "status"), [(15, "ok"), (23, "uncertain")])
def test_the_sacrum_may_reach_up_beside_l5_by_10_mm(top, status):
    """A spine network's sacrum class running up behind the L5/S1 disc to z index ``top`` (2 mm slices; L5 starts at
    14): -4 mm between L5 and the sacrum is a leak, accepted; -20 mm is not."""
    lab = spine_label()
    lab[8:12, 9:12, 10 : top + 1] = 14
    res = assign_levels(lab, affine())
    assert res.status == status
    if status != "ok":
        assert "-20 mm between L5 and sacrum (a disc: -10 to 20 mm)" in res.reasons


def test_mid_body_rule_gives_disc_centred_segments():
    res = assign_levels(spine_label(), affine(), rule="mid_body")
    names = [lv.name for lv in res.levels]
    assert names == ["T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    seg = {lv.name: (lv.z_low, lv.z_high) for lv in res.levels}
    assert seg["L3-L4"] == pytest.approx((74.0, 108.0))  # mid-planes of L4 (74) and L3 (108)
    assert seg["L5-S1"] == pytest.approx((18.0 - 13.0 + 1.0, 40.0))  # S1 mid: sacrum top 19 - 13
    assert seg["T12-L1"] == pytest.approx((176.0, 210.0))
    with pytest.raises(ValueError, match="rule must be one of"):
        assign_levels(spine_label(), affine(), rule="endplate")


def test_no_vertebral_labels_gives_none():
    lab = spine_label(bodies={})
    assert not has_vertebral_context(lab)
    assert assign_levels(lab, affine()) is None


def test_measure_bodies_reads_small_specks_as_one_piece():
    lab = spine_label()
    lab[0, 0, 70] = 11  # one stray voxel of L3 far away: below 10 % of the body, not a second piece
    l3 = next(b for b in measure_bodies(lab, affine()) if b.name == "L3")
    assert l3.n_pieces == 1 and l3.n_voxels == 4 * 5 * 13 + 1
    assert (l3.z_low, l3.z_high) == (95.0, 121.0)
    assert SHAPE[2] == 100


def test_a_sacrum_alone_gives_no_level_and_says_so():
    lab = np.zeros((4, 4, 30), np.uint8)
    lab[..., :10] = 14
    res = assign_levels(lab, np.eye(4))
    assert res.levels == [] and res.status == "uncertain"
    assert any("only the sacrum" in r for r in res.reasons)
