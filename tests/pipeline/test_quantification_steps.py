"""The quantification steps of inference.json: resume identity from the whole content of every input, results staged
and swapped in only when complete, silent input corrections made visible in the tables, the JSON and the report."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from monai.data import MetaTensor
from scripts.pipeline.keys import STAGING_DIR
from scripts.pipeline.load_dixon import LoadDixond
from scripts.pipeline.mark_done import MarkDoned
from scripts.pipeline.run_record import file_fingerprint

from tests.pipeline.helpers import lean_body, loaded, quantification_steps, quantify_and_finish


def test_a_change_after_the_first_mib_is_a_different_input(tmp_path):
    # failed check 3: inputs were identified by name, size and a hash of the first MiB only
    path = tmp_path / "water.nii"
    payload = bytearray(np.random.default_rng(0).bytes(3 << 20))
    path.write_bytes(payload)
    before = file_fingerprint(path)
    payload[(2 << 20) + 5] ^= 0xFF  # same name, same size, same first MiB
    path.write_bytes(payload)
    after = file_fingerprint(path)
    assert before["size"] == after["size"] and before["sha256"] != after["sha256"]


def _quantified(tmp_path: Path, out: Path, **kwargs):
    files, label, affine = lean_body(tmp_path)
    steps = quantification_steps(out, **kwargs)
    return steps, steps(loaded(files, label, affine)), files


def test_nothing_is_rewritten_until_the_new_results_are_complete(tmp_path):
    # failed check 4: a run that stopped part-way had rewritten the run record while the tables kept old numbers
    out = tmp_path / "eval"
    quantify, d, files = _quantified(tmp_path, out)
    done = MarkDoned(output_dir=str(out))
    done(d)
    sdir = out / "lean"
    assert (sdir / "lean_done.json").is_file() and not (out / STAGING_DIR).exists()
    first = {p.name: p.read_bytes() for p in sdir.iterdir()}
    assert set(pd.read_csv(out / "cohort_ff_table.csv").subject) == {"lean"}
    # a second run with another setting and overwrite: it stops after quantifying (before MarkDoned)
    _, d2, _ = _quantified(tmp_path, out, overwrite="true", border_trim_ff=0.5)
    assert {p.name: p.read_bytes() for p in sdir.iterdir()} == first, "results changed before the run completed"
    assert json.loads((out / STAGING_DIR / "lean" / "lean_run.json").read_text())["settings"]["border_trim_ff"] == 0.5
    done(d2)  # completes: the whole folder is swapped in
    assert json.loads((sdir / "lean_run.json").read_text())["settings"]["border_trim_ff"] == 0.5
    assert json.loads((sdir / "lean_done.json").read_text()) == json.loads((sdir / "lean_run.json").read_text())
    assert not (out / STAGING_DIR).exists()
    assert not list(out.glob("*.lock")), "a lock file was left behind"


def test_overwrite_false_spelled_in_lower_case_refuses_a_different_run(tmp_path):
    # failed check 1: "--overwrite false" used to replace earlier results
    out = tmp_path / "eval"
    _, d, _ = _quantified(tmp_path, out)
    MarkDoned(output_dir=str(out))(d)
    with pytest.raises(FileExistsError, match="different run"):
        _quantified(tmp_path, out, overwrite="false", border_trim_ff=0.5)


def test_input_corrections_appear_in_flags_json_and_report_provenance(tmp_path):
    files, label, affine = lean_body(tmp_path)
    water = nib.load(files["water"])
    data = np.asarray(water.dataobj, dtype=np.float32)
    data[0, 0, 0] = -5.0  # one noise voxel below zero: clipped, and now said so
    nib.save(nib.Nifti1Image(data, water.affine), files["water"])
    out = tmp_path / "eval"
    with pytest.warns(RuntimeWarning, match="clipped to 0"):
        d = LoadDixond(keys="image")({**files, "subject": "lean"})
    d["pred"] = MetaTensor(torch.as_tensor(label[None]), affine=torch.as_tensor(affine))
    quantify_and_finish(out, d, report=True)
    sdir = out / "lean"
    table = pd.read_csv(sdir / "lean_ff_table.csv")
    assert table["flags"].str.contains("negatives_clipped_water").all()
    assert set(table.input_corrections) == {"negatives_clipped_water"}
    meta = json.loads((sdir / "lean_ff_table.json").read_text())["meta"]
    assert meta["provenance"]["input_corrections"] == "negatives_clipped_water"
    assert "negatives_clipped_water" in (sdir / "lean_report.html").read_text()
