"""Normative reference values of lumbar muscle fat fraction, and group comparisons of a cohort.

A reference is a versioned JSON data file of FF percentiles per stratum (sex, age band, activity):

- :mod:`~scripts.normative.conventions`: percentile keys, stratum levels, sides, age bands.
- :mod:`~scripts.normative.schema`: the file schema and its validator.
- :mod:`~scripts.normative.strata`: a validated reference and the stratum chosen for a subject.
- :mod:`~scripts.normative.reference_file`: load and save a reference file; the shipped paper reference.
- :mod:`~scripts.normative.distributions`: distributions fitted to quartiles, percentiles and z-scores.
- :mod:`~scripts.normative.comparison`: one subject's FF against a reference.
- :mod:`~scripts.normative.centiles`: age centile curves by quantile regression.
- :mod:`~scripts.normative.building`: a reference built from a cohort table.
- :mod:`~scripts.normative.group_comparison`, :mod:`~scripts.normative.cohort_study`: group tests and the cohort
  study commands.
"""
