"""Concurrent reading of a subject's images (scripts/io/concurrent_read.py): exactly what a sequential read gives."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
from scripts.io.concurrent_read import read_checked_images
from scripts.io.errors import DixonInputError
from scripts.io.intensity_checks import IntensityLimits
from scripts.io.load import load_dixon
from scripts.io.scan_notes import ScanNotes

from tests.io.dixon_files import SHAPE, write

LIMITS = IntensityLimits(max_negative_share=0.05, negative_level_rel=0.1, clip_negative=True, max_clipped_share=0.35)


def _subject(tmp_path: Path) -> dict[str, Path]:
    """Five images: noisy int16 magnitudes, water with two clipped negatives, an FF map with NaN (a warning)."""
    rng = np.random.default_rng(3)
    paths = {}
    for role in ("water", "fat", "inphase", "opposed"):
        data = rng.integers(0, 900, SHAPE).astype(np.int16)
        if role == "water":
            data[0, 0, :2] = -4
        paths[role] = Path(write(tmp_path / f"S1_{role}.nii.gz", data))
    ff = rng.uniform(0, 1, SHAPE).astype(np.float32)
    ff[1, 2, 3] = np.nan
    paths["ff"] = Path(write(tmp_path / "S1_ff.nii.gz", ff))
    return paths


def _read(paths, workers):
    notes = ScanNotes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, affines = read_checked_images(paths, LIMITS, notes, max_workers=workers)
    return images, affines, notes, caught


def test_concurrent_read_equals_sequential_read(tmp_path):
    paths = _subject(tmp_path)
    seq = _read(paths, 1)
    for workers in (2, 5):
        images, affines, notes, caught = _read(paths, workers)
        assert list(images) == list(paths) == list(affines)
        for role in paths:
            assert images[role].dtype == np.float32 and images[role].shape == SHAPE
            np.testing.assert_array_equal(images[role], seq[0][role])
            np.testing.assert_array_equal(affines[role], seq[1][role])
        assert notes.warnings == seq[2].warnings and notes.corrections == seq[2].corrections
        assert notes.corrections == ["negatives_clipped_water"]
        assert "S1_water.nii.gz" in notes.warnings[0] and "2 negative value(s)" in notes.warnings[0]
        assert "S1_ff.nii.gz" in notes.warnings[1] and "1 NaN value(s)" in notes.warnings[1]
        # issued from the calling thread, in role order, pointing outside scripts/io (here: at this test module)
        assert [str(w.message) for w in caught] == notes.warnings
        assert all(Path(w.filename).name == "test_concurrent_read.py" for w in caught)
    assert images["water"].min() == 0.0  # clipped, as in the sequential read


@pytest.mark.filterwarnings("ignore:water image:RuntimeWarning")
def test_first_failing_image_in_role_order_is_named(tmp_path):
    paths = _subject(tmp_path)
    # the opposed-phase file: a gzip stream cut short; the FF map (later in role order): not a NIfTI file at all
    raw = gzip.decompress(paths["opposed"].read_bytes())
    paths["opposed"].write_bytes(gzip.compress(raw)[: len(gzip.compress(raw)) // 2])
    paths["ff"].write_bytes(gzip.compress(b"not an image" * 100))
    for workers in (1, 3):
        with pytest.raises(DixonInputError, match=r"opposed-phase image '.*S1_opposed\.nii\.gz': unreadable"):
            read_checked_images(paths, LIMITS, ScanNotes(), max_workers=workers)
    paths.pop("opposed")
    with pytest.raises(DixonInputError, match=r"S1_ff\.nii\.gz': not a NIfTI file"):
        read_checked_images(paths, LIMITS, ScanNotes(), max_workers=3)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_bad_worker_count_refused(tmp_path):
    with pytest.raises(ValueError, match="max_workers must be >= 1"):
        read_checked_images(_subject(tmp_path), LIMITS, ScanNotes(), max_workers=0)
    assert read_checked_images({}, LIMITS, ScanNotes()) == ({}, {})


def test_load_dixon_reads_concurrently_with_the_same_scan(tmp_path, monkeypatch):
    paths = _subject(tmp_path)
    entry = {"subject": "S1", **{r: str(p) for r, p in paths.items()}}
    with pytest.warns(RuntimeWarning):
        scan = load_dixon(entry)
    monkeypatch.setattr("scripts.io.concurrent_read.os.cpu_count", lambda: 1)
    with pytest.warns(RuntimeWarning):
        one_by_one = load_dixon(entry)
    for role in paths:
        np.testing.assert_array_equal(scan.images[role], one_by_one.images[role])
    assert scan.warnings == one_by_one.warnings and scan.corrections == one_by_one.corrections
