"""Resumable steps of a long study: a step's folder is finished when its marker ``.done.json`` exists (written last);
an interrupted or outdated one is moved aside, never deleted, and redone. SIGTERM ends a step's child process too."""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from scripts.io.atomic import atomic_write_text

__all__ = ["DONE", "marker_digest", "run_step", "exit_on_sigterm", "study_cli"]

logger = logging.getLogger(__name__)

DONE = ".done.json"


def _move_aside(folder: Path, why: str) -> None:
    n = 1
    while folder.with_name(f"{folder.name}.{why}-{n}").exists():
        n += 1
    aside = folder.with_name(f"{folder.name}.{why}-{n}")
    logger.warning("%s is %s: moved to %s, redoing the step", folder, why, aside.name)
    folder.rename(aside)


def marker_digest(*folders: Path) -> str:
    """A digest of the markers of the steps a step depends on (it changes when one of them is redone)."""
    text = "".join((f / DONE).read_text() if (f / DONE).is_file() else "" for f in folders)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_step(
    folder: Path,
    work: Callable[[Path], dict[str, Any]],
    depends: str = "",
    can_resume: Callable[[Path], bool] | None = None,
) -> dict[str, Any]:
    """Run ``work(folder)`` unless ``folder/.done.json`` exists; the marker (its return value) is written last.

    A folder without the marker is what a crash leaves: it is moved aside to ``<folder>.incomplete-<n>`` (kept for
    inspection, never deleted) and the step starts again in a fresh, empty folder. A finished step whose inputs
    were redone since (``depends``, a digest of the upstream markers, differs) is moved to ``<folder>.stale-<n>``
    and redone. A step that can continue its own interrupted work (``can_resume(folder)`` true: a training with a
    saved state) is run again in its folder instead, and its record says ``"resumed": true``.

    Args:
        folder: the step's own folder.
        work: does the step in the given folder (empty, or as an interrupted run left it when ``can_resume``) and
            returns a JSON-able record.
        depends: digest of the upstream steps' markers.
        can_resume: whether a folder without marker holds work that ``work`` continues rather than redoes.

    Returns:
        the marker's content (a finished step's record, e.g. its timing).
    """
    marker = folder / DONE
    if marker.is_file():
        record = json.loads(marker.read_text())
        if record.get("depends", "") == depends:
            return record
        _move_aside(folder, "stale")
    resumed = False
    if folder.exists() and not marker.is_file():
        if can_resume is not None and can_resume(folder):
            logger.warning("%s was interrupted: continuing it from its saved state", folder)
            resumed = True
        else:
            _move_aside(folder, "incomplete")
    folder.mkdir(parents=True, exist_ok=resumed)
    start = time.perf_counter()
    record = dict(work(folder))
    if resumed:
        record["resumed"] = True
    record.setdefault("seconds", round(time.perf_counter() - start, 2))
    record["depends"] = depends
    atomic_write_text(marker, json.dumps(record, indent=2) + "\n")
    return record


def exit_on_sigterm() -> None:
    """Turn SIGTERM (``kill``, job schedulers) into ``SystemExit``, so that a running step's child process is killed
    too (``subprocess.run`` kills its child on any exception) instead of training on as an orphan."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def study_cli(commands: Mapping[str, Callable[..., Any]]) -> None:
    """The command line of a study module: INFO logging, SIGTERM as an exit (:func:`exit_on_sigterm`), and one
    ``fire`` sub-command per entry of ``commands`` with its options typed and checked
    (:func:`scripts.configuration.settings.typed_cli`)."""
    import fire
    from scripts.configuration.settings import typed_cli

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    exit_on_sigterm()
    fire.Fire({name: typed_cli(func) for name, func in commands.items()})
