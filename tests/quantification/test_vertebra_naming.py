"""Known-answer tests of the sacrum-anchored naming of vertebral bodies on the box spine of level_cases.py.

The box spine (2 mm voxels): sacrum z index 0-9, L5 14-26, L4 31-43, L3 48-60, L2 65-77, L1 82-94 (8 mm discs).
"""

from __future__ import annotations

import numpy as np
import pytest
from scripts.quantification.levels import assign_levels
from scripts.quantification.vertebra_naming import count_bodies_from_sacrum, name_bodies_from_sacrum

from tests.quantification.level_cases import BODIES, TRUE_BOUNDS, affine, as_lps, cut_above_sacrum, spine_label

TRUE_NAMES = {13: 14 + 6, 12: 31 + 6, 11: 48 + 6, 10: 65 + 6, 9: 82 + 6}  # value -> a z index inside that body


def _named(lab: np.ndarray) -> dict[int, int]:
    """value found at the middle of each true body (x 9, y 6)."""
    return {v: int(lab[9, 6, k]) for v, k in TRUE_NAMES.items()}


def test_correct_names_are_confirmed_and_nothing_changes():
    lab = spine_label()
    out, rec = name_bodies_from_sacrum(lab, affine())
    assert rec.status == "confirmed" and rec.renamed == [] and rec.reasons == []
    np.testing.assert_array_equal(out, lab)


def test_names_one_level_off_are_counted_back_from_the_sacrum():
    # the network's typical error: every body named one level too high, the top two both "L1"
    shifted = {14: BODIES[14], 12: BODIES[13], 11: BODIES[12], 10: BODIES[11], 9: BODIES[10]}
    lab = spine_label(shifted)
    lab[8:12, 4:9, BODIES[9][0] : BODIES[9][1]] = 9
    out, rec = name_bodies_from_sacrum(lab, affine())
    assert rec.status == "renamed"
    assert rec.renamed == ["L4 -> L5", "L3 -> L4", "L2 -> L3", "L1 -> L2"]
    assert _named(out) == {v: v for v in TRUE_NAMES}
    np.testing.assert_array_equal(out, spine_label())
    assert assign_levels(out, affine()).status == "ok"


