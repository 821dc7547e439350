"""Command-line spellings of config values (scripts/configuration/values.py)."""

from __future__ import annotations

import pytest
from scripts.configuration.values import as_bool, overrides_from_cli


@pytest.mark.parametrize(
    "value, want",
    [
        (True, True),
        (False, False),
        ("false", False),
        ("False", False),
        (" TRUE ", True),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("No", False),
        (1, True),
        (0, False),
    ],
)
def test_as_bool_reads_command_line_spellings(value, want):
    assert as_bool(value, "flip_ensemble") is want


@pytest.mark.parametrize("value", ["maybe", "off", 2, None, [True]])
def test_as_bool_refuses_other_values_naming_the_setting(value):
    # read by truthiness, each of these would switch the setting on without the user saying so
    with pytest.raises(ValueError, match="adapt_batch_norm must be true or false"):
        as_bool(value, "adapt_batch_norm")


def test_overrides_from_json_or_mapping():
    assert overrides_from_cli('{"adapt_batch_norm": false, "roi_size": [8, 8, 16]}') == {
        "adapt_batch_norm": False,
        "roi_size": [8, 8, 16],
    }
    assert overrides_from_cli({"flip_ensemble": True}) == {"flip_ensemble": True}
    assert overrides_from_cli(None) is None
    for bad in ("[1, 2]", "{adapt_batch_norm: false}", "3"):
        with pytest.raises(ValueError, match="overrides must be a JSON object of config ids"):
            overrides_from_cli(bad)
