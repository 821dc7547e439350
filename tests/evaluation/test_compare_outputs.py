"""scripts.evaluation.compare_outputs: agreement of two output folders, on hand-made folders with known answers."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scripts.evaluation.compare_outputs import compare_outputs, main

AFFINE = np.diag([2.0, 2.0, 4.0, 1.0])


def _write_run(root: Path, seg: dict[str, np.ndarray], ff: dict[tuple[str, int], tuple[float, float]]) -> Path:
    root.mkdir()
    rows = []
    for subject, labels in seg.items():
        (root / subject).mkdir()
        nib.save(nib.Nifti1Image(labels.astype(np.uint8), AFFINE), str(root / subject / f"{subject}_seg.nii.gz"))
        for value in sorted(set(np.unique(labels)) - {0}):
            mean, vol = ff[(subject, int(value))]
            rows.append(
                {"subject": subject, "label": int(value), "aggregation": "label", "ff_mean_pct": mean, "volume_ml": vol}
            )
        # an L/R-mean row, which the comparison leaves out
        rows.append({"subject": subject, "label": 0, "aggregation": "mean", "ff_mean_pct": 99.0, "volume_ml": 1.0})
    pd.DataFrame(rows).to_csv(root / "cohort_ff_table.csv", index=False)
    return root


def _labels(shift: int = 0) -> np.ndarray:
    lab = np.zeros((10, 10, 4), np.uint8)
    lab[0:4, 0:5, :] = 1  # 80 voxels
    lab[5 + shift : 9 + shift, 0:5, :] = 2  # 80 voxels, shifted by `shift` rows in run B
    return lab


def test_known_dice_and_differences(tmp_path):
    a = _write_run(tmp_path / "a", {"sub-01": _labels()}, {("sub-01", 1): (10.0, 5.0), ("sub-01", 2): (20.0, 6.0)})
    b = _write_run(
        tmp_path / "b", {"sub-01": _labels(shift=1)}, {("sub-01", 1): (10.5, 5.0), ("sub-01", 2): (19.0, 6.25)}
    )
    df = compare_outputs(a, b).set_index("label")
    assert df.loc[1, "dice"] == pytest.approx(1.0)
    # a 4-row block shifted by one row: 3 of 4 rows overlap, Dice = 2 * 60 / (80 + 80)
    assert df.loc[2, "dice"] == pytest.approx(0.75)
    assert df.loc[1, "ff_mean_diff_pp"] == pytest.approx(0.5)
    assert df.loc[2, "ff_mean_diff_pp"] == pytest.approx(-1.0)
    assert df.loc[2, "volume_diff_ml"] == pytest.approx(0.25)
    assert list(df["name"]) == ["psoas_left", "psoas_right"]


def test_summary_and_csv(tmp_path, capsys):
    a = _write_run(tmp_path / "a", {"sub-01": _labels()}, {("sub-01", 1): (10.0, 5.0), ("sub-01", 2): (20.0, 6.0)})
    out = tmp_path / "agreement.csv"
    main(str(a), str(a), out_csv=str(out))
    text = capsys.readouterr().out
    assert "Dice min 1.0000" in text and "max 0.000 pp" in text
    assert len(pd.read_csv(out)) == 2


def test_different_subjects_refused(tmp_path):
    a = _write_run(tmp_path / "a", {"sub-01": _labels()}, {("sub-01", 1): (1.0, 1.0), ("sub-01", 2): (1.0, 1.0)})
    b = _write_run(tmp_path / "b", {"sub-02": _labels()}, {("sub-02", 1): (1.0, 1.0), ("sub-02", 2): (1.0, 1.0)})
    with pytest.raises(ValueError, match=r"different subjects: only in A \['sub-01'\]"):
        compare_outputs(a, b)


def test_missing_table_and_grid_mismatch(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="cohort_ff_table.csv: no cohort table"):
        compare_outputs(tmp_path / "empty", tmp_path / "empty")
    a = _write_run(tmp_path / "a", {"sub-01": _labels()}, {("sub-01", 1): (1.0, 1.0), ("sub-01", 2): (1.0, 1.0)})
    b = _write_run(
        tmp_path / "b", {"sub-01": _labels()[:, :, :3]}, {("sub-01", 1): (1.0, 1.0), ("sub-01", 2): (1.0, 1.0)}
    )
    with pytest.raises(ValueError, match="sub-01: label maps .* different grids"):
        compare_outputs(a, b)
