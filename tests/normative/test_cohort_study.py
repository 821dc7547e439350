"""The cohort-study commands on a synthetic cohort: reference building and group comparisons, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scripts.configuration.settings import typed_cli
from scripts.normative import cohort_study
from scripts.normative.comparison import compare_to_reference
from scripts.normative.group_comparison import refresh_group_tests
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


@pytest.fixture(scope="module")
def qc_files(tmp_path_factory):
    """40 subjects; s001 psoas left and s002 ES+MF right failed the quality check (so did their L/R means)."""
    d = tmp_path_factory.mktemp("qc_study")
    table, parts = _cohort(n=40, seed=5)
    table["qc_status"] = "pass"
    for subject, muscle, side in (("s001", "psoas", "left"), ("s002", "erector_spinae_multifidus", "right")):
        rows = (table.subject == subject) & (table.muscle == muscle) & table.side.isin([side, "mean"])
        table.loc[rows, "qc_status"] = "fail"
    table.to_csv(d / "cohort_ff_table.csv", index=False)
    parts.to_csv(d / "participants.tsv", sep="\t", index=False)
    return d, table


def _pooled(path):
    strata = json.loads(path.read_text())["strata"]
    return next(s for s in strata if all(s[k] == "all" for k in ("sex", "age_band", "activity")))


def test_reference_leaves_failed_sides_out_by_default_and_keeps_them_on_request(qc_files):
    d, table = qc_files
    build = typed_cli(cohort_study.build_reference)  # as fire calls it: "no" / "yes" arrive as text
    args = (str(d / "cohort_ff_table.csv"), str(d / "participants.tsv"))
    line = build(*args, str(d / "ref.json"), min_n=5, include_failed_qc="no")
    assert "QC: 4 row(s) with qc_status 'fail' left out" in line
    pooled = _pooled(d / "ref.json")
    n = {m: e["n"] for m, e in pooled["muscles"].items()}
    assert n == {"psoas": 39, "iliacus": 40, "quadratus_lumborum": 40, "erector_spinae_multifidus": 39}
    assert pooled["per_side"]["left"]["psoas"]["n"] == 39 and pooled["per_side"]["right"]["psoas"]["n"] == 40
    kept = table[(table.muscle == "psoas") & (table.side == "mean") & (table.subject != "s001")].ff_mean_pct
    assert pooled["muscles"]["psoas"]["p50"] == pytest.approx(np.percentile(kept, 50))
    source = load_reference(d / "ref.json").data["source"]
    assert source["qc_excluded"]["psoas"] == {"left": 1, "right": 0, "mean": 1}
    assert source["qc_excluded"]["erector_spinae_multifidus"] == {"left": 0, "right": 1, "mean": 1}
    assert source["qc_excluded_total"] == 4 and "'fail'" in source["qc_rule"] and not source["include_failed_qc"]

    build(*args, str(d / "ref_all.json"), min_n=5, include_failed_qc="yes")
    assert {e["n"] for e in _pooled(d / "ref_all.json")["muscles"].values()} == {40}
    source = load_reference(d / "ref_all.json").data["source"]
    assert source["include_failed_qc"] and source["qc_excluded_total"] == 0 and source["qc_failed_rows_total"] == 4


def test_a_cohort_whose_every_mean_failed_is_refused_in_words(qc_files, tmp_path):
    d, table = qc_files
    failed = table.assign(qc_status=np.where(table.side == "mean", "fail", "pass"))
    failed.to_csv(tmp_path / "cohort_ff_table.csv", index=False)
    build = typed_cli(cohort_study.build_reference)
    args = (str(tmp_path / "cohort_ff_table.csv"), str(d / "participants.tsv"))
    with pytest.raises(ValueError, match=r"no subject has a usable L/R-mean FF.*160 row\(s\) were left out") as err:
        build(*args, str(tmp_path / "ref.json"), min_n=5)
    assert "--include_failed_qc true" in str(err.value) and not (tmp_path / "ref.json").exists()
    build(*args, str(tmp_path / "ref.json"), min_n=5, include_failed_qc="true")
    assert {e["n"] for e in _pooled(tmp_path / "ref.json")["muscles"].values()} == {40}


def test_reference_from_a_table_without_verdict_warns_and_uses_every_row(qc_files, tmp_path):
    d, table = qc_files
    table.drop(columns="qc_status").to_csv(tmp_path / "old.csv", index=False)
    with pytest.warns(UserWarning, match="has no qc_status column"):
        cohort_study.build_reference(str(tmp_path / "old.csv"), str(d / "participants.tsv"), str(tmp_path / "r.json"))
    assert {e["n"] for e in _pooled(tmp_path / "r.json")["muscles"].values()} == {40}
    assert load_reference(tmp_path / "r.json").data["source"]["qc_columns_present"] is False


def test_group_comparison_leaves_failed_sides_out_and_says_how_many(qc_files):
    d, _ = qc_files
    compare = typed_cli(cohort_study.compare_groups)
    args = (str(d / "cohort_ff_table.csv"), str(d / "participants.tsv"))
    text = compare(*args, str(d / "groups"), plots="false")
    sex = pd.read_csv(d / "groups" / "sex_tests.csv").set_index("muscle")
    assert (sex.n_M + sex.n_F).to_dict() == {
        "psoas": 39,
        "iliacus": 40,
        "quadratus_lumborum": 40,
        "erector_spinae_multifidus": 39,
    }
    assert sex.qc_excluded_rows.to_dict() == {
        "psoas": 1,
        "iliacus": 0,
        "quadratus_lumborum": 0,
        "erector_spinae_multifidus": 1,
    }
    assert pd.read_csv(d / "groups" / "activity_tests.csv").qc_excluded_rows.sum() == 2
    note = "QC: 2 row(s) of side mean with qc_status 'fail' left out (psoas mean 1; erector_spinae_multifidus mean 1)"
    assert note in text and note in (d / "groups" / "table.md").read_text()
    assert "| psoas | 39 |" in text
    assert json.loads((d / "groups" / "summary.json").read_text())["qc_excluded"]["psoas"]["mean"] == 1
    # the count column is not an "n_<level>" column: refreshing the effect sizes from the CSVs keeps n = 39
    before = pd.read_csv(d / "groups" / "activity_tests.csv").epsilon2
    refresh_group_tests(d / "groups")
    pd.testing.assert_series_equal(pd.read_csv(d / "groups" / "activity_tests.csv").epsilon2, before)

    compare(*args, str(d / "groups_all"), plots="false", include_failed_qc="1")
    sex = pd.read_csv(d / "groups_all" / "sex_tests.csv")
    assert set(sex.n_M + sex.n_F) == {40} and sex.qc_excluded_rows.sum() == 0


def test_per_level_reference_as_the_guide_runs_it(tmp_path):
    from tests.normative.level_cohort import N_CLEAN, write_level_cohort

    paths = write_level_cohort(tmp_path / "eval_cohort")
    common = ["--cohort_table", str(paths["table"]), "--participants", str(paths["participants"])]
    res = _cli("build_reference", *common, "--output", str(tmp_path / "my_reference.json"), "--per_level", "true")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "levels (mid_disc): L1 n = 42, L2 n = 42, L3 n = 42, L4 n = 42, L5 n = 42" in res.stdout
    assert "20 uncertain subject-level(s) left out (L1 4, L2 4, L3 4, L4 4, L5 4)" in res.stdout
    assert "per level: QC: 5 row(s) with qc_status 'fail' left out (psoas left 5)" in res.stdout
    ref = load_reference(tmp_path / "my_reference.json")
    block = ref.data["vertebral_levels"]
    assert block["level_table"] == "cohort_ff_levels.csv" and block["qc_excluded"]["psoas"]["left"] == 5
    assert block["uncertain_excluded"]["L3"] == 4 and block["boundary_rule"] == "mid_disc"
    l3 = ref.for_level("L3").select()
    assert l3.entry("psoas", "left")["p50"] == pytest.approx(14.0) and l3.entry("psoas", "left")["n"] == N_CLEAN
    # the whole-muscle strata are those of a build without --per_level
    res = _cli("build_reference", *common, "--output", str(tmp_path / "plain.json"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert load_reference(tmp_path / "plain.json").data["strata"] == ref.data["strata"]


def test_per_level_reference_takes_the_verdict_from_the_cohort_table_or_refuses_without_levels(tmp_path):
    from tests.normative.level_cohort import N_CLEAN, write_level_cohort

    paths = write_level_cohort(tmp_path / "old", with_qc=False)  # a per-level file without qc_status
    cohort_study.build_reference(
        str(paths["table"]), str(paths["participants"]), str(tmp_path / "ref.json"), per_level=True
    )
    entry = load_reference(tmp_path / "ref.json").for_level("L3").select().entry("psoas", "left")
    assert entry["n"] == N_CLEAN and entry["p50"] == pytest.approx(14.0)  # f0's failed side still withheld
    paths["levels"].unlink()
    with pytest.raises(FileNotFoundError, match=r"cohort_ff_levels.csv not found: .*spine network.*--num_classes"):
        cohort_study.build_reference(
            str(paths["table"]), str(paths["participants"]), str(tmp_path / "r2.json"), per_level=True
        )
    assert not (tmp_path / "r2.json").exists()
