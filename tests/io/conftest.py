"""Fixtures of the io tests: a tiny phantom cohort on disk, and one tiny DICOM study per vendor style."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripts.phantom import Acquisition, generate_subject

from tests.io.dicom_studies import write_vendor_studies
from tests.io.dixon_files import phantom_cohort


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    """Two tiny phantom subjects (one in "testing") written by the phantom's own cohort writer."""
    return phantom_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="session")
def tiny_subject():
    return generate_subject(5, Acquisition.preset("tiny"))


@pytest.fixture(scope="session")
def studies(tiny_subject, tmp_path_factory) -> dict[str, Path]:
    """One tiny study per vendor style (read-only: tests that damage a study copy it first)."""
    return write_vendor_studies(tiny_subject, tmp_path_factory)
