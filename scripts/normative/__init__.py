"""Normative reference values: reference files, comparison of a subject, building, group comparisons."""
