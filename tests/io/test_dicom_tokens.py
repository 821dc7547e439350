"""Vendor role tokens of a SeriesDescription (scripts/io/dicom_tokens.py)."""

from __future__ import annotations

import pytest
from scripts.io.dicom_tokens import description_tokens, role_from_description


@pytest.mark.parametrize(
    "description, role",
    [
        ("t1_vibe_dixon_tra_W", "water"),
        ("t1_vibe_dixon_tra_F", "fat"),
        ("t1_vibe_dixon_tra_in", "inphase"),
        ("t1_vibe_dixon_tra_opp", "opposed"),
        ("WATER: Ax LAVA-Flex", "water"),
        ("FAT: Ax LAVA-Flex", "fat"),
        ("InPhase: Ax LAVA-Flex", "inphase"),
        ("OutPhase: Ax LAVA-Flex", "opposed"),
        ("FatFrac: Ax IDEAL IQ", "ff"),
        ("mDIXON W", "water"),
        ("mDIXON IP", "inphase"),
        ("mDIXON OP", "opposed"),
        ("Fat fraction map", "ff"),
        ("out of phase", "opposed"),
        ("T2 FAT SAT ax", None),
        ("t2_tse_tra", None),
        ("localizer", None),
    ],
)
def test_description_tokens_name_the_role(description, role):
    assert role_from_description(description)[0] == role, description_tokens(description)
