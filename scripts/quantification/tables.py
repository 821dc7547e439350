"""Writers of the per-muscle FF tables: one subject's CSV/JSON files, and a cohort CSV updated one subject at a time.

Writers are atomic (a temporary file in the target folder, then ``os.replace``), so a killed run leaves either the
old or the new file, never half of one. :func:`write_tables` refuses to overwrite a file whose content differs;
:class:`CohortTable` replaces one subject's rows of a cohort CSV at a time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scripts.io.atomic import atomic_write_text
from scripts.quantification.statistics import QuantResult

try:  # POSIX advisory locks serialise cohort writers (DDP ranks); other platforms rely on os.replace alone.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "write_tables",
    "CohortTable",
]

logger = logging.getLogger(__name__)

_CSV_FLOAT_FORMAT = "%.10g"


def _jsonable(value: Any) -> Any:
    """A JSON-ready scalar: NA and non-finite floats become None, NumPy scalars Python ones."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``df`` as JSON-ready dicts."""
    return [{k: _jsonable(v) for k, v in rec.items()} for rec in df.astype(object).to_dict("records")]


def _csv_text(df: pd.DataFrame) -> str:
    """``df`` as CSV text: header, no index, 10 significant digits, ``\\n`` line ends, empty fields for NaN."""
    return df.to_csv(index=False, float_format=_CSV_FLOAT_FORMAT, lineterminator="\n")


def _with_subject(df: pd.DataFrame, subject: str) -> pd.DataFrame:
    """A copy of ``df`` with its ``subject`` column set, or ``ValueError`` when it holds another subject."""
    present = {s for s in df["subject"].tolist() if s is not None and not pd.isna(s)}
    if present - {subject}:
        raise ValueError(f"the table is for subject(s) {sorted(present)}, not {subject!r}")
    out = df.copy()
    out["subject"] = subject
    return out


