"""NetworkConfidenced: the network's confidence, taken from the softmax right after Activationsd, reaches the verdict
and the FF table's ``net_*`` columns (CSV, JSON, cohort table); a subject without it keeps today's table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from monai.data import MetaTensor
from scripts.pipeline.keys import CONFIDENCE_KEY
from scripts.pipeline.network_confidence import NetworkConfidenced
from scripts.quality.verdict import NET_COLUMNS

from tests.pipeline.helpers import lean_body, loaded, quantify_and_finish


def _probabilities(label: np.ndarray, affine: np.ndarray, unsure: int | None = None) -> MetaTensor:
    """(9, X, Y, Z) probabilities whose argmax is ``label``: 0.9 on the label; 0.52 / 0.48 against the background on
    the voxels of label ``unsure``."""
    p = torch.full((9, *label.shape), 0.1 / 8)
    p.scatter_(0, torch.as_tensor(label, dtype=torch.int64)[None], 0.9)
    if unsure is not None:
        mask = torch.as_tensor(label == unsure)
        p[:, mask] = 0.0
        p[unsure, mask], p[0, mask] = 0.52, 0.48
    return MetaTensor(p, affine=torch.as_tensor(affine))


def test_the_confidence_reaches_the_verdict_and_the_tables(tmp_path):
    files, label, affine = lean_body(tmp_path)
    d = loaded(files, label, affine)
    label_map = d["pred"]
    d["pred"] = _probabilities(label, affine, unsure=8)
    d = NetworkConfidenced("pred")(d)
    assert torch.equal(d["pred"].argmax(0), torch.as_tensor(label, dtype=torch.int64))  # the prediction untouched
    assert d[CONFIDENCE_KEY][7]["n_voxels"] == int((label == 7).sum())
    assert d[CONFIDENCE_KEY][8]["boundary_share"] == 1.0
    d["pred"] = label_map  # what Invertd and AsDiscreted make of it
    out = tmp_path / "eval"
    quantify_and_finish(out, d)
    csv = pd.read_csv(out / "lean" / "lean_ff_table.csv").set_index(["muscle", "side"])
    es = "erector_spinae_multifidus"
    assert csv.loc[(es, "left"), "net_margin_mean"] == pytest.approx(0.9 - 0.1 / 8, abs=1e-4)
    assert csv.loc[(es, "left"), "net_boundary_share"] == 0.0
    assert csv.loc[(es, "right"), "net_margin_mean"] == pytest.approx(0.04, abs=1e-4)
    assert csv.loc[(es, "right"), "net_boundary_share"] == 1.0
    assert csv.loc[(es, "mean"), "net_voxels"] == int((label > 0).sum())
    assert "the network is unsure: 100% of the label" in csv.loc[(es, "right"), "qc_reasons"]
    assert "network is unsure" not in csv.loc[(es, "left"), "qc_reasons"]
    records = json.loads((out / "lean" / "lean_ff_table.json").read_text())["records"]
    assert set(NET_COLUMNS) <= set(records[0])
    assert set(NET_COLUMNS) <= set(pd.read_csv(out / "cohort_ff_table.csv").columns)


def test_without_confidence_the_table_has_no_net_columns(tmp_path):
    files, label, affine = lean_body(tmp_path)
    out = tmp_path / "eval"
    quantify_and_finish(out, loaded(files, label, affine))
    csv = pd.read_csv(out / "lean" / "lean_ff_table.csv")
    assert not set(NET_COLUMNS) & set(csv.columns)


def test_a_label_map_is_refused():
    with pytest.raises(ValueError, match="probabilities"):
        NetworkConfidenced("pred")({"pred": torch.zeros(1, 4, 4, 4)})
