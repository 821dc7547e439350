"""Tests of scripts.quantification.ff_scale: fraction, percent and permille maps, refusals, the real GE FF map."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.quantification.ff_scale import detect_ff_scale, normalise_ff_map

from tests.quantification.dixon_samples import load_ge_sample, mask_on_ff_grid, phantom

# ---------------------------------------------------------------------------------------------------------------
# FF map scale
# ---------------------------------------------------------------------------------------------------------------


def test_scale_detection_fraction_percent_permille() -> None:
    _, _, ff, _ = phantom()
    noisy = ff + np.random.default_rng(4).normal(0, 0.02, ff.shape) * (ff > 0)
    det = detect_ff_scale(noisy)
    assert (det.scale, det.divisor) == ("fraction", 1.0)
    det = detect_ff_scale(noisy * 100)
    assert (det.scale, det.divisor) == ("percent", 100.0)
    permille = np.clip(np.round(noisy * 1000), 0, 1000).astype(np.int16)
    det = detect_ff_scale(permille, source="ff_permille.nii.gz")
    assert (det.scale, det.divisor, det.source) == ("permille", 1000.0, "ff_permille.nii.gz")
    assert 0.9 < det.confidence <= 1.0


def test_scale_detection_lean_muscle_permille_not_taken_for_percent() -> None:
    # muscle-only statistics: P95 = 90 + 1.645 * 25 = 131 would pass as percent; the one-sided tail above 105
    # (28 % of voxels, none below -5) says permille
    values = np.clip(np.random.default_rng(5).normal(90, 25, 2000), 0, None).round().astype(np.int16)
    det = detect_ff_scale(values, mask=np.ones(values.shape, dtype=bool))
    assert det.scale == "permille"


def test_scale_detection_refuses_all_zero_map() -> None:
    with pytest.raises(ValueError, match=r"ff_zero\.nii\.gz.*all zero"):
        detect_ff_scale(np.zeros((8, 8, 4)), source="ff_zero.nii.gz")
    with pytest.raises(ValueError, match="all zero"):
        detect_ff_scale(np.zeros((8, 8, 4)), mask=np.ones((8, 8, 4), dtype=bool))


def test_scale_detection_refuses_ambiguous_tiny_values_and_allows_override() -> None:
    tiny = np.random.default_rng(6).uniform(0.0, 0.05, (10, 10, 5))  # percent of near-zero FF, or lean fraction?
    with pytest.raises(ValueError, match=r"tiny\.nii\.gz is ambiguous.*scale="):
        detect_ff_scale(tiny, source="tiny.nii.gz")
    det = detect_ff_scale(tiny, scale="percent")
    assert (det.scale, det.divisor, det.overridden, det.confidence) == ("percent", 100.0, True, 1.0)
    with pytest.raises(ValueError, match="unknown FF scale"):
        detect_ff_scale(tiny, scale="per-cent")


def test_scale_detection_refuses_non_ff_map() -> None:
    with pytest.raises(ValueError, match="fits no FF scale"):
        detect_ff_scale(np.random.default_rng(7).uniform(2000, 50000, 500))


def test_normalise_ff_map_counts_out_of_range() -> None:
    values = np.concatenate([np.linspace(2, 98, 990), [300.0] * 7, [-40.0] * 3, [0.0] * 50])
    fraction, det = normalise_ff_map(values)
    assert det.scale == "percent" and det.n_out_of_range == 10
    assert fraction.dtype == np.float32
    assert np.isnan(fraction[990:1000]).all()
    np.testing.assert_allclose(fraction[:990], np.linspace(0.02, 0.98, 990), rtol=1e-6)
    assert (fraction[1000:] == 0).all()


# ---------------------------------------------------------------------------------------------------------------
# real GE thigh Dixon sample (water/fat float64 512x256x10, vendor FF in percent, mask on a 512x512x10 grid)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ge_sample(shared_dir) -> dict[str, np.ndarray | tuple]:
    return load_ge_sample(shared_dir)


def test_ge_vendor_map_scale_is_percent(ge_sample: dict) -> None:
    s = ge_sample
    det = detect_ff_scale(s["fatfraction"], source="fatfraction.nii.gz")
    assert (det.scale, det.divisor) == ("percent", 100.0)
    assert detect_ff_scale(s["fatfraction"], mask=mask_on_ff_grid(s)).scale == "percent"
    fraction, det = normalise_ff_map(s["fatfraction"], source="fatfraction.nii.gz")
    assert det.n_out_of_range > 0
    finite = fraction[np.isfinite(fraction)]
    assert finite.min() >= -0.05 and finite.max() <= 1.05
    assert det.n_out_of_range == int(np.sum((s["fatfraction"] < -5) | (s["fatfraction"] > 105)))
