"""Cohort runs of inference.json: skip finished subjects, and let one bad subject fail alone.

A subject counts as finished when its ``<subject>_done.json`` marker (written by
:class:`scripts.pipeline.mark_done.MarkDoned` after every other output) holds the same run record as the current
run (:class:`scripts.pipeline.run_record.RunRecord`): same input files (SHA-256 of their whole content), model,
settings and bundle version. Anything else is processed again, but a folder holding results of a *different* run is
refused here, before any inference (and again by :class:`scripts.pipeline.prepare_results.PrepareResultsd` before
it writes).

A subject whose images cannot be used (corrupt, mismatched, refused by a check) is recorded in
``<output_dir>/cohort_failures.csv`` (one line: subject, file, problem) and in the log, and the run goes on with the
others (:class:`IsolatingLoader`); at the end :meth:`FailureLog.finish` logs a summary and makes the run fail.
"""

from __future__ import annotations

import csv
import io
import logging
import queue
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.engines import IterationEvents, SupervisedEvaluator
from monai.engines.utils import engine_apply_transform
from scripts.configuration.values import as_bool
from scripts.io.atomic import atomic_write_text
from scripts.io.errors import DixonInputError
from scripts.pipeline.keys import DIXON_ROLES
from scripts.pipeline.run_record import RunConflictError, RunRecord

__all__ = ["pending_subjects", "FailureLog", "IsolatingLoader", "IsolatingEvaluator", "CohortFailures", "FAILURES_FILE"]

logger = logging.getLogger(__name__)

#: the failures table of a cohort run, in its output folder
FAILURES_FILE = "cohort_failures.csv"
#: how scripts.pipeline.load_dixon.LoadDixond names the subject at the start of an input error
_SUBJECT_PREFIX = re.compile(r"^subject '([^']*)': ")


def pending_subjects(
    data: Sequence[Mapping[str, Any]], run_record: RunRecord, resume: bool | str = True
) -> list[Mapping[str, Any]]:
    """The entries of ``data`` still to process.

    Args:
        data: entries of :func:`scripts.io.discover.inference_datalist` (``subject`` and Dixon role -> path).
        run_record: the run's :class:`RunRecord` (its output folder and settings define "the same run").
        resume: skip finished subjects; ``False`` (or "false", "no", "0") processes every entry again.

    Returns:
        The entries to process, in their original order.

    Raises:
        RunConflictError: a subject's output folder holds results of a different run (other settings, model or
            inputs) and the run does not overwrite; raised before any subject is processed.
    """
    resume = as_bool(resume, "resume")
    entries = list(data)
    todo = []
    for entry in entries:
        files = {r: str(entry[r]) for r in DIXON_ROLES if entry.get(r) is not None}
        subject = entry.get("subject")
        if subject and files:
            reason = run_record.conflict(str(subject), files)
            if reason:
                raise RunConflictError(reason)
            if resume and run_record.is_done(str(subject), files):
                continue
        todo.append(entry)
    skipped = len(entries) - len(todo)
    if skipped:
        logger.info(
            "resuming: %d of %d subjects already finished by this run are skipped (%s)",
            skipped,
            len(entries),
            run_record.output_dir,
        )
    return todo


class CohortFailures(SystemExit):
    """Raised at the end of a cohort run in which some subjects failed; the message is the summary.

    A ``SystemExit``: Python prints the summary as the last lines of the output and exits with status 1, with no
    traceback and no wrapping by MONAI's config expressions (they re-raise only ``Exception``). Callers in Python
    catch it by name.
    """


class FailureLog:
    """The failures of one cohort run: ``<output_dir>/cohort_failures.csv`` and the log, one line per subject.

    Args:
        output_dir: the run's output folder.
        file_name: the table's name in it.
    """

    def __init__(self, output_dir: str | Path, file_name: str = FAILURES_FILE) -> None:
        self.path = Path(output_dir) / file_name
        self.rows: list[dict[str, str]] = []

    def record(self, subject: str, file: str, problem: str) -> None:
        """Add one failure (the table is rewritten atomically, so a killed run keeps what it found)."""
        problem = " ".join(str(problem).split())  # one line, whatever the message held
        self.rows.append({"subject": subject or "?", "file": file or "", "problem": problem})
        logger.error("subject %s failed and is left out: %s", subject or "?", problem)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["subject", "file", "problem"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue(), overwrite=True)

    def finish(self, processed: int | None = None) -> None:
        """End of the run: a clean run removes an earlier failures table; failures raise :class:`CohortFailures`.

        Args:
            processed: subjects attempted by this run (for the summary), when known.

        Raises:
            CohortFailures: one or more subjects failed; the message lists them and names the table.
        """
        if not self.rows:
            self.path.unlink(missing_ok=True)
            return
        of = f" of {processed}" if processed is not None else ""
        lines = "\n".join(f"  {r['subject']}: {r['problem']}" for r in self.rows)
        summary = (
            f"{len(self.rows)}{of} subject(s) failed and have no results (the others are complete); "
            f"see {self.path}:\n{lines}"
        )
        logger.error(summary)
        raise CohortFailures(summary)


