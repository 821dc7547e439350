"""The cohort-study commands on a synthetic cohort: reference building and group comparisons, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scripts.normative.comparison import compare_to_reference
from scripts.normative.reference_file import load_reference

from tests.conftest import BUNDLE_ROOT
from tests.normative.test_group_comparison import _cohort


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("study")
    table, parts = _cohort(n=120, seed=3)
    table.to_csv(d / "cohort_ff_table.csv", index=False)
    parts.to_csv(d / "participants.tsv", sep="\t", index=False)
    return d


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scripts.normative.cohort_study", *args],
        cwd=BUNDLE_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_build_reference_writes_a_reference_that_inference_accepts(files):
    out = files / "ref.json"
    res = _cli(
        "build_reference",
        "--cohort_table",
        str(files / "cohort_ff_table.csv"),
        "--participants",
        str(files / "participants.tsv"),
        "--output",
        str(out),
        "--min_n",
        "40",
        "--reference_id",
        "test_ref",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "n = 120" in res.stdout
    ref = load_reference(out)
    assert ref.reference_id == "test_ref" and ref.n == 120
    strata = ref.data["strata"]
    pooled = next(s for s in strata if all(v == "all" for k, v in s.items() if k in ("sex", "age_band", "activity")))
    table = pd.read_csv(files / "cohort_ff_table.csv")
    psoas = table[(table.muscle == "psoas") & (table.side == "mean")].ff_mean_pct
    entry = pooled["muscles"]["psoas"]
    assert entry["p50"] == pytest.approx(np.percentile(psoas, 50))
    assert entry["p5"] == pytest.approx(np.percentile(psoas, 5))
    # 120 subjects in 4 activity x 2 sex cells of 15: below min_n 40, flagged rather than dropped
    cells = [s for s in strata if s.get("sex") != "all" and s.get("activity") != "all" and s.get("age_band") == "all"]
    assert cells and all(s.get("small_stratum") for s in cells)
    cmp = compare_to_reference(
        table[table.subject == "s000"].rename(columns={"ff_mean_pct": "ff_mean_pct"}), ref, sex="M"
    )
    assert cmp.band.notna().any()
    # a second, different build does not overwrite the file
    res = _cli(
        "build_reference",
        "--cohort_table",
        str(files / "cohort_ff_table.csv"),
        "--participants",
        str(files / "participants.tsv"),
        "--output",
        str(out),
        "--min_n",
        "10",
    )
    assert res.returncode != 0 and "exists" in (res.stdout + res.stderr)


def test_compare_groups_writes_tables_and_figures(files):
    out = files / "groups"
    res = _cli(
        "compare_groups",
        "--cohort_table",
        str(files / "cohort_ff_table.csv"),
        "--participants",
        str(files / "participants.tsv"),
        "--out_dir",
        str(out),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    for name in (
        "sex_tests.csv",
        "activity_tests.csv",
        "activity_pairwise.csv",
        "regression.csv",
        "regression_log.csv",
        "table.md",
        "ff_by_sex_activity.png",
        "ff_vs_age.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "summary.json").read_text())["n"] == 120
    sex = pd.read_csv(out / "sex_tests.csv")
    assert (sex.p < 0.001).all()
    assert "| psoas |" in (out / "table.md").read_text()
