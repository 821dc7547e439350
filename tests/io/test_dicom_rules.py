"""User series rules (scripts/io/dicom_rules.py): bad rules refused with the reason."""

from __future__ import annotations

import pytest
from scripts.io.dicom_rules import load_rules


def test_bad_rules_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="unknown role 'waterr'"):
        load_rules({"waterr": {"SeriesDescription": "W"}})
    with pytest.raises(ValueError, match=r"water.SeriesDescription regex '\(' is invalid"):
        load_rules({"water": {"SeriesDescription": "("}})
    with pytest.raises(ValueError, match="cannot read the series rules file"):
        load_rules(str(tmp_path / "missing.json"))
