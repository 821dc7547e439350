"""The spine network study (scripts/studies/spine_study.py): vertebral Dice by known answers, and a tiny end-to-end
run on tiny anatomy-complete phantoms that resumes without redoing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scripts.phantom import generate_cohort
from scripts.studies.spine_study import ANY_BODY, run, vertebra_scores

TINY_TRAIN = {"working_spacing": [8.0, 8.0, 12.0], "num_workers": 0, "patch_size": [32, 32, 16]}
TINY_INFER = {"working_spacing": [8.0, 8.0, 12.0], "roi_size": [32, 32, 16]}


def test_vertebra_scores_by_name_and_whatever_the_name():
    truth = np.zeros((4, 4, 30), np.uint8)
    truth[..., 0:5], truth[..., 8:16], truth[..., 20:28] = 14, 13, 12  # sacrum, L5, L4
    pred = np.zeros_like(truth)
    pred[..., 0:5] = 14
    pred[..., 8:16] = 12  # L5 segmented but called L4
    pred[1, 1, 20] = 3  # a muscle voxel never counts
    rows = {r["structure"]: r for r in vertebra_scores(pred, truth)}
    assert set(rows) == {"vertebral_body_L5", "vertebral_body_L4", "sacrum", ANY_BODY}
    assert rows["sacrum"]["dice"] == 1.0 and rows["vertebral_body_L5"]["dice"] == 0.0
    assert rows["vertebral_body_L4"]["dice"] == 0.0 and rows["vertebral_body_L4"]["pred_voxels"] == 128
    assert rows[ANY_BODY]["dice"] == pytest.approx(2 * 128 / (256 + 128))
    with pytest.raises(ValueError, match="one grid"):
        vertebra_scores(pred[..., :10], truth)


def test_tiny_study_end_to_end_and_resume(tmp_path: Path):
    cohort = tmp_path / "complete"
    generate_cohort(
        cohort,
        n=4,
        seed=7,
        geometry="tiny",
        variety=False,
        n_validation=1,
        n_testing=1,
        anatomy="complete",
        progress=False,
    )
    out = tmp_path / "study"
    kwargs = dict(out_dir=str(out), epochs=1, val_interval=1, train_overrides=TINY_TRAIN, infer_overrides=TINY_INFER)
    report = Path(run(str(cohort), str(cohort), **kwargs))
    assert report.read_text().startswith("# Spine network")
    table = pd.read_csv(out / "vertebrae.csv")
    assert set(table.subject) == {"sub-0004"} and ANY_BODY in set(table.structure)
    assert table.dice.fillna(0).between(0, 1).all()
    assert (out / "train" / "models" / "model.pt").is_file() and (out / "levels_summary.csv").is_file()
    stamp = (out / "test" / ".done.json").stat().st_mtime_ns
    run(str(cohort), str(cohort), **kwargs)
    assert (out / "test" / ".done.json").stat().st_mtime_ns == stamp
    empty = tmp_path / "no_tests"
    empty.mkdir()
    (empty / "datalist.json").write_text('{"testing": []}')
    with pytest.raises(ValueError, match="vertebral maps"):
        run(str(cohort), str(empty), **kwargs)
