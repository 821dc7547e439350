"""Tests of scripts.quantification.tables: atomic subject tables that refuse different content, the cohort CSV."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scripts.quantification.columns import SLICE_COLUMNS, TABLE_COLUMNS
from scripts.quantification.statistics import quantify_muscles
from scripts.quantification.tables import CohortTable, write_tables

from tests.quantification.quant_cases import BOX, PROV, box_case


def test_write_tables_atomic_and_refuses_different_content(tmp_path: Path):
    label, ff = box_case()
    res = quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV)
    paths = write_tables(res, tmp_path, "sub-01")
    assert {p.name for p in paths.values()} == {"sub-01_ff_table.csv", "sub-01_ff_table.json", "sub-01_ff_slices.csv"}
    table = pd.read_csv(paths["table_csv"])
    assert list(table.columns) == list(TABLE_COLUMNS) and table.subject.eq("sub-01").all()
    assert math.isnan(table.loc[2, "ff_mean_pct"]) and table.loc[2, "n_voxels"] == 0  # empty field, not 0
    doc = json.loads(paths["table_json"].read_text())
    assert doc["meta"]["provenance"] == PROV and "ff_*_pct" in doc["meta"]["units"]
    assert doc["records"][0]["ff_mean_pct"] == pytest.approx(32.0) and doc["records"][2]["ff_mean_pct"] is None
    assert pd.read_csv(paths["slices_csv"]).shape == (5, len(SLICE_COLUMNS))

    mtimes = {k: os.stat(p).st_mtime_ns for k, p in paths.items()}
    write_tables(res, tmp_path, "sub-01")  # identical content: left untouched
    assert {k: os.stat(p).st_mtime_ns for k, p in paths.items()} == mtimes

    ff2 = ff.copy()
    ff2[BOX] += 0.01
    other = quantify_muscles(label, np.eye(4), ff2, np.eye(4), PROV)
    before = paths["table_csv"].read_text()
    with pytest.raises(FileExistsError, match="sub-01_ff_table.csv"):
        write_tables(other, tmp_path, "sub-01")
    assert paths["table_csv"].read_text() == before
    write_tables(other, tmp_path, "sub-01", overwrite=True)
    assert paths["table_csv"].read_text() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())  # no temp files
    with pytest.raises(ValueError, match="subject"):
        write_tables(quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV, subject="a"), tmp_path, "b")


def test_cohort_table_replaces_one_subject(tmp_path: Path):
    label, ff = box_case()
    table = quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV).table
    cohort = CohortTable(tmp_path / "cohort.csv")
    assert cohort.subjects() == []
    cohort.add(table, subject="0002")
    cohort.add(table, subject="0001")
    assert cohort.subjects() == ["0001", "0002"]  # text ids keep their leading zeros
    changed = table.assign(ff_mean_pct=table.ff_mean_pct + 1.0)
    cohort.add(changed, subject="0002")
    df = cohort.read()
    assert len(df) == 24 and df.subject.tolist() == ["0001"] * 12 + ["0002"] * 12
    assert df[df.subject == "0002"].ff_mean_pct.iloc[0] == pytest.approx(33.0)
    assert df[df.subject == "0001"].ff_mean_pct.iloc[0] == pytest.approx(32.0)
    assert df[df.subject == "0001"].side.tolist() == table.side.tolist()  # row order within a subject kept
    with pytest.raises(ValueError, match="one subject"):
        cohort.add(pd.concat([table.assign(subject="a"), table.assign(subject="b")]))
    assert cohort.remove("0001") and cohort.subjects() == ["0002"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cohort_table_appends_new_subjects_without_reading(tmp_path: Path, monkeypatch):
    label, ff = box_case()
    table = quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV).table
    subjects = [f"sub-{i:03d}" for i in range(1, 7)]
    # reference: every add reads and rewrites the whole file (a fresh object per add knows nothing of the file)
    for i, s in enumerate(subjects):
        CohortTable(tmp_path / "rewrite.csv").add(table.assign(ff_mean_pct=table.ff_mean_pct + i), subject=s)
    fast = CohortTable(tmp_path / "append.csv")
    fast.add(table.assign(ff_mean_pct=table.ff_mean_pct + 0), subject=subjects[0])
    reads = []
    monkeypatch.setattr(CohortTable, "read", lambda self: reads.append(1) or pytest.fail("read"))
    for i, s in enumerate(subjects[1:], start=1):
        fast.add(table.assign(ff_mean_pct=table.ff_mean_pct + i), subject=s)
    monkeypatch.undo()
    assert reads == []
    assert (tmp_path / "append.csv").read_bytes() == (tmp_path / "rewrite.csv").read_bytes()


def test_cohort_table_rewrites_when_the_file_changed_or_order_needs_it(tmp_path: Path):
    label, ff = box_case()
    table = quantify_muscles(label, np.eye(4), ff, np.eye(4), PROV).table
    mine, other = CohortTable(tmp_path / "c.csv"), CohortTable(tmp_path / "c.csv")  # e.g. two DDP ranks
    mine.add(table, subject="b")
    other.add(table, subject="d")  # written by someone else: mine must not append blindly
    mine.add(table, subject="e")
    mine.add(table, subject="a")  # sorts first: rewritten, not appended
    mine.add(table.assign(ff_mean_pct=table.ff_mean_pct + 5), subject="e")  # redone: its rows replaced
    df = mine.read()
    assert df.subject.tolist() == [s for s in "abde" for _ in range(len(table))]
    assert df[df.subject == "e"].ff_mean_pct.iloc[0] == pytest.approx(table.ff_mean_pct.iloc[0] + 5)
