"""Phantom vs the real MuscleMap lumbar sample: the command's Markdown report names the real scan's discs, the
seeds and every table."""

from __future__ import annotations

from scripts.studies.compare_phantom_real import main

from tests.studies.phantom_real_cases import REAL_DIR, real_sample


def test_report_names_the_discs_the_seeds_and_every_table(shared_dir):
    real_sample()  # skips (or fails under REQUIRE_SHARED=1) when the sample is absent
    report = main(seeds=[0, 1], geometry="low", real_dir=REAL_DIR, out_dir=None)
    assert report.startswith("Real scan: discs L5/S1 at slice ")
    assert "Phantom seeds (sex, BMI, height factor, width factor): 0 (" in report and ", 1 (" in report
    for header in ("| muscle | band | real area |", "| muscle | band | real semi-axes |", "| ratio | real |"):
        assert header in report
    for row in ("| psoas | L4 body |", "| QL | L5 body |", "| ES+MF | S1 (upper) |", "| psoas / ES+MF |"):
        assert row in report
    assert "phantom fat" in report  # main measures the phantoms' fat image as well
