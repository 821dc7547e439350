"""Prepare a MONAI Label 0.8.5 ``monaibundle`` app that serves this bundle (CPU, local, offline).

The sample app is not part of this project: ``setup`` asks the MONAI Label installation for a fresh copy at run time
(``monailabel apps --download``, a local copy from the wheel, no network), adds a small torchvision guard at the top
of its ``main.py`` and the bundle's ``uncertainty`` and ``uncertainty_typical`` next-sample strategies at its end,
and copies the bundle into ``<app>/model/<name>/``. The MONAI Label virtual environment is made by
``.ci/install_monailabel.sh`` (``.venv-monailabel`` beside the bundle). See ``docs/guides/monailabel.md``.

Usage::

    python -m scripts.integrations.monailabel_app setup --app_dir ../ml_app [--bundle_dir .] [--name
    lumbar_dixon_muscles]
    python -m scripts.integrations.monailabel_app command --app_dir ../ml_app --studies ../studies   # print the start
    command
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.labels import VERTEBRAL_LABELS

__all__ = [
    "BUNDLE_PARTS",
    "DEFAULT_NAME",
    "MONAILABEL_TRAIN_OPTIONS",
    "TORCHVISION_GUARD",
    "UNCERTAINTY_STRATEGY",
    "VERTEBRAL_LABEL_NAMES",
    "default_python",
    "download_sample_app",
    "add_torchvision_guard",
    "add_uncertainty_strategy",
    "add_vertebral_label_names",
    "copy_bundle",
    "set_train_options",
    "server_command",
    "setup",
    "command",
]

logger = logging.getLogger(__name__)

#: the bundle name MONAI Label shows (the folder name under ``<app>/model``; MONAI Label uses it as the model name).
DEFAULT_NAME = "lumbar_dixon_muscles"
#: what a served bundle needs: configs, code, weights, normative data, docs and the licence. Evaluation outputs,
#: sample data and virtual environments stay behind.
BUNDLE_PARTS: tuple[str, ...] = ("configs", "scripts", "models", "resources", "docs", "LICENSE")
#: never copied from inside the bundle parts: caches, resumable training state, unfinished atomic writes.
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "train_state", "*.tmp")
#: train.json ids set in the served copy. A MONAI Label round fine-tunes the served weights with a new optimizer,
#: which train.json (written for training from scratch) does not foresee:
#: - learning_rate: at the from-scratch 2e-3, one round of 2 epochs on 3 phantoms dropped the mean Dice of a held-out
#:   phantom from 0.963 to 0.417 (and that model replaced model.pt); at 1e-4 it stayed at 0.961 (2026-11-25);
#: - resume_ckpt: train.json resumes from models/train_state/ when a checkpoint is there, so every round after the
#:   first restored the previous round's final epoch count and stopped without training; "" starts each round afresh.
#: - validate_at_start: the round starts from the served weights (MONAI Label's CheckpointLoader) without naming them in
#:   pretrained_ckpt, so its first validation would replace model.pt whatever it scores; validating the loaded weights
#:   first makes them the score to beat (a round never serves a worse model; found by
#:   scripts.studies.annotation_loop, 2026-12-05).
MONAILABEL_TRAIN_OPTIONS: dict[str, Any] = {"learning_rate": 1e-4, "resume_ckpt": "", "validate_at_start": True}
#: first line of the guard; also how ``add_torchvision_guard`` recognises an app that already has it.
_GUARD_MARK = (
    "# --- lumbar_dixon bundle: torchvision guard for CPU-only torch (scripts/integrations/monailabel_app.py) ---"
)

#: Inserted before the imports of the sample app's main.py. MONAI Label imports ``torchvision.utils`` at module level
#: (``monailabel.transform.post``), which every bundle task loads; a CUDA torchvision beside a CPU torch raises at
#: import, and PyPI has no CPU torchvision for torch 2.13. Only ``make_grid``/``save_image`` are referenced there and
#: neither runs for a 3D segmentation bundle, so a placeholder module that fails when called is enough. With a working
#: torchvision the guard does nothing. It also covers the training subprocess, which imports main.py first.
TORCHVISION_GUARD = f"""{_GUARD_MARK}
import sys as _sys
import types as _types


