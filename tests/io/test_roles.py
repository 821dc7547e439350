"""The Dixon role a file name stands for (scripts/io/roles.py)."""

from __future__ import annotations

import pytest
from scripts.io.roles import recognise_role


@pytest.mark.parametrize(
    "name, role, prefix",
    [
        ("P01_W.nii.gz", "water", "P01"),
        ("sub-0001_water.nii.gz", "water", "sub-0001"),
        ("P01_dixon_W.nii", "water", "P01"),
        ("P01_F.NII.GZ", "fat", "P01"),
        ("P01_IP.nii.gz", "inphase", "P01"),
        ("P01_in-phase.nii.gz", "inphase", "P01"),
        ("P01_OP.nii.gz", "opposed", "P01"),
        ("P01_out_phase.nii.gz", "opposed", "P01"),
        ("P01_fat_fraction.nii.gz", "ff", "P01"),
        ("P01_PDFF.nii.gz", "ff", "P01"),
        ("P01_seg.nii.gz", "label", "P01"),
        ("water.nii.gz", "water", ""),
        ("sub-0001_ff_true.nii.gz", None, "sub-0001_ff_true"),
        ("P01W.nii.gz", None, "P01W"),
        ("notes_w.txt", None, "notes_w.txt"),
    ],
)
def test_recognise_role(name, role, prefix):
    assert recognise_role(name) == (role, prefix)


@pytest.mark.parametrize(
    "name, role, prefix",
    [
        ("f_trunc_W.nii.gz", "water", "f_trunc"),
        ("f_trunc_F.nii.gz", "fat", "f_trunc"),
        ("w_scan_fat.nii.gz", "fat", "w_scan"),
    ],
)
def test_a_subject_name_with_a_role_letter_keeps_the_last_token_as_role(name, role, prefix):
    assert recognise_role(name) == (role, prefix)
