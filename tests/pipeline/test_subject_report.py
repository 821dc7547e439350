"""Tests of scripts.pipeline.subject_report: the write_report modes as the config and the settings read them."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigParser
from scripts.configuration.settings import SettingsExit, validate_inference_settings
from scripts.pipeline.subject_report import SubjectReportd, report_mode

from tests.conftest import BUNDLE_ROOT


@pytest.mark.parametrize(
    ("value", "mode"), [(True, "true"), ("yes", "true"), ("False", "false"), (0, "false"), ("Later", "later")]
)
def test_report_mode_reads_booleans_in_any_spelling_and_later(value, mode):
    assert report_mode(value) == mode
    assert SubjectReportd("pred", enabled=value).enabled is (mode != "false")


def test_other_values_are_refused_with_what_is_accepted():
    with pytest.raises(ValueError, match="true, false or later, not 'sometimes'"):
        report_mode("sometimes")
    with pytest.raises(SettingsExit, match="write_report must be one of true/false/yes/no/1/0/later"):
        validate_inference_settings(write_report="sometimes")
    assert validate_inference_settings(write_report="LATER")["write_report"] == "later"
    assert validate_inference_settings(write_report="no")["write_report"] is False


def test_write_report_later_reaches_the_report_step_of_inference_json():
    parser = ConfigParser()
    parser.read_config(BUNDLE_ROOT / "configs" / "inference.json")
    parser.update({"write_report": "later"})
    steps = parser.get_parsed_content("postprocessing").transforms
    assert [s.mode for s in steps if isinstance(s, SubjectReportd)] == ["later"]