def _torchvision_or_placeholder() -> None:
    try:
        import torchvision.utils  # noqa: F401  (a usable torchvision: nothing to do)
        return
    except Exception:  # ImportError when absent, RuntimeError when built for another torch
        pass
    # a half-imported torchvision would shadow the placeholder
    for _name in [m for m in _sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        _sys.modules.pop(_name)

    def _not_available(*args, **kwargs):
        raise RuntimeError("torchvision is not usable in this environment (CPU torch); this call needs it")

    package = _types.ModuleType("torchvision")
    package.__path__ = []  # a package, so that "import torchvision.utils" resolves to the entry below
    utils = _types.ModuleType("torchvision.utils")
    utils.make_grid = utils.save_image = _not_available
    package.utils = utils
    _sys.modules["torchvision"] = package
    _sys.modules["torchvision.utils"] = utils


_torchvision_or_placeholder()
# --- end of torchvision guard ---

"""


_STRATEGY_MARK = (
    "# --- lumbar_dixon bundle: uncertainty next-sample strategy (scripts/integrations/monailabel_app.py) ---"
)

#: Appended to the sample app's main.py, with ``{name}`` the served model. MONAI Label 0.8.5's monaibundle app
#: builds its strategies in ``MyApp.init_strategies`` (random, first) and reads none from its configuration, so the
#: method is wrapped: the sample's strategies, plus ``uncertainty``
#: (:class:`scripts.integrations.uncertainty_strategy.Uncertainty`) and ``uncertainty_typical``
#: (:class:`scripts.integrations.uncertainty_typical_strategy.TypicalUncertainty`, sharing the first one's network)
#: imported from the served bundle copy.
_STRATEGY_CODE = """
def _with_uncertainty_strategy(init_strategies):
    def init_strategies_with_uncertainty(self):
        strategies = init_strategies(self)
        bundle = self.models.get({name!r})
        if bundle is None:
            logger.warning("no model {name!r} served: no 'uncertainty' strategies")
            return strategies
        import sys as _sys

        _sys.path.insert(0, bundle)  # the strategy lives in the bundle's scripts package
        try:
            from scripts.integrations.uncertainty_strategy import Uncertainty
            from scripts.integrations.uncertainty_typical_strategy import TypicalUncertainty
        finally:
            _sys.path.remove(bundle)
        strategies["uncertainty"] = Uncertainty(bundle)
        strategies["uncertainty_typical"] = TypicalUncertainty(bundle, doubts_from=strategies["uncertainty"])
        logger.info(f"Active Learning Strategies (with the bundle's):: {{list(strategies.keys())}}")
        return strategies

    return init_strategies_with_uncertainty


MyApp.init_strategies = _with_uncertainty_strategy(MyApp.init_strategies)
# --- end of uncertainty strategy ---
"""
UNCERTAINTY_STRATEGY = _STRATEGY_MARK + _STRATEGY_CODE

_VERTEBRAL_MARK = "# --- lumbar_dixon bundle: vertebral label names (scripts/integrations/monailabel_app.py) ---"

#: Appended to the sample app's main.py, with ``{name}`` the served model and ``{labels}`` the vertebral names.
#: MONAI Label 0.8.5 names a bundle's labels from ``channel_def`` (the muscle network's 9 outputs); with the spine
#: network (``models/spine_model.pt`` in the served copy) the label map also holds the vertebral bodies and the
#: sacrum (9-14), which would come to the viewer without names. Their names are added to the model's labels (what
#: ``/info`` lists and each result's ``label_names`` carries). Training needs nothing: the muscle network's training
#: reduces 9-14 to background (``scripts/transforms/label_maps/muscle_labels_only.py``).
#: The model's options also get ``lowest_vertebra`` (empty: count from the sacrum), which the client shows and sends
#: with each infer request: an L2-L5 scan shows no sacrum, so its bodies are named only from that statement
#: (:meth:`scripts.pipeline.lowest_vertebra.StatedLowestVertebra.for_entry` reads it from the request).
_VERTEBRAL_CODE = """
_SPINE_LABELS = {labels!r}


def _with_vertebral_label_names(init_infers):
    def init_infers_with_vertebral_label_names(self):
        infers = init_infers(self)
        bundle, task = self.models.get({name!r}), infers.get({name!r})
        if bundle is None or task is None or not os.path.isfile(os.path.join(bundle, "models", "spine_model.pt")):
            return infers
        task.labels = {{**task.labels, **_SPINE_LABELS}}
        task._config.setdefault("lowest_vertebra", "")
        logger.info(
            f"{name}: the spine network's labels {{list(_SPINE_LABELS)}} added to the model's labels, and its option "
            "lowest_vertebra (the lowest lumbar body in view, L1-L5, for a scan without the sacrum)"
        )
        return infers

    return init_infers_with_vertebral_label_names


MyApp.init_infers = _with_vertebral_label_names(MyApp.init_infers)
# --- end of vertebral label names ---
"""
VERTEBRAL_LABEL_NAMES = _VERTEBRAL_MARK + _VERTEBRAL_CODE


def default_python(bundle_dir: str | Path = ".") -> Path:
    """The interpreter of the MONAI Label environment made by ``.ci/install_monailabel.sh``."""
    return Path(bundle_dir).resolve() / ".venv-monailabel" / "bin" / "python"


def download_sample_app(python: str | Path, dest: str | Path, sample: str = "monaibundle") -> Path:
    """Copy MONAI Label's sample app ``sample`` into the new folder ``dest`` with ``monailabel apps --download``.

    Args:
        python: interpreter that has monailabel installed (the CLI is run as ``python -m monailabel.main``, because
            the ``monailabel`` console script runs whatever ``python`` is first on PATH).
        dest: the app folder to create; must not exist.
        sample: the sample app's name.

    Returns:
        ``dest``.

    Raises:
        FileNotFoundError: ``python`` does not exist.
        RuntimeError: the MONAI Label command failed (its output is in the message).
    """
    python, dest = Path(python), Path(dest)
    if not python.is_file():
        raise FileNotFoundError(f"no MONAI Label interpreter at {python}; run .ci/install_monailabel.sh first")
    with tempfile.TemporaryDirectory(prefix="mlapp_", dir=dest.parent) as tmp:
        cmd = [str(python), "-m", "monailabel.main", "apps", "--download", "--name", sample, "--output", tmp]
        res = subprocess.run(cmd, capture_output=True, text=True)
        copied = Path(tmp) / sample
        if res.returncode != 0 or not (copied / "main.py").is_file():
            raise RuntimeError(f"{shlex.join(cmd)} failed (rc {res.returncode}):\n{res.stdout}\n{res.stderr}")
        shutil.move(str(copied), str(dest))
    return dest


def add_torchvision_guard(main_py: str | Path) -> bool:
    """Insert :data:`TORCHVISION_GUARD` after the leading comment block of ``main_py`` (before any import).

    Returns:
        True if inserted, False if the file already had it.
    """
    main_py = Path(main_py)
    text = main_py.read_text()
    if _GUARD_MARK in text:
        return False
    lines = text.splitlines(keepends=True)
    # keep the licence header first; the guard must come before the first import, which follows it
    n = 0
    while n < len(lines) and (lines[n].startswith("#") or not lines[n].strip()):
        n += 1
    if n < len(lines) and lines[n].startswith("from __future__"):
        raise ValueError(f"{main_py} starts with a __future__ import; the guard cannot go before it")
    main_py.write_text("".join(lines[:n]) + TORCHVISION_GUARD + "".join(lines[n:]))
    return True


def add_uncertainty_strategy(main_py: str | Path, name: str = DEFAULT_NAME) -> bool:
    """Append :data:`UNCERTAINTY_STRATEGY` for model ``name`` to the sample app's ``main_py``.

    Returns:
        True if appended, False if the file already had it.

    Raises:
        ValueError: ``main_py`` defines no ``class MyApp`` (another sample app, or a MONAI Label whose sample
            changed): the strategy would silently be missing.
    """
    main_py = Path(main_py)
    text = main_py.read_text()
    if _STRATEGY_MARK in text:
        return False
    if not re.search(r"^class MyApp\b", text, re.MULTILINE) or "def init_strategies(" not in text:
        raise ValueError(f"{main_py} has no MyApp.init_strategies to add the uncertainty strategy to")
    main_py.write_text(text.rstrip("\n") + "\n\n\n" + UNCERTAINTY_STRATEGY.format(name=name))
    return True


def add_vertebral_label_names(main_py: str | Path, name: str = DEFAULT_NAME) -> bool:
    """Append :data:`VERTEBRAL_LABEL_NAMES` for model ``name`` to the sample app's ``main_py``.

    Returns:
        True if appended, False if the file already had it.

    Raises:
        ValueError: ``main_py`` defines no ``MyApp.init_infers`` or does not import ``os`` (another sample app, or a
            MONAI Label whose sample changed): the names would silently be missing.
    """
    main_py = Path(main_py)
    text = main_py.read_text()
    if _VERTEBRAL_MARK in text:
        return False
    if "def init_infers(" not in text or not re.search(r"^import os$", text, re.MULTILINE):
        raise ValueError(f"{main_py} has no MyApp.init_infers (or no 'import os') to add the vertebral label names to")
    labels = {label.lower(): value for value, label in VERTEBRAL_LABELS.items()}
    main_py.write_text(text.rstrip("\n") + "\n\n\n" + VERTEBRAL_LABEL_NAMES.format(name=name, labels=labels))
    return True


def copy_bundle(bundle_dir: str | Path, dest: str | Path, parts: Sequence[str] = BUNDLE_PARTS) -> list[str]:
    """Copy the served parts of the bundle into ``dest`` (MONAI Label trains and reloads this copy, never ours).

    Args:
        bundle_dir: the bundle root (has ``configs/metadata.json``).
        dest: ``<app>/model/<name>``; must not exist.
        parts: top-level files and folders to copy.

    Returns:
        the parts copied.

    Raises:
        FileNotFoundError: ``bundle_dir`` lacks ``configs/metadata.json``, ``configs/inference.json`` or
            ``models/model.pt``, without which MONAI Label would silently skip the bundle.
    """
    src, dest = Path(bundle_dir).resolve(), Path(dest)
    for need in ("configs/metadata.json", "configs/inference.json", "models/model.pt"):
        if not (src / need).is_file():
            raise FileNotFoundError(f"{src} is not a servable bundle: {need} is missing")
    dest.mkdir(parents=True)
    copied = []
    for part in parts:
        p = src / part
        if p.is_dir():
            shutil.copytree(p, dest / part, ignore=_IGNORED)
        elif p.is_file():
            shutil.copy2(p, dest / part)
        else:
            continue
        copied.append(part)
    return copied


def set_train_options(bundle_copy: str | Path, options: Mapping[str, Any]) -> dict[str, Any]:
    """Set top-level ids of the served copy's ``configs/train.json`` (the bundle itself is never changed).

    Args:
        bundle_copy: ``<app>/model/<name>``.
        options: id -> value; every id must already exist at the top level, so that a renamed id in the bundle
            fails here instead of being silently added and ignored.

    Returns:
        id -> the value it replaced.
    """
    cfg_file = Path(bundle_copy) / "configs" / "train.json"
    cfg = json.loads(cfg_file.read_text())
    missing = sorted(set(options) - set(cfg))
    if missing:
        raise KeyError(f"{cfg_file} has no top-level id(s) {missing}")
    old = {k: cfg[k] for k in options}
    cfg.update(options)
    cfg_file.write_text(json.dumps(cfg, indent=4) + "\n")
    return old


def server_command(
    app_dir: str | Path,
    studies: str | Path,
    name: str = DEFAULT_NAME,
    python: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> list[str]:
    """The command that starts MONAI Label on the app, as an argument list.

    ``zoo_source github`` makes MONAI Label use the local bundle folder as it is (the default source asks GitHub
    for the model-zoo index at start and fails offline); ``sam2 false`` keeps the SAM2 models out (they need a
    real torchvision and downloaded weights).
    """
    python = Path(python) if python else default_python()
    return [
        str(python),
        "-m",
        "monailabel.main",
        "start_server",
        "--app",
        str(Path(app_dir).resolve()),
        "--studies",
        str(Path(studies).resolve()),
        "--conf",
        "models",
        name,
        "--conf",
        "zoo_source",
        "github",
        "--conf",
        "sam2",
        "false",
        "--host",
        host,
        "--port",
        str(port),
    ]


def setup(
    app_dir: str,
    bundle_dir: str = ".",
    name: str = DEFAULT_NAME,
    python: str | None = None,
    studies: str | None = None,
    port: int = 8000,
    train_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> str:
    """Create a MONAI Label app at ``app_dir`` serving this bundle as model ``name``.

    Args:
        app_dir: the app folder to create.
        bundle_dir: the bundle root to serve.
        name: the model name in MONAI Label (the folder under ``<app>/model``).
        python: the MONAI Label interpreter; default ``<bundle_dir>/.venv-monailabel/bin/python``.
        studies: the studies folder shown in the printed command (default ``<app_dir>/../studies``).
        port: the port shown in the printed command.
        train_options: train.json ids to set in the served copy, over :data:`MONAILABEL_TRAIN_OPTIONS`, e.g.
            ``{"val_interval": 1}``: only validation writes ``model.pt`` (best key metric), every ``val_interval``
            (10) epochs, so a round shorter than that would train and keep nothing.
        overwrite: replace an existing ``app_dir`` (it is deleted first).

    Returns:
        the server start command (the command line prints it).

    Raises:
        FileExistsError: ``app_dir`` exists and ``overwrite`` is False.
    """
    app = Path(app_dir).resolve()
    py = Path(python) if python else default_python(bundle_dir)
    if app.exists():
        if not overwrite:
            raise FileExistsError(f"{app} exists; pass --overwrite to replace it")
        shutil.rmtree(app)
    app.parent.mkdir(parents=True, exist_ok=True)
    try:
        download_sample_app(py, app)
        add_torchvision_guard(app / "main.py")
        add_uncertainty_strategy(app / "main.py", name)
        add_vertebral_label_names(app / "main.py", name)
        copied = copy_bundle(bundle_dir, app / "model" / name)
        options = {**MONAILABEL_TRAIN_OPTIONS, **(train_options or {})}
        old = set_train_options(app / "model" / name, options)
    except BaseException:
        shutil.rmtree(app, ignore_errors=True)  # no half-made app that a second run would refuse to replace
        raise
    logger.info("app %s: bundle parts %s in model/%s", app, copied, name)
    logger.info("served train.json: %s", ", ".join(f"{k} {old[k]!r} -> {v!r}" for k, v in options.items()))
    return shlex.join(server_command(app, studies or app.parent / "studies", name, py, port=port))


def command(
    app_dir: str,
    studies: str,
    name: str = DEFAULT_NAME,
    python: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> str:
    """The server start command for an app made by :func:`setup` (the command line prints it)."""
    return shlex.join(server_command(app_dir, studies, name, python, host, port))


if __name__ == "__main__":
    import fire

    logging.basicConfig(level=logging.INFO)
    from scripts.configuration.settings import typed_cli

    fire.Fire({"setup": typed_cli(setup), "command": typed_cli(command)})
