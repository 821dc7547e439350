"""Model-zoo compliance beyond the metadata checks of test_bundle.py: workflow properties, as the zoo's CI runs
them (initialize -> check_properties -> run -> finalize), and ``monai.bundle.load`` from a local zoo folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow, load
from scripts.phantom import generate_cohort
from scripts.tools.make_zoo_release import BUNDLE_NAME

from tests.conftest import BUNDLE_ROOT

CONFIGS = BUNDLE_ROOT / "configs"
ZOO_NAME = BUNDLE_NAME  # the one name of the bundle in the zoo (scripts.tools.make_zoo_release)
# what a model-zoo folder of this bundle holds (no data, no outputs, no virtual environments)
BUNDLE_CONTENT = ("configs", "models", "scripts", "resources", "docs", "LICENSE", "large_files.yml")


def _workflow(workflow_type: str, config_file, **override) -> ConfigWorkflow:
    return ConfigWorkflow(
        workflow_type=workflow_type,
        config_file=config_file,
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        bundle_root=str(BUNDLE_ROOT),
        **override,
    )


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zoo") / "data"
    generate_cohort(out, n=3, seed=21, geometry="tiny", variety=False, n_validation=1, n_testing=1, progress=False)
    return out


@pytest.mark.parametrize(
    "workflow_type,configs",
    [
        ("inference", [CONFIGS / "inference.json"]),
        ("train", [CONFIGS / "train.json"]),
        ("train", [CONFIGS / "train.json", CONFIGS / "evaluate.json"]),
    ],
)
def test_workflow_properties_are_complete(workflow_type, configs, tiny_data, tmp_path):
    # outputs (TensorBoard event files of the train handlers) go to tmp_path, never into the bundle's eval/
    wf = _workflow(
        workflow_type, [str(c) for c in configs], dataset_dir=str(tiny_data), output_dir=str(tmp_path / "eval")
    )
    wf.initialize()
    assert not wf.check_properties()
    assert wf.bundle_root == str(BUNDLE_ROOT)
    assert isinstance(wf.network_def, torch.nn.Module)
    wf.finalize()


@pytest.fixture(scope="module")
def zoo_folder(tmp_path_factory) -> Path:
    zoo = tmp_path_factory.mktemp("model_zoo")
    for item in BUNDLE_CONTENT:
        src = BUNDLE_ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, zoo / ZOO_NAME / item)
    return zoo


@pytest.mark.parametrize("workflow_type", ["inference", "train"])
def test_monai_bundle_load_from_a_local_zoo_folder(zoo_folder, workflow_type):
    # load() initialises the workflow with no data at all: nothing in initialize may read the datalist
    net = load(
        ZOO_NAME, bundle_dir=str(zoo_folder), workflow_type=workflow_type, source="github", device="cpu", progress=False
    )
    shipped = torch.load(BUNDLE_ROOT / "models" / "model.pt", map_location="cpu", weights_only=True)
    state = net.state_dict()
    assert state.keys() == shipped.keys()
    assert all(torch.equal(state[k], shipped[k]) for k in shipped)


def test_monai_bundle_load_of_the_torchscript_module_carries_the_configs(zoo_folder):
    ts, meta, extra = load(
        ZOO_NAME, bundle_dir=str(zoo_folder), load_ts_module=True, source="github", device="cpu", progress=False
    )
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 9
    x = torch.rand(1, 1, 64, 64, 32)
    with torch.no_grad():
        assert ts(x).shape == (1, 9, 64, 64, 32)


LOAD_ELSEWHERE = """
import sys, warnings
warnings.filterwarnings("ignore")
from monai.bundle import ConfigWorkflow, load
zoo, name = sys.argv[1], sys.argv[2]
for workflow_type in ("inference", "train"):
    net = load(name, bundle_dir=zoo, workflow_type=workflow_type, source="github", device="cpu", progress=False)
    print(workflow_type, "load", type(net).__name__)
root = f"{zoo}/{name}"
for workflow_type, files in (("infer", ["inference.json"]), ("train", ["train.json"]),
                             ("train", ["train.json", "evaluate.json"])):
    wf = ConfigWorkflow(workflow_type=workflow_type, config_file=[f"{root}/configs/{f}" for f in files],
                        bundle_root=root, output_dir=f"{zoo}/out")
    wf.initialize()
    missing = wf.check_properties()
    print(workflow_type, files[-1], "check_properties", missing)
    assert missing == [], missing
    wf.finalize()
print("bundle on sys.path:", any(p.rstrip("/").endswith(name) for p in sys.path))
"""


def test_load_and_check_properties_from_another_folder_with_no_data(zoo_folder, tmp_path):
    """As a user elsewhere would: a fresh interpreter, another working directory, no PYTHONPATH, no data anywhere
    (dataset_dir points nowhere); monai.bundle.load and ConfigWorkflow(...).check_properties() must work."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOAD_ELSEWHERE), str(zoo_folder), ZOO_NAME],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert res.stdout.count("load UNet") == 2 and res.stdout.count("check_properties []") == 3
    assert not (zoo_folder / ZOO_NAME / "sample_data").exists()
