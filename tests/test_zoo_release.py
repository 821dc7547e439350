"""The model-zoo release (scripts.tools.make_zoo_release) checked by the zoo's own CI, copied unchanged in ../shared.

A temporary zoo repository is laid out as the zoo's is (ci/ from ../shared/monai/model-zoo-ci, models/<bundle>/ from
the release, models/model_info.json); the weights are published in a local folder and reached through the file://
urls of the release's large_files.yml, as they would be from a release host. Then, as the zoo's CI does:
``ci/verify_bundle.py -m min`` (downloads the weights, checks files, version, metadata schema), ``-m full`` (network
shapes, TorchScript export), and ``ci/unit_tests/runner.py`` with the bundle's zoo-style unit tests (train one epoch,
evaluate, infer with check_properties; the torchrun variant with two processes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from scripts.tools.eval_metrics import metadata_mismatch
from scripts.tools.make_zoo_release import BUNDLE_NAME, MAX_FILE_BYTES, make_release, sha256

from tests.conftest import BUNDLE_ROOT


@pytest.fixture(scope="module")
def zoo_repo(shared_dir, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("zoo_release")
    published = base / "published"
    paths = make_release(str(base / "dist"), weights_url=published.as_uri())
    # publishing = putting the weights where the urls point
    shutil.copytree(paths["weights"], published)
    repo = base / "model-zoo"
    zoo_ci = shared_dir / "monai" / "model-zoo-ci"
    shutil.copytree(zoo_ci / "ci", repo / "ci")
    for name in ("setup.cfg", "pyproject.toml"):  # the zoo's flake8/isort and black settings
        shutil.copy2(zoo_ci / name, repo / name)
    shutil.copytree(paths["unit_tests"], repo / "ci" / "unit_tests", dirs_exist_ok=True)
    shutil.copytree(paths["bundle"], repo / "models" / BUNDLE_NAME)
    (repo / "models" / "model_info.json").write_text("{}\n")
    # what the zoo's ci/prepare_schema.py downloads
    (repo / "models" / BUNDLE_NAME / "eval").mkdir()
    shutil.copy2(
        shared_dir / "monai" / "meta_schema_20240725.json", repo / "models" / BUNDLE_NAME / "eval" / "schema.json"
    )
    return repo


def _zoo_ci(repo: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # torchrun of this environment
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)


def test_release_holds_what_the_zoo_takes_and_nothing_else(zoo_repo):
    bundle = zoo_repo / "models" / BUNDLE_NAME
    top = sorted(p.name for p in bundle.iterdir())
    assert top == ["LICENSE", "configs", "docs", "eval", "large_files.yml", "models", "resources", "scripts"]
    files = [p for p in bundle.rglob("*") if p.is_file() and "eval" not in p.parts]
    assert not [p for p in files if p.name.startswith("test_") or p.suffix in {".pt", ".ts"}]
    assert max(p.stat().st_size for p in files) <= MAX_FILE_BYTES
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    archive = zoo_repo.parent / "dist" / f"{BUNDLE_NAME}_v{meta['version']}.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert all(n.startswith(f"{BUNDLE_NAME}/") for n in names)
    assert not [n for n in names if "/tests/" in n or "/.ci/" in n or "requirements" in n or "pytest.ini" in n]


@pytest.mark.parametrize(
    "check", [["black", "--check"], ["isort", "--check-only", "--diff"], ["flake8"]], ids=["black", "isort", "flake8"]
)
def test_release_passes_the_zoo_code_format_checks(zoo_repo, check):
    # as the zoo's code-format workflow runs them, from its repository root with its setup.cfg / pyproject.toml
    res = _zoo_ci(zoo_repo, "-m", *check, f"models/{BUNDLE_NAME}")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]


def test_verify_bundle_min_downloads_the_weights_and_passes(zoo_repo):
    res = _zoo_ci(zoo_repo, "ci/verify_bundle.py", "-b", BUNDLE_NAME, "-m", "min")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert "metadata format is verified correctly" in res.stdout
    weights = zoo_repo / "models" / BUNDLE_NAME / "models"
    assert sha256(weights / "model.pt") == sha256(BUNDLE_ROOT / "models" / "model.pt")
    assert (weights / "model.ts").is_file()


def test_verify_bundle_full_passes(zoo_repo):
    test_verify_bundle_min_downloads_the_weights_and_passes(zoo_repo)  # full mode needs the weights too
    res = _zoo_ci(zoo_repo, "ci/verify_bundle.py", "-b", BUNDLE_NAME, "-m", "full")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert "data shape is verified correctly" in res.stdout


def test_released_torchscript_carries_the_current_metadata(zoo_repo):
    import torch

    extra = {"metadata.json": "", "inference.json": ""}
    torch.jit.load(str(zoo_repo.parent / "dist" / "weights" / "model.ts"), _extra_files=extra)
    meta = json.loads((BUNDLE_ROOT / "configs" / "metadata.json").read_text())
    assert json.loads(extra["metadata.json"])["version"] == meta["version"]
    assert json.loads(extra["inference.json"])["inference"] == "%run"


@pytest.mark.parametrize("dist", [False, True], ids=["train_eval_infer", "torchrun"])
def test_zoo_unit_tests_pass(zoo_repo, dist):
    test_verify_bundle_min_downloads_the_weights_and_passes(zoo_repo)  # inference uses the released weights
    args = ["ci/unit_tests/runner.py", "--b", BUNDLE_NAME] + (["--dist", "True"] if dist else [])
    res = _zoo_ci(zoo_repo, *args)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert "does not exists, skip test" not in out
    assert ("test_train_mgpu_config" in out) if dist else ("test_infer_config" in out and "test_train_eval" in out)


def test_metadata_eval_metrics_are_what_the_held_out_tables_give():
    meta = json.loads((BUNDLE_ROOT / "configs" / "metadata.json").read_text())
    assert metadata_mismatch(meta) == []


def test_a_release_never_replaces_an_earlier_one_silently(tmp_path):
    (tmp_path / "keep.txt").write_text("an earlier release")
    with pytest.raises(FileExistsError, match="--overwrite"):
        make_release(str(tmp_path), weights_url="file:///nowhere")
    assert (tmp_path / "keep.txt").read_text() == "an earlier release"
