"""Draw the pictures and HTML pages of a finished run afterwards (the run used ``--write_report later``).

Why: drawing costs about half a second per subject at the reference geometry; a cohort run can leave it out of the
critical path with ``--write_report later``, which keeps each subject's montage panels
(``<subject>_report_inputs.npz``), and draw the reports when convenient, on another machine or in another process::

    python -m scripts.reporting.render_reports --output_dir eval [--subjects sub-0001,sub-0002] [--overwrite true]

Every finished subject of ``output_dir`` (a folder with ``<subject>_done.json``) gets ``<subject>_qc_axial.png``,
``<subject>_ff_chart.png`` (and the level pictures when the run has levels) and ``<subject>_report.html``, drawn by
the same code from the same files as in the pipeline, so they equal what ``--write_report true`` would have made.
A subject whose page exists is left alone unless ``--overwrite true``. A subject that cannot be drawn (a run with
``--write_report false`` keeps no panels; a missing table) is reported with the missing file, the others are drawn,
and the command exits with status 1.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scripts.pipeline.keys import DONE_SUFFIX
from scripts.reporting.subject_files_report import render_from_saved_inputs, report_paths

__all__ = ["render_reports", "run"]


def _subject_names(out: Path, subjects: str | Iterable[str] | None) -> list[str]:
    """The asked subjects (comma-separated text or a list), or every finished one of ``out`` in name order."""
    if subjects is None:
        return sorted(p.parent.name for p in out.glob(f"*/*{DONE_SUFFIX}") if p.name == p.parent.name + DONE_SUFFIX)
    items = subjects.split(",") if isinstance(subjects, str) else [str(s) for s in subjects]
    return [s.strip() for s in items if s.strip()]


def _render_one(out: Path, subject: str, overwrite: bool) -> dict[str, Any]:
    """One subject: ``{"subject", "status" (drawn / skipped / failed), "seconds", "message"}``."""
    sdir = out / subject
    t0 = time.perf_counter()
    row: dict[str, Any] = {"subject": subject, "status": "failed", "seconds": 0.0, "message": ""}
    if not (sdir / f"{subject}{DONE_SUFFIX}").is_file():
        row["message"] = (
            f"{sdir / (subject + DONE_SUFFIX)}: missing; {subject} is not a finished subject of {out} "
            "(run or resume the inference first)"
        )
        return row
    html = report_paths(sdir, subject)["html"]
    if html.exists() and not overwrite:
        row.update(status="skipped", message=f"{html} exists; pass --overwrite true to draw it again")
        return row
    try:
        written = render_from_saved_inputs(sdir, subject)
    except (FileNotFoundError, ValueError) as err:
        row["message"] = str(err)
        return row
    row.update(status="drawn", message=", ".join(p.name for p in written.values()))
    row["seconds"] = time.perf_counter() - t0
    return row


def render_reports(
    output_dir: str | os.PathLike[str], subjects: str | Iterable[str] | None = None, overwrite: bool = False
) -> list[dict[str, Any]]:
    """Draw the report of each finished subject of a run from what the run saved.

    Args:
        output_dir: the run's output folder (one ``<subject>/`` folder per subject).
        subjects: subject identifiers (a list or comma-separated text); default every finished subject.
        overwrite: draw subjects whose ``<subject>_report.html`` exists again.

    Returns:
        One dict per subject: ``subject``, ``status`` (``drawn``, ``skipped`` or ``failed``), ``seconds`` (drawing
        time) and ``message`` (the files written, or why not, naming the missing file).

    Raises:
        FileNotFoundError: ``output_dir`` is not a folder.
    """
    out = Path(output_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such run folder (give the output_dir of a finished inference run)")
    return [_render_one(out, subject, overwrite) for subject in _subject_names(out, subjects)]


def run(output_dir: str, subjects: Any = None, overwrite: bool = False) -> None:
    """The command: draw, print one line per subject and a summary; exit status 1 when a subject failed."""
    rows = render_reports(output_dir, subjects, overwrite)
    for r in rows:
        took = f" ({r['seconds']:.2f} s)" if r["status"] == "drawn" else ""
        print(f"{r['subject']}: {r['status']}{took}: {r['message']}")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("drawn", "skipped", "failed")}
    print(f"{len(rows)} subject(s): {counts['drawn']} drawn, {counts['skipped']} skipped, {counts['failed']} failed")
    if not rows:
        print(f"no finished subject in {output_dir}", file=sys.stderr)
    if counts["failed"] or not rows:
        raise SystemExit(1)


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(run))
