"""scripts.studies.spine_real_samples: the pieces of a spine map in world coordinates, and the run on the real
samples with spine weights."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from monai.bundle import ConfigParser
from scripts.studies.spine_real_samples import MR_SAMPLES, body_pieces, run

from tests.conftest import BUNDLE_ROOT


def test_body_pieces_know_their_volume_height_and_place_in_the_column() -> None:
    affine = np.diag([2.0, 2.0, 4.0, 1.0])
    spine = np.zeros((40, 40, 30), np.uint8)
    spine[18:23, 10:15, 2:8] = 1  # a body: 5 x 5 x 6 voxels of 16 mm3 = 2.4 mL, 20 mm high
    spine[18:23, 10:15, 10:15] = 1  # the next one, 4 voxels of disc between them
    spine[30:32, 30:32, 20:21] = 1  # a speck far off the column
    spine[18:23, 10:15, 0:2] = 2  # sacrum: not a body piece
    pieces = body_pieces(spine, affine, column_mm=15.0)
    assert len(pieces) == 3
    assert pieces["volume_ml"].tolist() == pytest.approx([2.4, 2.0, 0.064])
    assert pieces["height_mm"].tolist() == pytest.approx([20.0, 16.0, 0.0])
    assert pieces["centre_s_mm"].tolist() == pytest.approx([18.0, 48.0, 80.0])
    assert pieces["in_column"].tolist() == [True, True, False]
    # the column's median centre is at voxel (20, 12): (40, 24) mm; the speck's at (30.5, 30.5): (61, 61) mm
    assert pieces["off_column_mm"].iloc[2] == pytest.approx(np.hypot(61 - 40, 61 - 24))
    empty = body_pieces(np.zeros((4, 4, 4), np.uint8), affine)
    assert len(empty) == 0 and "in_column" in empty.columns


def test_run_on_the_real_samples_writes_tables_and_pictures(shared_dir, tmp_path) -> None:
    parser = ConfigParser()
    parser.read_config(str(BUNDLE_ROOT / "configs" / "inference.json"))
    torch.manual_seed(0)
    weights = tmp_path / "spine.pt"
    torch.save(parser.get_parsed_content("spine_network_def").state_dict(), weights)
    table = run(str(shared_dir), str(tmp_path / "out"), str(weights), str(BUNDLE_ROOT))
    assert table["sample"].tolist() == list(MR_SAMPLES)
    written = pd.read_csv(tmp_path / "out" / "samples.csv")
    assert written["sample"].tolist() == list(MR_SAMPLES)
    assert set(written["naming"]) <= {"counted", "not named", "no vertebral bodies", "uncertain"}
    for name in MR_SAMPLES:
        assert (tmp_path / "out" / f"{name}_spine.png").stat().st_size > 10_000
    with pytest.raises(FileNotFoundError, match="spine network weights not found"):
        run(str(shared_dir), str(tmp_path / "again"), str(tmp_path / "none.pt"), str(BUNDLE_ROOT))
    json.dumps(table.to_dict())  # plain values, for the docs' tables
