"""load_dixon (scripts/io/load.py): an entry without a usable Dixon set is refused, naming what it has."""

from __future__ import annotations

import pytest
from scripts.io.errors import DixonInputError
from scripts.io.load import load_dixon

from tests.io.dixon_files import water_fat


def test_incomplete_set_refused(tmp_path):
    entry = water_fat(tmp_path)
    entry["fat"] = None
    with pytest.raises(DixonInputError, match=r"subject 'S1': no usable Dixon set: found water \(S1_water\.nii\.gz\)"):
        load_dixon(entry)
