"""The stated lowest vertebra per subject: the run's value, a participants.tsv column over it, clear refusals, and
its way into the naming steps and each subject's run record."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scripts.pipeline.keys import SPINE_KEY, VERTEBRA_NAMING_KEY
from scripts.pipeline.lowest_vertebra import StatedLowestVertebra
from scripts.pipeline.run_record import RunRecord
from scripts.pipeline.spine_labels import MergeSpineLabelsd

from tests.quantification.level_cases import cut_above_sacrum, spine_label


def _participants(tmp_path, rows: str) -> str:
    path = tmp_path / "participants.tsv"
    path.write_text("participant_id\tage\tlowest_vertebra\n" + rows)
    return str(path)


def test_the_run_value_holds_unless_the_subjects_row_states_its_own(tmp_path):
    path = _participants(tmp_path, "sub-01\t50\tl4\nsub-02\t60\t\n")
    stated = StatedLowestVertebra("L5", path)
    assert (stated("sub-01"), stated("sub-02"), stated("sub-03")) == ("L4", "L5", "L5")
    assert StatedLowestVertebra(None, path)("sub-02") is None
    # no file, or a table without the column: the run's value for everyone
    assert StatedLowestVertebra("l3", str(tmp_path / "none.tsv"))("sub-01") == "L3"
    (tmp_path / "plain.tsv").write_text("participant_id\tage\nsub-01\t50\n")
    assert StatedLowestVertebra(None, str(tmp_path / "plain.tsv"))("sub-01") is None


def test_a_wrong_cell_is_refused_naming_the_file_line_subject_and_what_is_accepted(tmp_path):
    path = _participants(tmp_path, "sub-01\t50\tL5\nsub-02\t60\tS1\n")
    with pytest.raises(ValueError, match=r"participants.tsv, line 3 \(sub-02\): lowest_vertebra 'S1' is not one of L1"):
        StatedLowestVertebra(None, path)
    (tmp_path / "noid.tsv").write_text("subject\tlowest_vertebra\nsub-01\tL5\n")
    with pytest.raises(ValueError, match="needs a participant_id column"):
        StatedLowestVertebra(None, str(tmp_path / "noid.tsv"))
    with pytest.raises(ValueError, match="lowest_vertebra must be one of"):
        StatedLowestVertebra("T12")


def test_each_subject_is_named_from_its_own_statement_and_its_run_record_keeps_it(tmp_path):
    truth, aff = cut_above_sacrum(spine_label())  # from the L5/S1 disc up: no sacrum in view
    maps = {"pred": np.where(truth <= 8, truth, 0), SPINE_KEY: np.where((truth >= 9) & (truth <= 13), 1, 0)}

    def entry(subject):
        tensors = {
            k: MetaTensor(torch.as_tensor(v[None].astype(np.float32)), affine=torch.as_tensor(aff))
            for k, v in maps.items()
        }
        return {"subject": subject, **tensors}

    stated = StatedLowestVertebra(None, _participants(tmp_path, "sub-01\t50\tL5\n"))
    step = MergeSpineLabelsd("pred", lowest_vertebra=stated)
    named, unnamed = step(entry("sub-01")), step(entry("sub-02"))
    np.testing.assert_array_equal(named["pred"][0].numpy().astype(np.uint8), truth)
    assert named[VERTEBRA_NAMING_KEY]["anchor"] == "stated lowest body L5"
    assert unnamed[VERTEBRA_NAMING_KEY]["status"] == "not named"
    record = RunRecord(output_dir=str(tmp_path / "eval"), lowest_vertebra=stated)
    files = {"inphase": str(tmp_path / "participants.tsv")}
    assert record.manifest("sub-01", files)["settings"]["lowest_vertebra"] == "L5"
    assert record.manifest("sub-02", files)["settings"]["lowest_vertebra"] is None
    assert json.dumps(record.manifest("sub-01", files))  # JSON-able as written


def test_a_request_states_it_for_its_own_image_over_the_table_and_the_run(tmp_path):
    """MONAI Label hands an infer request's parameters to the pipeline as keys of the entry."""
    stated = StatedLowestVertebra("L3", _participants(tmp_path, "sub-01\t50\tL4\n"))
    assert stated.for_entry({"subject": "sub-01"}) == "L4"
    assert stated.for_entry({"subject": "sub-01", "lowest_vertebra": " l5 "}) == "L5"
    # an empty option (what the MONAI Label client sends when nothing is stated) leaves the table and the run's value
    assert stated.for_entry({"subject": "sub-02", "lowest_vertebra": ""}) == "L3"
    with pytest.raises(ValueError, match=r"the request's lowest_vertebra 'S1' is not one of L1, L2, L3, L4, L5"):
        stated.for_entry({"subject": "sub-01", "lowest_vertebra": "S1"})