def _cause(err: BaseException) -> tuple[str, str, str]:
    """(subject, file, problem) of a failed subject: the innermost input error, else the last exception."""
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    found = next((c for c in reversed(chain) if isinstance(c, DixonInputError)), None)
    if found is not None:
        subject = getattr(found, "subject", "") or ""
        return subject, found.file or "", _SUBJECT_PREFIX.sub("", str(found), count=1)
    # from a loader worker only the formatted traceback comes back, as text: its input error line is the problem
    text = "\n".join(str(c) for c in chain)
    lines = re.findall(r"^(?:\S+\.)?(\w+(?:Error|Exception)): (.+)$", text, re.M)
    kind, problem = next(
        ((k, m) for k, m in reversed(lines) if k == "DixonInputError"),
        lines[-1] if lines else (type(chain[-1]).__name__, (text.strip().splitlines() or [""])[-1]),
    )
    subject = _SUBJECT_PREFIX.match(problem)
    if subject:
        return subject.group(1), "", problem[subject.end() :]
    return "", "", f"{kind}: {problem}"


class IsolatingLoader(Iterable):
    """Iterate a DataLoader of subjects, recording a subject that fails to load instead of stopping the run.

    A map-style DataLoader's iterator has already moved past the failing index when the error reaches here, so
    iteration simply goes on with the next subject. Run-level errors (a run conflict, a missing model) still stop
    the run. The loader has no length, so the evaluator learns the epoch's length by iterating (MONAI and ignite
    support this) and never asks for a subject twice.

    With ``prefetch`` > 0 a background thread reads and preprocesses up to that many subjects ahead while the
    caller segments and measures the current one. Why a thread, not DataLoader worker processes: reading is gzip
    decompression and NumPy/torch work that release the GIL, and a thread needs no shared memory (worker processes
    pass the full-resolution images through ``/dev/shm``, which containers often cap at 64 MB). Subjects come in the
    same order and with the same content as without it; a subject's failure is recorded when its turn comes.

    Args:
        loader: the run's DataLoader (its sampler, workers and collation are kept).
        failures: where failures go.
        prefetch: subjects read ahead by a background thread (0: none, read in turn).
    """

    def __init__(self, loader: Iterable, failures: FailureLog, prefetch: int | str = 0) -> None:
        if isinstance(prefetch, bool) or not str(prefetch).strip().isdigit():
            raise ValueError(f"prefetch must be a whole number of subjects >= 0, not {prefetch!r}")
        self.loader = loader
        self.failures = failures
        self.prefetch = int(str(prefetch).strip())
        self.attempted = 0

    def __iter__(self) -> Iterator[Any]:
        items = _read_ahead(self.loader, self.prefetch) if self.prefetch > 0 else _in_turn(self.loader)
        for batch, err in items:
            self.attempted += 1
            if err is None:
                yield batch
            elif isinstance(err, (RunConflictError, KeyboardInterrupt, MemoryError)):
                raise err
            else:
                self.failures.record(*_cause(err))


