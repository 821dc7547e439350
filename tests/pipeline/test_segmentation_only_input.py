"""inference.json fed the way MONAI Label and MONAI Deploy feed a bundle: one in-phase image, by path or in memory.

MONAI Label passes ``{"image": "<datastore file>"}`` and drops savers; MONAI Deploy's bundle operator drops
loaders/savers and passes the series as an in-memory image. Both must get a label map on the input grid, and
the FF step must leave them alone (there is no water/fat).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import Compose
from scripts.io.errors import DixonInputError
from scripts.phantom import Acquisition, generate_subject
from scripts.pipeline.load_dixon import LoadDixond

from tests.conftest import BUNDLE_ROOT


@pytest.fixture(scope="module")
def inphase_file(tmp_path_factory) -> Path:
    subj = generate_subject(seed=5, acquisition=Acquisition.preset("tiny"))
    path = tmp_path_factory.mktemp("ml") / "case05.nii.gz"
    nib.save(nib.Nifti1Image(subj.images["inphase"].astype(np.float32), subj.affine), str(path))
    return path


@pytest.fixture(scope="module")
def parser(tmp_path_factory) -> ConfigParser:
    p = ConfigParser()
    p.read_config(str(BUNDLE_ROOT / "configs" / "inference.json"))
    p.read_meta(str(BUNDLE_ROOT / "configs" / "metadata.json"))
    p["bundle_root"] = str(BUNDLE_ROOT)
    p["output_dir"] = str(tmp_path_factory.mktemp("out") / "eval")
    p["device"] = "$torch.device('cpu')"
    p["amp"] = False
    p["working_spacing"] = [8.0, 8.0, 12.0]  # coarse: this test checks plumbing, not accuracy
    p["roi_size"] = [64, 64, 32]
    return p


def _segment(parser: ConfigParser, item: dict) -> dict:
    pre = parser.get_parsed_content("preprocessing")
    post = parser.get_parsed_content("postprocessing")
    post = Compose([t for t in post.transforms if "SaveImage" not in type(t).__name__])
    net = parser.get_parsed_content("network")
    net.load_state_dict(torch.load(BUNDLE_ROOT / "models" / "model.pt", map_location="cpu", weights_only=True))
    net.eval()
    d = pre(item)
    with torch.no_grad():
        d["pred"] = parser.get_parsed_content("inferer")(d["image"][None], net)[0]
    return post(d)


def test_path_only_entry_gives_a_label_map_on_the_input_grid_and_no_ff_output(parser, inphase_file):
    out = _segment(parser, {"image": str(inphase_file)})
    img = nib.load(str(inphase_file))
    pred = out["pred"]
    assert tuple(pred.shape[1:]) == img.shape
    np.testing.assert_allclose(pred.affine.numpy(), img.affine, atol=1e-4)
    assert set(np.unique(pred.numpy()).astype(int)) <= set(range(9))
    assert out["subject"] == "case05"
    # QuantifyDixond has nothing to measure without water/fat and writes nothing
    assert not Path(parser["output_dir"]).exists() or not any(Path(parser["output_dir"]).rglob("*"))


def test_in_memory_image_gives_the_same_labels_as_the_file(parser, inphase_file):
    img = nib.load(str(inphase_file))
    mt = MetaTensor(
        torch.as_tensor(np.asarray(img.dataobj, dtype=np.float32)),
        affine=torch.as_tensor(img.affine),
        meta={"filename_or_obj": "series_1.2.3"},
    )
    from_file = _segment(parser, {"image": str(inphase_file)})["pred"]
    from_memory = _segment(parser, {"image": mt})
    assert from_memory["subject"] == "series_1.2.3"
    assert torch.equal(from_memory["pred"].as_tensor(), from_file.as_tensor())


def test_unusable_single_inputs_are_refused_with_a_reason(tmp_path):
    load = LoadDixond(keys="image")
    with pytest.raises(DixonInputError, match="without an affine"):
        load({"image": np.zeros((8, 8, 8), np.float32)})
    with pytest.raises(DixonInputError, match="expected one 3D"):
        load({"image": MetaTensor(torch.zeros(2, 8, 8, 8))})
    with pytest.raises(DixonInputError, match="no Dixon image"):
        load({"label": "x.nii.gz"})
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(DixonInputError, match="broken.nii.gz"):
        load({"image": str(bad)})
