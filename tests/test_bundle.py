"""The bundle stays valid: metadata against the official schema, configs as 4-space JSON, pinned requirements."""

from __future__ import annotations

import json
import re

import pytest
import torch
from scripts.labels import ALL_LABELS, LABELS, channel_def

from tests.conftest import BUNDLE_ROOT

CONFIGS = sorted((BUNDLE_ROOT / "configs").glob("*.json"))


def test_metadata_validates_against_official_schema(shared_dir):
    jsonschema = pytest.importorskip("jsonschema")
    meta = json.loads((BUNDLE_ROOT / "configs" / "metadata.json").read_text())
    schema = json.loads((shared_dir / "monai" / "meta_schema_20240725.json").read_text())
    errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(meta), key=str)
    assert not errors, [e.message for e in errors]


def test_metadata_version_changelog_and_classes():
    meta = json.loads((BUNDLE_ROOT / "configs" / "metadata.json").read_text())
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    assert meta["version"] in meta["changelog"]
    assert list(meta["changelog"])[0] == meta["version"], "newest changelog entry first"
    pred = meta["network_data_format"]["outputs"]["pred"]
    # the shipped weights' class count is the one inference.json runs with by default (9 muscles or 15 with the spine)
    num_classes = json.loads((BUNDLE_ROOT / "configs" / "inference.json").read_text())["num_classes"]
    assert pred["num_channels"] == num_classes and num_classes in (len(LABELS), len(ALL_LABELS))
    assert pred["channel_def"] == channel_def(num_classes)
    weights = torch.load(BUNDLE_ROOT / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert list(weights.values())[-1].shape == (num_classes,), "the output layer gives num_classes channels"
    req = (BUNDLE_ROOT / "requirements.txt").read_text()
    assert f"monai=={meta['monai_version']}" in req
    assert f"torch=={meta['pytorch_version']}" in req
    assert f"numpy=={meta['numpy_version']}" in req
    for name, version in meta["required_packages_version"].items():
        assert f"{name}=={version}" in req, name


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_configs_are_four_space_json(path):
    text = path.read_text()
    data = json.loads(text)
    assert text == json.dumps(data, indent=4) + "\n", f"{path.name}: not 4-space indented JSON with a final newline"


def test_requirements_are_pinned_exactly():
    for line in (BUNDLE_ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.+\-]*", line), line
    assert "torch==2.13.0" in (BUNDLE_ROOT / "requirements.txt").read_text()


def test_bundle_layout():
    for rel in [
        "LICENSE",
        "configs/metadata.json",
        "configs/logging.conf",
        "docs/README.md",
        "docs/data_license.txt",
        "large_files.yml",
        "scripts/__init__.py",
        "README.md",
        ".ci/run",
    ]:
        assert (BUNDLE_ROOT / rel).exists(), rel


def test_readme_quick_start_has_two_commands():
    text = (BUNDLE_ROOT / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2, commands
    assert "pytest" in commands[1]
    ci = (BUNDLE_ROOT / ".ci" / "run").read_text()
    assert "-m pytest -q tests" in ci and "-m pytest -q tests" in commands[1]


def _monai_bundle(*args: str):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args], cwd=BUNDLE_ROOT, capture_output=True, text=True, timeout=300
    )


def test_verify_net_in_out():
    res = _monai_bundle(
        "verify_net_in_out",
        "network_def",
        "--meta_file",
        "configs/metadata.json",
        "--config_file",
        "configs/inference.json",
    )
    assert res.returncode == 0 and "verified with no error" in res.stdout + res.stderr, res.stderr[-2000:]


def test_verify_metadata_cli(shared_dir, tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_bytes((shared_dir / "monai" / "meta_schema_20240725.json").read_bytes())
    res = _monai_bundle("verify_metadata", "--meta_file", "configs/metadata.json", "--filepath", str(schema))
    assert res.returncode == 0 and "metadata is verified with no error" in res.stdout + res.stderr, res.stderr[-2000:]


@pytest.mark.parametrize(
    "files",
    [["train.json"], ["inference.json"], ["train.json", "evaluate.json"], ["train.json", "multi_gpu_train.json"]],
)
def test_configs_parse_with_monai(files):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(BUNDLE_ROOT / "configs" / f) for f in files])
    parser.parse()
    for key in ("network_def", "bundle_root", "device"):
        assert key in parser
    assert parser.get_parsed_content("network_def").__class__.__name__ == "UNet"


def test_ckpt_export_matches_the_eager_network(tmp_path):
    import torch
    from monai.bundle import ConfigParser

    ts = tmp_path / "model.ts"
    res = _monai_bundle(
        "ckpt_export",
        "network_def",
        "--filepath",
        str(ts),
        "--ckpt_file",
        "models/model.pt",
        "--meta_file",
        "configs/metadata.json",
        "--config_file",
        "configs/inference.json",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    parser = ConfigParser()
    parser.read_config(str(BUNDLE_ROOT / "configs" / "inference.json"))
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(BUNDLE_ROOT / "models" / "model.pt", weights_only=True))
    net.eval()
    x = torch.rand(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(ts))(x), net(x), rtol=1e-4, atol=1e-4)


def test_large_files_hash_matches_the_weights():
    import hashlib

    import yaml

    entries = yaml.safe_load((BUNDLE_ROOT / "large_files.yml").read_text())["large_files"]
    assert {e["path"] for e in entries} >= {"models/model.pt"}
    for e in entries:
        assert e["hash_type"] == "sha256"
        assert hashlib.sha256((BUNDLE_ROOT / e["path"]).read_bytes()).hexdigest() == e["hash_val"], e["path"]