def _in_turn(loader: Iterable) -> Iterator[tuple[Any, BaseException | None]]:
    """(batch, None) per subject, or (None, error) for a subject that failed to load, read when asked for."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception as err:  # noqa: BLE001 - any failure of one subject's input is that subject's
            yield None, err
            continue
        yield batch, None


_END = object()


def _read_ahead(loader: Iterable, depth: int) -> Iterator[tuple[Any, BaseException | None]]:
    """:func:`_in_turn` run by a daemon thread up to ``depth`` subjects ahead of the caller."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: tuple[Any, BaseException | None]) -> bool:
        """Queue ``item`` unless the caller has stopped; False when it has."""
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in _in_turn(loader):
                if not offer(item):
                    return
        except Exception as err:  # noqa: BLE001 - e.g. the loader cannot start: the caller raises it
            offer((None, err))
        finally:
            offer((_END, None))  # whatever happened, the caller is not left waiting

    thread = threading.Thread(target=produce, name="subject-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            batch, err = slots.get()
            if batch is _END:
                return
            yield batch, err
    finally:
        stop.set()  # the caller stopped early (error, interruption): let the reader end instead of waiting


def _batch_subject(batch: Any) -> str:
    """The subject id of a collated one-subject batch (``""`` when it carries none)."""
    subject = batch.get("subject") if isinstance(batch, Mapping) else None
    if isinstance(subject, (list, tuple)):
        subject = subject[0] if subject else None
    return str(subject or "")


class IsolatingEvaluator(SupervisedEvaluator):
    """``SupervisedEvaluator`` that records a subject whose segmentation or quantification fails and goes on.

    :class:`IsolatingLoader` isolates failures to read a subject; this covers what follows (the network pass, the
    post-processing, the fat-fraction tables and report), so that one bad subject never costs a cohort the others.
    Run-level errors (a run conflict, interruption, memory) still stop the run.

    With ``background_postprocessing`` the post-processing of a subject (probabilities to labels, fat fraction,
    tables, pictures, writing) runs in one background thread while the network segments the next subject. Why:
    the post-processing is mostly single-threaded NumPy and file writing, the network keeps both cores busy, so the
    two overlap. At most one subject is in post-processing at a time and subjects finish in their order (the next
    waits for the one before), the results are the same, and :meth:`run` returns only when the last subject is
    finished. A failure there is recorded for that subject as above; a run-level error stops the run at the next
    subject.

    Args:
        failures: where failures go; ``None`` lets every error through (as ``SupervisedEvaluator``).
        background_postprocessing: run the post-processing in a background thread (see above).
        args, kwargs: those of ``SupervisedEvaluator``.
    """

    def __init__(
        self,
        *args: Any,
        failures: FailureLog | None = None,
        background_postprocessing: bool | str = False,
        **kwargs: Any,
    ) -> None:
        # set before the parent's __init__, which registers the post-processing
        self.failures = failures
        self._background = _Background() if as_bool(background_postprocessing, "background_postprocessing") else None
        super().__init__(*args, **kwargs)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """``SupervisedEvaluator.run``, returning only when the last subject's post-processing has finished."""
        try:
            result = super().run(*args, **kwargs)
        except BaseException:
            if self._background is not None:
                self._background.wait(raise_errors=False)  # leave no subject half-written behind the error
            raise
        if self._background is not None:
            self._background.wait()
        return result

    def _register_postprocessing(self, posttrans: Any) -> None:
        if self._background is None:
            super()._register_postprocessing(posttrans)
            return

        @self.on(IterationEvents.MODEL_COMPLETED)
        def _submit(engine: Any) -> None:
            batch, output = engine.state.batch, engine.state.output
            self._background.submit(lambda: self._postprocess(batch, output, posttrans))

    def _postprocess(self, batch: Any, output: Any, posttrans: Any) -> None:
        """Apply ``posttrans`` to one decollated batch; a subject's failure is recorded, run-level errors raised."""
        pairs = list(zip(batch, output)) if isinstance(batch, list) and isinstance(output, list) else [(batch, output)]
        for b, o in pairs:
            try:
                engine_apply_transform(b, o, posttrans)
            except Exception as err:  # noqa: BLE001 - whatever fails here fails for this subject only
                self._record(err, b)

    def _iteration(self, engine: Any, batchdata: Any) -> dict:
        if self._background is not None:
            self._background.check()  # a run-level error of the subject in post-processing stops the run now
        try:
            return super()._iteration(engine, batchdata)
        except Exception as err:  # noqa: BLE001 - whatever fails here fails for this subject only
            self._record(err, batchdata)
            return {}

    def _record(self, err: Exception, batch: Any) -> None:
        """Record a subject's failure; re-raise run-level errors (a run conflict, memory) and when nobody records."""
        if self.failures is None or isinstance(err, (RunConflictError, MemoryError)):
            raise err
        _raise_run_level(err)
        subject, file, problem = _cause(err)
        self.failures.record(subject or _batch_subject(batch), file, problem)


def _raise_run_level(err: BaseException) -> None:
    """Raise the run-level error (a run conflict, memory) inside ``err``'s chain, as MONAI's transforms wrap it."""
    seen: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and e not in seen:
        if isinstance(e, (RunConflictError, MemoryError)):
            raise e from None  # its own traceback is kept; the wrappers add nothing
        seen.append(e)
        e = e.__cause__ or e.__context__


class _Background:
    """One background thread that runs submitted jobs one at a time; a job's error is raised by the next call."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, job: Any) -> None:
        self.wait()

        def run() -> None:
            try:
                job()
            except Exception as err:  # noqa: BLE001 - handed to the caller's thread
                self._error = err

        self._thread = threading.Thread(target=run, name="subject-postprocessing", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise the error of a finished job now, without waiting for a running one."""
        if self._error is not None and (self._thread is None or not self._thread.is_alive()):
            self.wait()

    def wait(self, raise_errors: bool = True) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if raise_errors and self._error is not None:
            err, self._error = self._error, None
            raise err
