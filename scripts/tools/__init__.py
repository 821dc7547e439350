"""Benchmarks, documentation figures and release tooling; not part of the runtime."""
