"""scripts.quality.dixon_consistency on tiny phantoms made here (known answers): the phantom's own in-phase image
passes, with any vendor scale; the water image given as the in-phase image and a very noisy in-phase image are
reviewed with reasons naming the figure and its threshold; the fat image given as the in-phase image is a note only;
in-phase/opposed-phase-only input and water/fat-only input are skipped with the reason; bad limits are refused."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.phantom import Acquisition, generate_subject
from scripts.quality.dixon_consistency import ConsistencyLimits, dixon_consistency


@pytest.fixture(scope="module", params=["RAS", "LPS"])
def images(request):
    subj = generate_subject(7, Acquisition.preset("tiny", orientation=request.param))
    return {r: np.asarray(subj.images[r], dtype=np.float32) for r in ("water", "fat", "inphase", "opposed")}


def _noisy(image: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sigma = fraction * float(np.percentile(image, 95))
    real, imag = rng.normal(0.0, sigma, image.shape), rng.normal(0.0, sigma, image.shape)
    return np.sqrt((image + real) ** 2 + imag**2).astype(np.float32)


def test_the_phantoms_own_inphase_image_passes_with_any_vendor_scale(images):
    for factor in (1.0, 3.7, 0.02):
        # a vendor scales the echoes' images alike, the water and fat images its own way
        result = dixon_consistency(dict(images, inphase=images["inphase"] * factor, opposed=images["opposed"] * factor))
        assert result.checked and result.findings == [], result.findings
        assert result.scale == pytest.approx(factor, rel=0.02)
        # the phantom's water and fat come from its in-phase and opposed-phase echoes: IP = W + F up to rounding
        assert result.contrast == pytest.approx(1.0, abs=0.03)
        assert result.fat_ratio == pytest.approx(1.0, abs=0.03) and result.water_ratio == pytest.approx(1.0, abs=0.03)
        assert result.noise < 0.05
        assert result.opposed_ratio == pytest.approx(1.0, abs=0.1)
        assert result.n_fat >= 200 and result.n_water >= 200 and result.n_body > result.n_fat + result.n_water
        assert result.side_findings == []


def test_water_given_as_inphase_is_reviewed_with_the_contrast_and_its_threshold(images):
    result = dixon_consistency(dict(images, inphase=images["water"]))
    assert result.checked and result.contrast < 0.3, result.to_dict()
    assert [s for s, _ in result.side_findings] == ["review"]
    reason = result.side_findings[0][1]
    assert f"{result.contrast:.2f} times as bright" in reason and "review below 0.6" in reason
    assert "water, opposed-phase or fat-suppressed image given as in-phase" in reason


def test_a_very_noisy_inphase_image_is_reviewed_and_a_little_noise_is_not(images):
    noisy = dixon_consistency(dict(images, inphase=_noisy(images["inphase"], 0.5)))
    assert noisy.noise > 0.45, noisy.to_dict()
    assert any("very noisy" in r and "review above 0.5" in r for s, r in noisy.side_findings if s == "review")
    light = dixon_consistency(dict(images, inphase=_noisy(images["inphase"], 0.02)))
    assert light.noise < 0.5 and light.side_findings == [], light.to_dict()


def test_fat_given_as_inphase_is_a_note_that_leaves_the_sides_alone(images):
    result = dixon_consistency(dict(images, inphase=images["fat"]))
    assert result.contrast > 1.8, result.to_dict()
    assert result.side_findings == []
    assert [s for s, _ in result.findings] == ["note"] and "fat image given as in-phase" in result.findings[0][1]
    assert result.to_dict()["findings"][0].startswith("note: water in the in-phase image darker")


def test_an_opposed_phase_image_that_is_not_one_is_noted(images):
    result = dixon_consistency(dict(images, opposed=images["inphase"] * 4.0))
    assert result.opposed_ratio > 2.0 and result.side_findings == []
    assert any(s == "note" and "opposed-phase image" in r for s, r in result.findings)


def test_inputs_the_check_cannot_judge_are_skipped_with_the_reason(images):
    ip_op = dixon_consistency({"inphase": images["inphase"], "opposed": images["opposed"]})
    assert not ip_op.checked and "circular" in ip_op.skipped_reason and ip_op.findings == []
    assert ip_op.to_dict()["contrast"] is None
    water_fat = dixon_consistency({"water": images["water"], "fat": images["fat"]})
    assert not water_fat.checked and "no in-phase image" in water_fat.skipped_reason
    with pytest.warns(RuntimeWarning, match="no positive value"):
        empty = dixon_consistency({r: np.zeros((8, 8, 8), np.float32) for r in ("water", "fat", "inphase")})
    assert not empty.checked and "too little body signal" in empty.skipped_reason


def test_mismatched_grids_and_bad_limits_are_refused(images):
    with pytest.raises(ValueError, match="share one grid.*inphase"):
        dixon_consistency(dict(images, inphase=images["inphase"][:-1]))
    with pytest.raises(ValueError, match="contrast_review < 1 < contrast_note"):
        ConsistencyLimits(contrast_review=1.2)
    with pytest.raises(ValueError, match="water_voxel_ff < fat_voxel_ff"):
        ConsistencyLimits(water_voxel_ff=0.8)
    with pytest.raises(ValueError, match="opposed_band"):
        ConsistencyLimits(opposed_band=(1.1, 2.0))
