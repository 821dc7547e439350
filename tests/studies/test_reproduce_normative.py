"""Recovery of the phantom's generating population: bootstrap intervals and effect estimates on known draws."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scripts.phantom.population import EFFECTS, PAPER_REFERENCE, draw_muscle_ff, draw_participant
from scripts.studies.reproduce_normative import bootstrap_quartiles, recovery_tables, run


def test_bootstrap_intervals_cover_the_population_quartiles():
    rng = np.random.default_rng(0)
    covered = 0
    for i in range(40):
        ci = bootstrap_quartiles(rng.normal(10, 2, 200), n_boot=400, seed=i)
        covered += ci[1, 0] <= 10 <= ci[1, 1]
        assert (ci[:, 0] < ci[:, 1]).all()
    assert covered >= 34  # nominal 95 %: 38 of 40 expected


@pytest.fixture(scope="module")
def drawn_cohort(tmp_path_factory):
    """The phantom's population model drawn for 600 subjects, written as a cohort run would be."""
    d = tmp_path_factory.mktemp("repro")
    rng = np.random.default_rng(7)
    parts, rows = [], []
    for i in range(600):
        p = draw_participant(f"sub-{i:04d}", rng)
        parts.append(dataclasses.asdict(p))
        ff = draw_muscle_ff(p, rng)
        for m in PAPER_REFERENCE:
            left, right = 100 * ff[(m, "left")], 100 * ff[(m, "right")]
            rows += [
                dict(subject=p.participant_id, muscle=m, side="left", ff_mean_pct=left),
                dict(subject=p.participant_id, muscle=m, side="right", ff_mean_pct=right),
                dict(subject=p.participant_id, muscle=m, side="mean", ff_mean_pct=(left + right) / 2),
            ]
    pd.DataFrame(parts).to_csv(d / "participants.tsv", sep="\t", index=False)
    pd.DataFrame(rows).to_csv(d / "ground_truth.csv", index=False)
    (d / "run").mkdir()
    pd.DataFrame(rows).to_csv(d / "run" / "cohort_ff_table.csv", index=False)
    return d


def test_the_generating_quartiles_and_effects_are_recovered(drawn_cohort):
    with pytest.warns(UserWarning, match="has no qc_status column"):
        quart, eff, qc = recovery_tables(drawn_cohort, drawn_cohort / "run")
    assert not qc.qc_columns and qc.excluded_total == 0  # a table without a verdict is used as is
    model = quart[quart.source == "model"]
    assert len(model) == 12
    med = model[model.statistic == "median"].set_index("muscle")
    for m, (_q1, q2, _q3) in PAPER_REFERENCE.items():
        assert med.at[m, "cohort"] == pytest.approx(q2, rel=0.08)
    assert model.paper_within_ci.mean() >= 0.75
    e = eff[eff.source == "model"]
    female = e[e.effect == "female"]
    assert np.allclose(female.estimated_ratio, np.exp(EFFECTS["female"]), rtol=0.06)
    assert e.generated_within_ci.mean() >= 0.75


def test_run_writes_tables_and_refuses_to_overwrite(drawn_cohort, tmp_path):
    text = run(str(drawn_cohort), str(drawn_cohort / "run"), str(tmp_path / "out"))
    assert "| psoas | median | 13.4 |" in text
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"quartiles.csv", "effects.csv", "recovery.md"}
    (tmp_path / "out" / "recovery.md").write_text("edited by the user\n")
    with pytest.raises(FileExistsError):
        run(str(drawn_cohort), str(drawn_cohort / "run"), str(tmp_path / "out"))


def test_failed_rows_are_left_out_of_the_model_statistics(drawn_cohort, tmp_path):
    # a third of the subjects' psoas rows failed QC with a wrong FF (60 %): left out, the median is recovered; kept on
    # request, the median moves up
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    table = pd.read_csv(drawn_cohort / "run" / "cohort_ff_table.csv", dtype={"subject": str})
    table["qc_status"] = "pass"
    wrong = (table.muscle == "psoas") & table.subject.isin(sorted(table.subject.unique())[::3])
    table.loc[wrong, "ff_mean_pct"] = 60.0
    table.loc[wrong, "qc_status"] = "fail"
    table.to_csv(run_dir / "cohort_ff_table.csv", index=False)
    quart, _, qc = recovery_tables(drawn_cohort, run_dir)
    assert qc.excluded["psoas"] == {"left": 200, "right": 200, "mean": 200}
    med = quart[(quart.source == "model") & (quart.statistic == "median")].set_index("muscle")
    assert med.at["psoas", "n"] == 400 and med.at["psoas", "cohort"] == pytest.approx(
        PAPER_REFERENCE["psoas"][1], rel=0.08
    )
    text = run(str(drawn_cohort), str(run_dir), str(tmp_path / "out"))
    assert "QC: 600 row(s) with qc_status 'fail' left out (psoas left 200, right 200, mean 200)" in text
    quart, _, qc = recovery_tables(drawn_cohort, run_dir, include_failed_qc=True)
    med = quart[(quart.source == "model") & (quart.statistic == "median")].set_index("muscle")
    assert qc.excluded_total == 0 and med.at["psoas", "n"] == 600 and med.at["psoas", "cohort"] > 16.0