def write_tables(
    result: QuantResult,
    out_dir: str | os.PathLike[str],
    subject: str,
    overwrite: bool = False,
    levels: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write a subject's tables: ``<subject>_ff_table.csv``, ``<subject>_ff_table.json``, ``<subject>_ff_slices.csv``
    and, with ``levels``, ``<subject>_ff_levels.csv``.

    The CSV has a header row; floats are written with 10 significant digits; NaN/NA is an empty field. The JSON is
    ``{"meta": {...}, "records": [...]}`` from the same DataFrame (NaN -> null) with the provenance, units and rules
    of :attr:`scripts.quantification.statistics.QuantResult.meta`. Every file is written atomically. Nothing is
    written unless all three targets are absent, identical, or ``overwrite`` is True, so a refused call leaves no
    mixed set behind.

    Args:
        result: output of :func:`scripts.quantification.statistics.quantify_muscles`.
        out_dir: the folder; created when absent.
        subject: the subject identifier (file prefix and ``subject`` column).
        overwrite: replace files whose content differs.
        levels: the per-level table (:func:`scripts.quantification.level_statistics.level_statistics`, one row per
            level and muscle side), or None (a label map without vertebral labels: no per-level file).

    Returns:
        ``{"table_csv": path, "table_json": path, "slices_csv": path}``, plus ``"levels_csv"`` with ``levels``.

    Raises:
        FileExistsError: a target exists with different content and ``overwrite`` is False (names the file).
        ValueError: ``subject`` is empty, contains a path separator, or differs from the table's subject.
    """
    if not subject or "/" in subject or os.sep in subject:
        raise ValueError(f"subject must be a non-empty name without path separators, got {subject!r}")
    out = Path(out_dir)
    table = _with_subject(result.table, subject)
    slices = _with_subject(result.slices, subject) if len(result.slices) else result.slices.assign(subject=subject)
    meta = {**result.meta, "subject": subject}
    texts = {
        "table_csv": (out / f"{subject}_ff_table.csv", _csv_text(table)),
        "table_json": (
            out / f"{subject}_ff_table.json",
            json.dumps({"meta": _jsonable_tree(meta), "records": _records(table)}, indent=2, allow_nan=False) + "\n",
        ),
        "slices_csv": (out / f"{subject}_ff_slices.csv", _csv_text(slices)),
    }
    if levels is not None:
        texts["levels_csv"] = (out / f"{subject}_ff_levels.csv", _csv_text(_with_subject(levels, subject)))
    if not overwrite:
        for path, text in texts.values():
            if path.exists() and path.read_text(encoding="utf-8") != text:
                raise FileExistsError(f"{path} exists with different content; pass overwrite=True to replace it")
    written = {}
    for key, (path, text) in texts.items():
        atomic_write_text(path, text, overwrite=overwrite)
        written[key] = path
    return written


def _jsonable_tree(obj: Any) -> Any:
    """``obj`` (nested mappings and sequences) with every key a string and every leaf JSON-ready."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable_tree(v) for v in obj]
    return _jsonable(obj)


class CohortTable:
    """One CSV for a whole cohort run, updated one subject at a time so that a killed run loses nothing.

    :meth:`add` inserts or replaces one subject's rows, keeping the table sorted by subject (rows of one subject
    keep their order). In a cohort run subjects usually come in order, each new: then the rows are appended with
    one ``write`` to the end of the file, without reading it (the table of a 40,000-scan run would otherwise be
    read and rewritten once per subject). The append is taken only when the file is exactly as this object last
    wrote it (same size, modification time and inode), the columns are the same and the subject sorts after every
    subject in it; otherwise (a subject redone, another process wrote in between, a first write) the file is read,
    the subject's old rows dropped, the table sorted and rewritten atomically (temporary file + ``os.replace``). On
    POSIX an advisory lock on the table's folder serialises writers from several processes (DDP ranks); no lock
    file is left behind.

    Args:
        path: the cohort CSV (created by the first :meth:`add`).

    Example:
        >>> import tempfile, pandas as pd
        >>> cohort = CohortTable(Path(tempfile.mkdtemp()) / "cohort.csv")
        >>> cohort.add(pd.DataFrame({"subject": ["s2"], "ff_mean_pct": [20.0]}))
        >>> cohort.add(pd.DataFrame({"subject": ["s1"], "ff_mean_pct": [10.0]}))
        >>> cohort.subjects()
        ['s1', 's2']
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        # what this object last wrote: (file signature, columns, subjects), to append without reading
        self._written: tuple[tuple[int, int, int], list[str], set[str]] | None = None

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _append(self, new: pd.DataFrame, subject: str) -> bool:
        """Append ``new`` (one subject's rows) when the file is as last written and stays sorted; else False."""
        if self._written is None or self._signature() != self._written[0]:
            return False
        _, columns, subjects = self._written
        if list(new.columns) != columns or subject in subjects or any(subject <= s for s in subjects):
            return False
        block = new.to_csv(index=False, header=False, float_format=_CSV_FLOAT_FORMAT, lineterminator="\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            view = memoryview(block)
            while view:  # one write call for a subject's few rows; the loop only guards a partial write
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        subjects.add(subject)
        self._written = (self._signature(), columns, subjects)  # type: ignore[assignment]
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover - Windows
            yield
            return
        # the lock is taken on the table's folder, not on a lock file: a lock file would be left behind after every
        # run, and deleting it safely while another process waits on it is not possible
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def read(self) -> pd.DataFrame:
        """The cohort table (empty DataFrame when the file does not exist yet); ``subject`` is read as text."""
        if not self.path.exists():
            return pd.DataFrame(columns=["subject"])
        return pd.read_csv(self.path, dtype={"subject": str}, keep_default_na=True)

    def subjects(self) -> list[str]:
        """Subjects already in the table, sorted."""
        return sorted(self.read()["subject"].dropna().astype(str).unique().tolist())

    def add(self, rows: pd.DataFrame, subject: str | None = None) -> None:
        """Insert or replace one subject's rows and rewrite the file atomically.

        Args:
            rows: the subject's rows (e.g. :attr:`scripts.quantification.statistics.QuantResult.table`); must have
                a ``subject`` column unless ``subject`` is given.
            subject: sets the ``subject`` column; required when ``rows`` has none or it is empty.

        Raises:
            ValueError: no subject, or rows of several subjects.
        """
        new = rows.copy()
        if subject is not None:
            new = _with_subject(new, subject) if "subject" in new.columns else new.assign(subject=subject)
        if "subject" not in new.columns or new["subject"].isna().any():
            raise ValueError("rows need a 'subject' column without gaps, or pass subject=")
        names = new["subject"].astype(str).unique().tolist()
        if len(names) != 1:
            raise ValueError(f"add takes the rows of one subject at a time, got {names}")
        new["subject"] = names[0]
        new = new[["subject", *[c for c in new.columns if c != "subject"]]]
        with self._locked():
            if not self._append(new, names[0]):
                old = self.read()
                old = old[old["subject"].astype(str) != names[0]]
                parts = [df for df in (old, new) if len(df)]
                merged = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
                merged = merged.sort_values("subject", kind="mergesort").reset_index(drop=True)
                atomic_write_text(self.path, _csv_text(merged), overwrite=True)
                subjects = set(merged["subject"].astype(str))
                self._written = (self._signature(), list(merged.columns), subjects)  # type: ignore[assignment]
        logger.info("cohort table %s: subject %s written (%d rows)", self.path, names[0], len(new))

    def remove(self, subject: str) -> bool:
        """Drop one subject's rows; returns whether any were present."""
        with self._locked():
            old = self.read()
            keep = old[old["subject"].astype(str) != subject]
            if len(keep) == len(old):
                return False
            atomic_write_text(self.path, _csv_text(keep.reset_index(drop=True)), overwrite=True)
            self._written = None
        return True
