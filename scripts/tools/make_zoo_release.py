"""Build the model-zoo release of this bundle: the folder a model-zoo pull request adds, its zip and its weights.

::

    python -m scripts.tools.make_zoo_release --out_dir dist --weights_url https://<release host>/<path>

writes

- ``dist/<BUNDLE_NAME>/``: what the zoo holds under ``models/<BUNDLE_NAME>/``: configs, scripts, resources, the
  model card and design notes, LICENSE and a ``large_files.yml`` whose urls point at ``weights_url``; no weights
  (the zoo refuses files over 1 MB), no tests, CI, requirements or study outputs;
- ``dist/weights/model.pt`` and ``dist/weights/model.ts``: the files to publish at ``weights_url``; model.ts is
  exported now (``monai.bundle ckpt_export``) so that it carries the current metadata and inference config;
- ``dist/<BUNDLE_NAME>_v<version>.zip``: the folder zipped, as the zoo publishes a bundle;
- ``dist/ci/unit_tests/test_<BUNDLE_NAME>.py`` and ``..._dist.py``: the zoo-style unit tests (from zoo/ci/) that the
  zoo's ``ci/unit_tests/runner.py`` runs.

The release is refused when metadata.json's ``eval_metrics`` differ from what the held-out tables of the version
give (scripts.tools.eval_metrics), when a file would break the zoo's pre-commit rules (over 1 MB, JSON not indented by
4),
or when ``dist`` already holds a different release.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path

import fire
from scripts.tools.eval_metrics import metadata_mismatch

BUNDLE_ROOT = Path(__file__).resolve().parents[2]
BUNDLE_NAME = "lumbar_muscle_dixon_mri_segmentation"
# what the zoo folder holds, relative to the bundle root (folders are copied whole, minus caches)
RELEASE_CONTENT = (
    "configs",
    "scripts",
    "resources",
    "LICENSE",
    "docs/README.md",
    "docs/data_license.txt",
    "docs/design.md",
)
WEIGHTS = ("models/model.pt", "models/model.ts")
MAX_FILE_BYTES = 1024 * 1024  # the zoo's pre-commit check-added-large-files --maxkb=1024
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.tmp")


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_content(dest: Path, content: Iterable[str] = RELEASE_CONTENT) -> None:
    for item in content:
        src = BUNDLE_ROOT / item
        if not src.exists():
            raise FileNotFoundError(f"{src}: part of the release is missing")
        target = dest / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=IGNORED)
        else:
            shutil.copy2(src, target)


def _export_torchscript(bundle: Path, ckpt: Path, out: Path) -> None:
    """model.ts from ``ckpt`` with the release's metadata and inference config as TorchScript extra files."""
    from monai.bundle import ckpt_export

    ckpt_export(
        net_id="network_def",
        filepath=str(out),
        ckpt_file=str(ckpt),
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(bundle / "configs" / "inference.json"),
        bundle_root=str(bundle),
    )


def _large_files_yml(weights_url: str, weights_dir: Path) -> str:
    lines = [
        "# Weights of the released model, published beside the bundle (the zoo keeps no file over 1 MB).",
        "# Fetch them with: python -m monai.bundle download_large_files --bundle_path <bundle folder>",
        "large_files:",
    ]
    for rel in WEIGHTS:
        name = Path(rel).name
        lines += [
            f'- path: "{rel}"',
            f'  url: "{weights_url.rstrip("/")}/{name}"',
            f'  hash_val: "{sha256(weights_dir / name)}"',
            '  hash_type: "sha256"',
        ]
    return "\n".join(lines) + "\n"


def release_problems(bundle: Path) -> list[str]:
    """What the zoo's pre-commit hooks would refuse in ``bundle``: large files, JSON not 4-space pretty-printed,
    missing final newline or trailing whitespace in text files."""
    problems = []
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        rel = path.relative_to(bundle)
        if path.stat().st_size > MAX_FILE_BYTES:
            problems.append(f"{rel}: {path.stat().st_size / 1e6:.2f} MB, over the zoo's 1 MB limit")
        if path.suffix in {".json", ".py", ".md", ".yml", ".yaml", ".txt", ".conf", ".tsv", ".csv"}:
            text = path.read_text()
            if text and not text.endswith("\n"):
                problems.append(f"{rel}: no newline at the end")
            if any(line != line.rstrip() for line in text.splitlines()):
                problems.append(f"{rel}: trailing whitespace")
            if path.suffix == ".json" and text != json.dumps(json.loads(text), indent=4, ensure_ascii=False) + "\n":
                problems.append(f"{rel}: JSON not pretty-printed with a 4-space indent")
    return problems


def make_release(out_dir: str, weights_url: str, overwrite: bool = False) -> dict[str, str]:
    """Build the release under ``out_dir`` (see the module docstring); returns the paths written.

    Args:
        out_dir: output folder; refused when it holds anything unless ``overwrite``.
        weights_url: where model.pt and model.ts will be published (``large_files.yml`` urls); a local
            ``file://`` folder works for checking the release offline.
        overwrite: replace an existing release in ``out_dir``.

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is false.
        ValueError: metadata's eval_metrics differ from the held-out tables, or pre-commit rules are broken.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: holds files already; pass --overwrite true to replace that release")
        shutil.rmtree(out)
    if not weights_url:
        raise ValueError("weights_url is empty: large_files.yml needs the address the weights are published at")
    meta = json.loads((BUNDLE_ROOT / "configs" / "metadata.json").read_text())
    version = meta["version"]
    mismatch = metadata_mismatch(meta)
    if mismatch:
        raise ValueError(
            f"configs/metadata.json eval_metrics disagree with the held-out tables ({mismatch}); "
            "regenerate them: python -m scripts.tools.eval_metrics --version <version> --write"
        )

    bundle = out / BUNDLE_NAME
    bundle.mkdir(parents=True)
    _copy_content(bundle)
    weights = out / "weights"
    weights.mkdir()
    shutil.copy2(BUNDLE_ROOT / "models" / "model.pt", weights / "model.pt")
    _export_torchscript(bundle, weights / "model.pt", weights / "model.ts")
    (bundle / "large_files.yml").write_text(_large_files_yml(weights_url, weights))
    (bundle / "models").mkdir()
    (bundle / "models" / ".gitkeep").write_text("")

    problems = release_problems(bundle)
    if problems:
        raise ValueError("the release breaks the model zoo's pre-commit rules:\n" + "\n".join(problems))

    tests = out / "ci" / "unit_tests"
    shutil.copytree(BUNDLE_ROOT / "zoo" / "ci" / "unit_tests", tests, ignore=IGNORED)
    archive = out / f"{BUNDLE_NAME}_v{version}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(out))
    return {"bundle": str(bundle), "zip": str(archive), "weights": str(weights), "unit_tests": str(tests)}


if __name__ == "__main__":
    fire.Fire(make_release)
