"""Cohort runs of inference.json: skip the subjects a killed or earlier run already finished.

A subject counts as finished when its ``<subject>_done.json`` marker (written by
:class:`scripts.inference.MarkDoned` after every other output) holds the same run manifest as the current run:
same input files (fingerprints), model, settings and bundle version. Anything else is processed again, but a
folder holding results of a *different* run is refused here, before any inference (and again by
:class:`scripts.inference.QuantifyDixond` when it writes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from .inference import _ROLES, QuantifyDixond, RunConflictError

__all__ = ["pending_subjects"]

logger = logging.getLogger(__name__)


def pending_subjects(data: Sequence[Mapping[str, Any]], quantifier: QuantifyDixond, resume: bool = True
                     ) -> list[Mapping[str, Any]]:
    """The entries of ``data`` still to process.

    Args:
        data: entries of :func:`scripts.dixon_inputs.inference_datalist` (``subject`` and Dixon role -> path).
        quantifier: the run's :class:`QuantifyDixond` (its output folder and settings define "the same run").
        resume: skip finished subjects; ``False`` processes every entry.

    Returns:
        The entries to process, in their original order.

    Raises:
        RunConflictError: a subject's output folder holds results of a different run (other settings, model or
            inputs) and the run does not overwrite; raised before any subject is processed.
    """
    entries = list(data)
    todo = []
    for entry in entries:
        files = {r: str(entry[r]) for r in _ROLES if entry.get(r) is not None}
        subject = entry.get("subject")
        if subject and files:
            reason = quantifier.conflict(str(subject), files)
            if reason:
                raise RunConflictError(reason)
            if resume and quantifier.is_done(str(subject), files):
                continue
        todo.append(entry)
    skipped = len(entries) - len(todo)
    if skipped:
        logger.info("resuming: %d of %d subjects already finished by this run are skipped (%s)", skipped,
                    len(entries), quantifier.output_dir)
    return todo