def test_a_body_split_between_two_names_becomes_one_body():
    lab = spine_label()
    z0, z1 = BODIES[11]
    lab[8:12, 4:9, z0 : (z0 + z1) // 2] = 12  # the lower half of L3 called L4 as well
    lab[8:12, 4:9, BODIES[12][0] : BODIES[12][1]] = 13  # and L4 called L5, L5 called L5: a clash
    out, rec = name_bodies_from_sacrum(lab, affine())
    assert rec.status == "renamed" and _named(out) == {v: v for v in TRUE_NAMES}
    np.testing.assert_array_equal(out, spine_label())
    assert "L5 -> L4" in rec.renamed and "L4+L3 -> L3" in rec.renamed


def test_two_bodies_given_one_name_are_split_at_the_disc():
    lab = spine_label()
    lab[8:12, 4:9, BODIES[12][0] : BODIES[11][1]] = 0
    lab[8:12, 4:9, BODIES[12][0] : BODIES[12][1]] = 11  # L4 and L3 both "L3", joined through a thin disc
    lab[8:12, 4:9, BODIES[11][0] : BODIES[11][1]] = 11
    lab[9:11, 5:7, BODIES[12][1] : BODIES[11][0]] = 11
    out, rec = name_bodies_from_sacrum(lab, affine())
    assert rec.status == "renamed" and _named(out) == {v: v for v in TRUE_NAMES}
    # every voxel of the joined piece keeps a body label (the disc part goes with the body below or above)
    assert ((out > 0) == (lab > 0)).all()


def test_no_sacrum_or_a_missing_body_keeps_the_network_names():
    lab = spine_label()
    lab[lab == 14] = 0
    out, rec = name_bodies_from_sacrum(lab, affine())
    assert rec.status == "kept" and "no sacrum" in rec.reasons[0]
    np.testing.assert_array_equal(out, lab)
    lab = spine_label()
    lab[lab == 12] = 0  # L4 not segmented: counting would call L3 "L4"
    out, rec = name_bodies_from_sacrum(lab, affine())
    assert rec.status == "kept" and "a body may be missing" in rec.reasons[0]
    np.testing.assert_array_equal(out, lab)


def test_a_sixth_body_is_left_unlabelled():
    lab = np.zeros((20, 20, 115), np.uint8)
    lab[:, :, :100] = spine_label()
    lab[8:12, 4:9, 99:112] = 9  # T12 above L1, called L1 too
    out, rec = name_bodies_from_sacrum(lab, affine())
    assert _named(out) == {v: v for v in TRUE_NAMES} and (out[:, :, 99:112] == 0).all()
    assert rec.status == "renamed" and rec.renamed == ["L1 -> unlabelled"] and "sixth body" in rec.reasons[0]


def test_muscles_sacrum_and_specks_are_not_touched_and_lps_storage_agrees():
    shifted = {14: BODIES[14], 12: BODIES[13], 11: BODIES[12], 10: BODIES[11], 9: BODIES[10]}
    lab = spine_label(shifted)
    lab[0, 0, 50] = 13  # a one-voxel speck, removed once the bodies are renamed
    lab[0, 0, 99] = 14  # a speck of sacrum far above: not the sacrum's top
    out, rec = name_bodies_from_sacrum(lab, affine())
    assert out[0, 0, 50] == 0 and "1 speck(s) of body labels removed" in rec.reasons
    keep = ~np.isin(lab, range(9, 14))
    np.testing.assert_array_equal(out[keep], lab[keep])
    bodies = np.isin(lab, range(9, 14))
    bodies[0, 0, 50] = False
    np.testing.assert_array_equal(np.isin(out, range(9, 14)), bodies)  # every body voxel kept, the speck gone
    lab_lps, aff_lps = as_lps(lab, affine(), flip_z=True)
    out_lps, rec = name_bodies_from_sacrum(lab_lps, aff_lps)
    back, _ = as_lps(out_lps, aff_lps, flip_z=True)
    np.testing.assert_array_equal(back, out)
    assert rec.renamed == ["L4 -> L5", "L3 -> L4", "L2 -> L3", "L1 -> L2"]
    confirmed = spine_label()
    confirmed[0, 0, 50] = 13
    kept, rec = name_bodies_from_sacrum(confirmed, affine())
    assert rec.status == "confirmed" and kept[0, 0, 50] == 13  # nothing renamed: the largest-component step's job


def test_not_3d_is_refused():
    with pytest.raises(ValueError, match="3D"):
        name_bodies_from_sacrum(np.zeros((4, 4)), np.eye(4))


def _spine_classes(lab: np.ndarray) -> np.ndarray:
    """A spine network's view of a label map: every body 1, the sacrum 2, muscles and the rest 0."""
    return np.where(np.isin(lab, range(9, 14)), 1, np.where(lab == 14, 2, 0)).astype(np.uint8)


def test_a_spine_networks_unnamed_bodies_are_counted_from_the_sacrum():
    lab = spine_label()
    out, rec = count_bodies_from_sacrum(_spine_classes(lab), affine())
    assert rec.status == "counted" and rec.renamed == [] and rec.reasons == []
    np.testing.assert_array_equal(out, np.where(lab >= 9, lab, 0))
    assert assign_levels(out, affine()).status == "ok"
    lab_lps, aff_lps = as_lps(_spine_classes(lab), affine(), flip_z=True)
    out_lps, _ = count_bodies_from_sacrum(lab_lps, aff_lps)
    back, _ = as_lps(out_lps, aff_lps, flip_z=True)
    np.testing.assert_array_equal(back, out)


def test_a_spine_map_with_bodies_joined_through_two_discs_is_split_into_three():
    spine = _spine_classes(spine_label())
    for upper, lower in ((11, 12), (10, 11)):  # L4-L3 and L3-L2 joined by thin bridges through the discs
        spine[9:11, 5:7, BODIES[lower][1] : BODIES[upper][0]] = 1
    out, rec = count_bodies_from_sacrum(spine, affine())
    assert rec.status == "counted" and _named(out) == {v: v for v in TRUE_NAMES}


def test_a_spine_map_without_sacrum_or_with_a_missing_body_names_nothing():
    lab = spine_label()
    no_sacrum = _spine_classes(lab)
    no_sacrum[no_sacrum == 2] = 0
    out, rec = count_bodies_from_sacrum(no_sacrum, affine())
    assert rec.status == "not named" and "no sacrum" in rec.reasons[0] and "no levels" in rec.reasons[0]
    assert not out.any()
    missing = _spine_classes(lab)
    missing[lab == 12] = 0  # L4 missed: counting would call L3 "L4"
    out, rec = count_bodies_from_sacrum(missing, affine())
    assert rec.status == "not named" and "a body may be missing" in rec.reasons[0]
    np.testing.assert_array_equal(out, np.where(lab == 14, 14, 0))


def test_a_spine_maps_sixth_body_and_specks_are_left_out():
    spine = np.zeros((20, 20, 115), np.uint8)
    spine[:, :, :100] = _spine_classes(spine_label())
    spine[8:12, 4:9, 99:112] = 1  # T12
    spine[0, 0, 50] = 1  # a speck
    out, rec = count_bodies_from_sacrum(spine, affine())
    assert _named(out) == {v: v for v in TRUE_NAMES} and (out[:, :, 99:112] == 0).all() and out[0, 0, 50] == 0
    assert rec.status == "counted" and any("sixth body" in r for r in rec.reasons)
    assert "1 speck(s) of body labels left out" in rec.reasons


def test_a_spine_map_of_other_values_is_refused():
    with pytest.raises(ValueError, match="expected 0"):
        count_bodies_from_sacrum(np.full((4, 4, 4), 9, np.uint8), np.eye(4))


def _wide(spine: np.ndarray, width: int = 120) -> np.ndarray:
    """The box spine in a field of view ``width`` voxels (2 mm) wide, the column where it was."""
    out = np.zeros((width, *spine.shape[1:]), spine.dtype)
    out[: spine.shape[0]] = spine
    return out


def test_a_sacrum_far_from_the_column_is_no_anchor():
    """A cut to L1-L4 (sacrum and L5 out of view) with a spine network's false "sacrum" in fat at the edge of the
    field of view, a disc below L4: counted from it, L4 would be called L5 (found on a held-out phantom)."""
    spine = _wide(_spine_classes(spine_label()))
    spine[spine == 2] = 0
    spine[:, :, : BODIES[13][1]] = 0  # no L5
    false = (slice(100, 110), slice(4, 9), slice(BODIES[12][0] - 10, BODIES[12][0] - 4))
    spine[false] = 2  # 182 mm from the column, 8 mm below L4
    out, rec = count_bodies_from_sacrum(spine, affine())
    assert rec.status == "not named" and "no sacrum" in rec.reasons[0] and not (out == 12).any()
    near = spine.copy()
    near[false] = 0
    near[8:12, 4:9, false[2]] = 2  # the same piece under the column is an anchor (and here a wrong one)
    out, rec = count_bodies_from_sacrum(near, affine())
    assert rec.status == "counted" and out[9, 6, TRUE_NAMES[12]] == 13


def test_a_false_sacrum_piece_beside_the_true_one_does_not_move_its_top():
    spine = _wide(_spine_classes(spine_label()))
    spine[100:110, 4:9, 40:60] = 2  # bigger than a speck, far off the column, level with L4-L3
    out, rec = count_bodies_from_sacrum(spine, affine())
    assert rec.status == "counted" and _named(out) == {v: v for v in TRUE_NAMES}


@pytest.mark.parametrize(("slices", "named"), [(4, True), (8, True), (10, False)])
def test_a_sacrum_running_up_beside_l5_is_accepted_up_to_10_mm(slices, named):
    """The sacrum class running ``slices`` (2 mm) slices up behind the disc and L5: the gap sacrum-L5 becomes
    8 - 2 x slices mm (0 and -8 mm: a leak, accepted; -12 mm: more than a leak, not named)."""
    lab = spine_label()
    spine = _spine_classes(lab)
    top = BODIES[14][1]
    spine[8:12, 9:12, top : top + slices] = 2
    out, rec = count_bodies_from_sacrum(spine, affine())
    if named:
        assert rec.status == "counted" and _named(out) == {v: v for v in TRUE_NAMES}
    else:
        assert rec.status == "not named" and "-10 to 20 mm" in rec.reasons[0] and not (out == 13).any()


def test_a_sacrum_inside_the_column_with_bodies_below_it_is_no_anchor():
    """A spine network's "sacrum" blob inside L3 (seen on a real scan with test-time adaptation): counted from it,
    L2 would be called L5. Bodies below it show that it is no sacrum: nothing is named and it is not written."""
    spine = _spine_classes(spine_label())
    spine[spine == 2] = 0
    spine[8:12, 4:9, BODIES[11][0] + 2 : BODIES[11][0] + 5] = 2  # L3's cross-section, 3 slices
    out, rec = count_bodies_from_sacrum(spine, affine())
    # L5, L4 and the part of L3 under the blob
    assert rec.status == "not named" and "3 vertebral body piece(s) lie wholly below the sacrum" in rec.reasons[0]
    assert "no levels" in rec.reasons[0] and not out.any()
    lab = spine_label()
    lab[lab == 14] = 0
    lab[8:12, 4:9, BODIES[11][0] + 2 : BODIES[11][0] + 5] = 14
    renamed, rec = name_bodies_from_sacrum(lab, affine())
    assert rec.status == "kept" and "doubtful" in rec.reasons[0]
    np.testing.assert_array_equal(renamed, lab)


def test_a_body_piece_within_the_sacrums_extent_is_left_out_and_the_count_stands():
    """A spine network's body label on part of the sacrum (seen on held-out phantoms, 4-8 mL at its lower end):
    not below the sacrum, so the sacrum stays the anchor and the piece is left out, as before."""
    spine = _spine_classes(spine_label())
    spine[8:12, 4:9, 1:5] = 1  # inside the sacrum's z range (index 0-9)
    out, rec = count_bodies_from_sacrum(spine, affine())
    assert rec.status == "counted" and _named(out) == {v: v for v in TRUE_NAMES}
    assert "1 body piece(s) at or below the top of the sacrum left out" in rec.reasons and not out[9, 6, 2]


@pytest.mark.parametrize(("width", "named"), [(2, False), (3, True)])
def test_a_sacrum_smaller_than_half_a_body_is_no_anchor(width, named):
    """The sacrum cut to 4 x ``width`` voxels (the bodies 4 x 5): 8/20 of a body's cross-section is a speck or a
    false positive, not the sacrum; 12/20 is accepted (the limit is half)."""
    lab = spine_label()
    spine = _spine_classes(lab)
    spine[spine == 2] = 0
    spine[8:12, 4 : 4 + width, : BODIES[14][1]] = 2
    out, rec = count_bodies_from_sacrum(spine, affine())
    if named:
        assert rec.status == "counted" and _named(out) == {v: v for v in TRUE_NAMES}
    else:
        assert rec.status == "not named" and "too small to be the sacrum" in rec.reasons[0]
        assert "0.3 cm2" in rec.reasons[0] and "0.8 cm2" in rec.reasons[0] and not out.any()


def test_a_stated_lowest_body_names_a_scan_without_the_sacrum():
    """An L1-L5 field of view without the sacrum: unnamed from the sacrum; stated "L5", every body gets its true
    name, and the levels are ok with the true bounds (the sacrum is not asked for)."""
    lab = spine_label()
    cut, aff = cut_above_sacrum(_spine_classes(lab))
    out, rec = count_bodies_from_sacrum(cut, aff)
    assert rec.status == "not named" and not out.any()
    out, rec = count_bodies_from_sacrum(cut, aff, lowest_vertebra="L5")
    assert rec.status == "counted" and rec.anchor == "stated lowest body L5"
    np.testing.assert_array_equal(out, np.where((lab >= 9) & (lab <= 13), lab, 0)[:, :, 10:])
    assert rec.to_meta()["rule"].startswith("counted up from the stated lowest body L5")
    assert "no sacrum" in rec.reasons[0]
    assert assign_levels(out, aff).status == "uncertain"  # the default still asks for the sacrum
    levels = assign_levels(out, aff, anchor=rec.anchor)
    assert levels.status == "ok" and levels.reasons == [] and levels.to_meta()["anchor"] == "stated lowest body L5"
    bounds = {lv.name: (lv.z_low, lv.z_high) for lv in levels.levels}
    assert bounds["L3"] == pytest.approx(TRUE_BOUNDS["L3"]) and bounds["L4"] == pytest.approx(TRUE_BOUNDS["L4"])


def test_a_stated_lowest_body_higher_up_names_the_bodies_above_it_and_leaves_those_above_l1():
    """The same five bodies stated to start at L3 (a T11-L3 scan): L3, L2, L1, then two unlabelled bodies."""
    cut, aff = cut_above_sacrum(_spine_classes(spine_label()))
    out, rec = count_bodies_from_sacrum(cut, aff, lowest_vertebra="l3")
    assert rec.status == "counted"
    assert [int(out[9, 6, TRUE_NAMES[v] - 10]) for v in (13, 12, 11, 10, 9)] == [11, 10, 9, 0, 0]
    assert any("above the one counted as L1" in r for r in rec.reasons)


def test_a_stated_lowest_body_is_refused_with_room_for_it_below_or_a_body_missing_between():
    """The network missed L5 (room below L4 for a disc and a body): "L5" would call L4 L5, so nothing is named; a
    missed L3 leaves a gap that is no disc."""
    lab = spine_label()
    spine = _spine_classes(lab)
    spine[lab == 13] = 0
    cut, aff = cut_above_sacrum(spine)
    out, rec = count_bodies_from_sacrum(cut, aff, lowest_vertebra="L5")
    assert rec.status == "not named" and not out.any() and rec.anchor == "stated lowest body L5"
    assert "42 mm of the field of view lie below the lowest vertebral body found" in rec.reasons[0]
    spine = _spine_classes(lab)
    spine[lab == 11] = 0
    cut, aff = cut_above_sacrum(spine)
    out, rec = count_bodies_from_sacrum(cut, aff, lowest_vertebra="L5")
    assert rec.status == "not named" and "a body may be missing" in rec.reasons[0] and not out.any()


def test_with_the_sacrum_in_view_the_statement_must_agree_with_the_count():
    spine = _spine_classes(spine_label())
    out, rec = count_bodies_from_sacrum(spine, affine(), lowest_vertebra="L5")
    assert rec.status == "counted" and rec.anchor == "sacrum" and _named(out) == {v: v for v in TRUE_NAMES}
    assert rec.reasons == ["the stated lowest body in view, L5, agrees with the count up from the sacrum"]
    out, rec = count_bodies_from_sacrum(spine, affine(), lowest_vertebra="L4")
    assert rec.status == "not named" and "disagrees with the count up from the sacrum" in rec.reasons[0]
    assert not np.isin(out, range(9, 14)).any()


def test_a_doubtful_sacrum_gives_way_to_the_stated_lowest_body_and_is_not_written():
    lab = spine_label()
    cut, aff = cut_above_sacrum(_spine_classes(lab))
    cut[8:12, 4:9, BODIES[11][0] - 10 - 3 : BODIES[11][0] - 10 - 1] = 2  # a "sacrum" sliver in the L3/L4 disc
    out, rec = count_bodies_from_sacrum(cut, aff, lowest_vertebra="L5")
    assert rec.status == "counted" and rec.anchor == "stated lowest body L5" and not (out == 14).any()
    assert "doubtful" in rec.reasons[0]
    np.testing.assert_array_equal(out, np.where((lab >= 9) & (lab <= 13), lab, 0)[:, :, 10:])


def test_a_fifteen_output_maps_names_follow_a_stated_lowest_body_too():
    lab = spine_label()
    shifted = {12: BODIES[13], 11: BODIES[12], 10: BODIES[11], 9: BODIES[10]}  # one level high, no sacrum, no L1
    cut, aff = cut_above_sacrum(spine_label(shifted))
    out, rec = name_bodies_from_sacrum(cut, aff)
    assert rec.status == "kept" and "network's names are kept" in rec.reasons[0]
    out, rec = name_bodies_from_sacrum(cut, aff, lowest_vertebra="L5")
    assert rec.status == "renamed" and rec.renamed == ["L4 -> L5", "L3 -> L4", "L2 -> L3", "L1 -> L2"]
    expected = np.where(lab == 9, 0, np.where(lab == 14, 0, lab))[:, :, 10:]
    np.testing.assert_array_equal(out, expected)


def test_an_unknown_stated_body_is_refused_with_the_names_allowed():
    with pytest.raises(ValueError, match="lowest_vertebra must be one of L1, L2, L3, L4, L5"):
        count_bodies_from_sacrum(_spine_classes(spine_label()), affine(), lowest_vertebra="S1")
