"""Tests of scripts.reporting.montage: the QC montage, labels on another grid, empty labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scripts.phantom import Acquisition, generate_subject
from scripts.reporting.montage import qc_montage

from tests.reporting.report_cases import PNG_MAGIC, make_subject_case


@pytest.fixture(scope="module")
def subject_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_subject_case(tmp_path_factory.mktemp("report"))


def test_montage_written(subject_case):
    for key in ("montage",):
        data = Path(subject_case[key]).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert not list(subject_case["out"].glob(".*.tmp"))


def test_montage_label_on_another_grid_and_empty_label(tmp_path: Path):
    subj = generate_subject(4, Acquisition.preset("tiny"))
    label = subj.images["label"]
    # the same labels stored flipped (LPS) must be mapped through the affines, not indexed
    lps = label[::-1, ::-1, :].copy()
    lps_aff = subj.affine @ np.array(
        [[-1, 0, 0, label.shape[0] - 1], [0, -1, 0, label.shape[1] - 1], [0, 0, 1, 0], [0, 0, 0, 1]], float
    )
    path = qc_montage(subj.images["inphase"], subj.affine, lps, tmp_path / "a.png", label_affine=lps_aff, n_slices=4)
    assert path.read_bytes().startswith(PNG_MAGIC)
    empty = qc_montage(subj.images["inphase"], subj.affine, np.zeros_like(label), tmp_path / "b.png", n_slices=3)
    assert empty.stat().st_size > 0
    with pytest.raises(ValueError, match="label_affine"):
        qc_montage(subj.images["inphase"], subj.affine, label[:-1], tmp_path / "c.png")


def test_montage_slices_follow_the_muscles_not_the_vertebral_context(tmp_path: Path):
    from scripts.reporting.montage import _montage_slices

    lab = np.zeros((8, 8, 40), dtype=np.uint8)
    lab[2:4, 2:4, 10:20] = 7  # ES+MF on slices 10-19
    lab[4:6, 4:6, 0:40] = 12  # a "vertebral" column over the whole scan
    chosen = _montage_slices(lab, 5)
    assert chosen.min() >= 10 and chosen.max() <= 19
    subj = generate_subject(4, Acquisition.preset("tiny"))
    label = subj.images["label"].copy()
    label[(label == 0) & (subj.images["ff_true"] > 0.7)] = 14  # any context voxels: drawn, never a muscle
    path = qc_montage(subj.images["inphase"], subj.affine, label, tmp_path / "v.png", n_slices=3)
    assert path.read_bytes().startswith(PNG_MAGIC)
