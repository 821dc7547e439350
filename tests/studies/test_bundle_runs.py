"""The inference settings a study derives from its training settings."""

from __future__ import annotations

from scripts.studies.bundle_runs import inference_overrides


def test_inference_window_follows_a_changed_training_patch():
    assert inference_overrides({}, {}) == {}  # shipped settings: inference.json's own window
    assert inference_overrides({"patch_size": [64, 64, 32]}, {}) == {"roi_size": [64, 64, 32]}
    # an explicit window wins
    assert inference_overrides({"patch_size": [64, 64, 32]}, {"roi_size": [96, 96, 48]}) == {"roi_size": [96, 96, 48]}
    assert inference_overrides({"epochs": 3}, {"flip_ensemble": False}) == {"flip_ensemble": False}
