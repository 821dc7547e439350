"""Contrast robustness: exact water/fat mixing, clear errors, and an end-to-end run with the shipped model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scripts.labels import MUSCLES
from scripts.phantom import generate_cohort
from scripts.studies.contrast_robustness import (
    CONTRASTS,
    coil_shaded,
    evaluate_contrasts,
    main,
    mix_contrast,
    summarise,
)

from tests.conftest import BUNDLE_ROOT


def test_mix_is_the_weighted_sum_and_opposed_the_difference_magnitude():
    water = np.array([[1.0, 0.2], [0.0, 3.0]])
    fat = np.array([[0.5, 2.0], [1.0, 0.0]])
    np.testing.assert_allclose(mix_contrast(water, fat, (0.2, 1.0)), [[0.7, 2.04], [1.0, 0.6]], rtol=1e-6)
    np.testing.assert_allclose(mix_contrast(water, fat, None), [[0.5, 1.8], [1.0, 3.0]], rtol=1e-6)
    assert mix_contrast(water, fat, (1, 1)).dtype == np.float32


@pytest.mark.parametrize("weights", [(-0.1, 1.0), (0.0, 0.0), (np.nan, 1.0)])
def test_bad_weights_are_refused(weights):
    with pytest.raises(ValueError, match="contrast weights"):
        mix_contrast(np.ones(3), np.ones(3), weights)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        mix_contrast(np.ones(3), np.ones(4), (1, 1))


def _body(n_y: int = 40) -> np.ndarray:
    """A uniform body filling y indices 5..34 of a 6 x 40 x 3 grid (air around it)."""
    image = np.zeros((6, n_y, 3), np.float32)
    image[:, 5:35] = 100.0
    return image


def test_coil_shading_falls_by_e_per_decay_depth_from_the_posterior_edge():
    # RAS storage, 2 mm along y: the posterior edge is index 5, and 30 mm (15 voxels) deeper the gain is exp(-1)
    ras = np.diag([1.0, 2.0, 3.0, 1.0])
    shaded = coil_shaded(_body(), ras, 30.0)
    assert shaded.dtype == np.float32 and shaded.shape == (6, 40, 3)
    np.testing.assert_allclose(shaded[0, 5, 0], 100.0, rtol=1e-5)
    np.testing.assert_allclose(shaded[0, 20, 0], 100.0 * np.exp(-1.0), rtol=1e-4)
    np.testing.assert_allclose(shaded[0, 34, 0], 100.0 * np.exp(-58.0 / 30.0), rtol=1e-4)
    assert (shaded[:, :5] == 0).all()
    # LPS storage (index y grows posteriorly): the posterior edge is now index 34, the same world depths apply
    lps = np.diag([-1.0, -2.0, 3.0, 1.0])
    flipped = coil_shaded(_body(), lps, 30.0)
    np.testing.assert_allclose(flipped[0, ::-1], shaded[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("decay", [0.0, -5.0, np.inf])
def test_coil_shading_needs_a_positive_decay(decay):
    with pytest.raises(ValueError, match="coil_decay_mm"):
        coil_shaded(_body(), np.eye(4), decay)


def test_missing_datalist_and_unknown_contrast_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="datalist.json"):
        evaluate_contrasts(str(tmp_path), "models/model.pt")
    (tmp_path / "datalist.json").write_text(json.dumps({"testing": [{"subject": "a", "image": "a.nii.gz"}]}))
    with pytest.raises(ValueError, match="names from"):
        evaluate_contrasts(str(tmp_path), "models/model.pt", contrasts="t1_mystery")
    with pytest.raises(KeyError, match="has no"):
        evaluate_contrasts(str(tmp_path), "models/model.pt", contrasts="in_phase")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    data = tmp_path_factory.mktemp("contrast") / "data"
    # "low" geometry (2 x 2 x 5 mm, a real scan's extent): the tiny test phantom is too small for the model to
    # find reliably, and a known answer needs a subject it must find
    generate_cohort(data, n=1, seed=41, geometry="low", variety=False, n_validation=0, n_testing=1, progress=False)
    return evaluate_contrasts(
        str(data),
        str(BUNDLE_ROOT / "models" / "model.pt"),
        str(BUNDLE_ROOT),
        # the two contrasts the tests below judge (the opposed-phase mix is a known answer of its own above; each
        # extra contrast is one more ~40 s segmentation on the 2-core CPU)
        contrasts=["in_phase"],
        coil_decay_mm=200,
    )


NAMES = ["in_phase", "in_phase+coil200mm"]


def test_every_contrast_muscle_and_side_is_scored(table):
    assert list(dict.fromkeys(table.contrast)) == NAMES
    for c in NAMES:
        t = table[table.contrast == c]
        assert set(t.muscle) == set(MUSCLES)
        assert set(t.side) == {"left", "right", "mean"}
        assert t.dice.between(0, 1).all()


def test_shipped_model_segments_the_training_contrast(table):
    # W + F is the in-phase image the model was trained on (up to noise): every muscle must be found (0.10.0
    # measured 0.94-0.97 on this subject)
    mean = table[(table.side == "mean") & (table.contrast == "in_phase")]
    assert (mean.dice > 0.9).all(), mean[["muscle", "dice"]]
    text = summarise(table)
    assert text.splitlines()[2].startswith("| in_phase |") and text.splitlines()[3].startswith("| in_phase+coil200mm |")


def test_a_mild_coil_profile_keeps_every_muscle(table):
    # 200 mm e-folding: the psoas (about 110 mm deep) keeps about 0.6 of its signal, inside what the model
    # was made for; a model that lost muscles under so mild a shading would be broken
    mean = table[(table.side == "mean") & (table.contrast == "in_phase+coil200mm")]
    assert len(mean) == len(MUSCLES) and (mean.dice > 0.85).all(), mean[["muscle", "dice"]]


def test_a_negative_coil_decay_is_refused(tmp_path):
    (tmp_path / "datalist.json").write_text(json.dumps({"testing": [{"subject": "a", "water": "w", "fat": "f"}]}))
    with pytest.raises(ValueError, match="coil_decay_mm"):
        evaluate_contrasts(str(tmp_path), "models/model.pt", contrasts="in_phase", coil_decay_mm=-1)


def test_command_line_refuses_to_overwrite(tmp_path):
    out = tmp_path / "c.csv"
    out.write_text("earlier results")
    with pytest.raises(FileExistsError, match="c.csv"):
        main(str(tmp_path), out_csv=str(out))
    assert out.read_text() == "earlier results"


def test_default_contrasts_start_with_the_training_one():
    assert next(iter(CONTRASTS)) == "in_phase" and CONTRASTS["opposed"] is None
