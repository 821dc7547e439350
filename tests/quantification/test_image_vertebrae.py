"""scripts.quantification.image_vertebrae: the bodies of an FF map named up from the stated lowest body.

Known answers on anatomy-complete phantoms made here (5 mm slices, cut as the L2-L5 protocol cuts): every named
body lies within its true level; the top of S1 at the caudal end of the field of view is left out, not taken for L5;
a body found on only part of its slices names nothing; without a statement, with the sacrum's whole field of view
below the bodies, or on slices too thick to show the discs, nothing is named.
"""

from __future__ import annotations

import numpy as np
import pytest
from scripts.phantom import Acquisition, generate_subject
from scripts.quantification.formulas import fat_fraction_from_water_fat
from scripts.quantification.image_vertebrae import IMAGE_SOURCE, vertebrae_from_image
from scripts.quantification.levels import z_of_voxels
from scripts.studies.level_validation import crop_to_z, generator_bounds, true_levels

#: phantom tissue id of the L3 body (scripts/phantom/tissue_ids.py)
_L3_TISSUE = 11


@pytest.fixture(scope="module")
def phantom():
    """FF (percent), tissue ids, affine, the generator's planes and true levels of one anatomy-complete subject."""
    subj = generate_subject(11, Acquisition.preset("low"), anatomy="complete")
    water, fat = (subj.images[r].astype(np.float32) for r in ("water", "fat"))
    planes = generator_bounds(11, subj.subject_id)
    ff = fat_fraction_from_water_fat(water, fat) * 100.0
    return ff, subj.images["tissue"], subj.affine, planes, true_levels(planes)


def _true_level_of_each_body(vertebrae, affine, truth) -> dict[str, str]:
    out = {}
    for value in range(9, 14):
        idx = np.nonzero(vertebrae == value)
        if idx[0].size:
            z = float(z_of_voxels(affine, idx).mean())
            out[f"L{value - 8}"] = next((n for n, (lo, hi) in truth.items() if lo <= z < hi), "outside")
    return out


@pytest.mark.parametrize("below_l5_s1_mm", [0.0, 9.0])
def test_an_l2_l5_scan_gets_its_bodies_named_from_the_stated_l5(phantom, below_l5_s1_mm):
    """Cut at the L5/S1 disc, and 9 mm lower so that the top of S1 is in view (a short piece below L5)."""
    ff, _, affine, planes, truth = phantom
    (cut,), aff = crop_to_z([ff], affine, planes["L5/S1"] - below_l5_s1_mm, planes["L1/L2"])
    vertebrae, record, spine = vertebrae_from_image(cut, aff, "L5")
    assert spine is not None and spine.found
    assert record.status == "counted" and record.anchor == "stated lowest body L5", record.reasons
    found = _true_level_of_each_body(vertebrae, aff, truth)
    assert found == {name: name for name in ("L2", "L3", "L4", "L5")}, found
    assert vertebrae.shape == cut.shape and set(np.unique(vertebrae)) == {0, 10, 11, 12, 13}
    if below_l5_s1_mm:
        assert any("shorter than a vertebral body" in r for r in record.reasons), record.reasons
    assert IMAGE_SOURCE == "FF map"


def test_a_body_found_on_part_of_its_slices_names_nothing(phantom):
    """L3's marrow wiped from 8 to 20 mm above its bottom: its two short pieces would be two bodies; left out, they
    leave a gap that is no disc, so nothing is named (a level off by one would be a silent wrong number)."""
    ff, tissue, affine, planes, truth = phantom
    (cut, tis), aff = crop_to_z([ff.copy(), tissue], affine, planes["L5/S1"], planes["L1/L2"])
    z = aff[2, 2] * np.arange(cut.shape[2]) + aff[2, 3]
    low = truth["L3"][0]
    for k in np.flatnonzero((z > low + 8) & (z < low + 20)):
        cut[:, :, k][tis[:, :, k] == _L3_TISSUE] = 2.0  # water, like a disc
    vertebrae, record, _ = vertebrae_from_image(cut, aff, "L5")
    assert record.status == "not named" and not vertebrae.any()
    assert "a body may be missing" in record.reasons[0], record.reasons


def test_nothing_is_named_without_a_statement_or_below_a_whole_sacrum(phantom):
    ff, _, affine, _, _ = phantom
    vertebrae, record, spine = vertebrae_from_image(ff, affine, None)
    assert record.status == "not named" and spine is None and not vertebrae.any()
    assert "no lowest vertebra stated" in record.reasons[0]
    # as stored the sacrum and the pelvis lie below L5: the stated body could be missing there, so nothing is named
    vertebrae, record, _ = vertebrae_from_image(ff, affine, "L5")
    assert record.status == "not named" and not vertebrae.any()
    assert "of the field of view lie below the lowest vertebral body found" in record.reasons[0]
    assert "not found in the FF map" in record.reasons[0]
    vertebrae, record, _ = vertebrae_from_image(None, affine, "L5")
    assert record.status == "not named" and record.reasons == ["no FF map"]
    # 9 mm slices (the real CHAOS scan's): a disc does not fill a slice, bodies and discs run together
    thick = affine.copy()
    thick[:3, 2] *= 9.0 / np.linalg.norm(affine[:3, 2])
    vertebrae, record, spine = vertebrae_from_image(ff, thick, "L5")
    assert record.status == "not named" and spine is None
    assert record.reasons == ["slices of 9.0 mm cannot part the vertebral bodies at their discs (at most 6 mm)"]
    with pytest.raises(ValueError, match="lowest_vertebra must be one of L1, L2, L3, L4, L5"):
        vertebrae_from_image(ff, affine, "S1")


def test_the_real_l2_l5_protocols_grid_is_named_too():
    """1 x 1 x 4 mm (the real scans that judge the bundle: 400 x 400 x 29), another subject, cut to L2-L5."""
    planes = generator_bounds(13, "sub-0013")
    # only the slab the protocol covers, plus a body's height either side, is rendered (half the reference field of
    # view's slices: the same anatomy at a fraction of the cost)
    low, high = planes["L5/S1"] - 36.0, planes["L1/L2"] + 36.0
    full = Acquisition.from_spacing((1.0, 1.0, 4.0))
    # the generator centres its field of view on world z = 65 mm (scripts.phantom.acquisition.make_grid)
    acq = Acquisition(
        shape=(*full.shape[:2], int(np.ceil((high - low) / 4.0)) + 1),
        spacing=full.spacing,
        fov_shift_mm=(0.0, 0.0, (low + high) / 2.0 - 65.0),
    )
    subj = generate_subject(13, acq, anatomy="complete")
    water, fat = (subj.images[r].astype(np.float32) for r in ("water", "fat"))
    (cut,), aff = crop_to_z(
        [fat_fraction_from_water_fat(water, fat) * 100.0], subj.affine, planes["L5/S1"], planes["L1/L2"]
    )
    vertebrae, record, _ = vertebrae_from_image(cut, aff, "L5")
    assert record.status == "counted", record.reasons
    found = _true_level_of_each_body(vertebrae, aff, true_levels(planes))
    assert found == {name: name for name in ("L2", "L3", "L4", "L5")}, found
