"""discover_subjects / inference_datalist (scripts/io/discover.py): a subject without a usable set fails alone."""

from __future__ import annotations

import pytest
from scripts.io.discover import inference_datalist
from scripts.io.errors import DixonInputError
from scripts.io.load import load_dixon
from scripts.phantom import Acquisition, generate_subject, write_subject


def test_a_subject_without_a_usable_set_fails_alone_and_a_folder_of_them_is_refused(tmp_path):
    # one subject with only its FF map must not stop the discovery of the others (a cohort run records it alone)
    for seed in (1, 2):
        write_subject(generate_subject(seed, Acquisition.preset("tiny")), tmp_path)
    lonely = tmp_path / "sub-0003"
    lonely.mkdir()
    ff = next(tmp_path.glob("sub-*/*_ff.nii.gz"))
    (lonely / "sub-0003_ff.nii.gz").write_bytes(ff.read_bytes())
    entries = {e["subject"]: e for e in inference_datalist(tmp_path)}
    assert len(entries) == 3 and "image" not in entries["sub-0003"] and "image" in entries["sub-0001"]
    with pytest.raises(DixonInputError, match="no usable Dixon set: found FF map"):
        load_dixon(entries["sub-0003"])
    only = tmp_path / "only"
    (only / "sub-0003").mkdir(parents=True)
    (only / "sub-0003" / "sub-0003_ff.nii.gz").write_bytes(ff.read_bytes())
    with pytest.raises(ValueError, match="no subject has a usable Dixon set"):
        inference_datalist(only)
