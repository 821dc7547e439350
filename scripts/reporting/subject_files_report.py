"""A subject's pictures and HTML page drawn from the files its run wrote, in the pipeline or any time later.

Why from the files: the page then shows exactly what the published tables say, and a report drawn later
(:mod:`scripts.reporting.render_reports`) is the one the pipeline would have drawn, pixel for pixel. The tables
come from the subject's folder: ``<subject>_ff_table.json`` (the FF table at full precision, the FF provenance and
the level status), ``<subject>_normative.csv`` and, with vertebral levels, ``<subject>_ff_levels.csv``; the montage
from its panels (:mod:`scripts.reporting.montage_panels`), with the normative reference's provenance, which the CSV
does not hold, kept beside them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from scripts.reporting.ff_chart import ff_chart
from scripts.reporting.html_report import html_report
from scripts.reporting.level_charts import level_csa_chart, level_heatmap
from scripts.reporting.level_sagittal import level_sagittal
from scripts.reporting.montage import render_montage
from scripts.reporting.montage_panels import MontagePanels, load_panels, save_panels

__all__ = [
    "REPORT_INPUTS_SUFFIX",
    "REPORT_SUFFIX",
    "report_paths",
    "save_report_inputs",
    "render_subject_report",
    "render_from_saved_inputs",
]

#: what a ``--write_report later`` run keeps per subject: the montage panels and the reference provenance
REPORT_INPUTS_SUFFIX = "_report_inputs.npz"
#: the page, written last: its presence means the subject's report is complete
REPORT_SUFFIX = "_report.html"
_NEEDED = ("_ff_table.json", "_normative.csv")


def report_paths(subject_dir: str | os.PathLike[str], subject: str) -> dict[str, Path]:
    """The report's files in ``subject_dir``: ``montage``, ``chart``, ``sagittal``, ``levels``, ``csa``, ``html``,
    ``inputs``."""
    sdir = Path(subject_dir)
    names = {
        "montage": "_qc_axial.png",
        "chart": "_ff_chart.png",
        "sagittal": "_levels_sagittal.png",
        "levels": "_ff_levels.png",
        "csa": "_csa_levels.png",
        "html": REPORT_SUFFIX,
        "inputs": REPORT_INPUTS_SUFFIX,
    }
    return {k: sdir / f"{subject}{v}" for k, v in names.items()}


def save_report_inputs(
    subject_dir: str | os.PathLike[str], subject: str, panels: MontagePanels, normative_attrs: Mapping[str, Any]
) -> Path:
    """Keep what the report needs beyond the tables (``--write_report later``); returns the ``.npz`` path."""
    attrs = json.loads(json.dumps(dict(normative_attrs), default=str))
    return save_panels(panels, report_paths(subject_dir, subject)["inputs"], notes={"normative_attrs": attrs})


def _read_tables(sdir: Path, subject: str) -> dict[str, Any]:
    """The FF table, its provenance and level status, the normative comparison and the per-level table, if any."""
    for suffix in _NEEDED:
        if not (sdir / f"{subject}{suffix}").is_file():
            raise FileNotFoundError(f"{sdir / (subject + suffix)}: missing; the subject's run did not finish")
    doc = json.loads((sdir / f"{subject}_ff_table.json").read_text(encoding="utf-8"))
    try:
        comparison = pd.read_csv(sdir / f"{subject}_normative.csv")
    except pd.errors.EmptyDataError:  # no reference: the run wrote an empty comparison
        comparison = pd.DataFrame()
    levels_csv = sdir / f"{subject}_ff_levels.csv"
    return {
        "table": pd.DataFrame(doc["records"]),
        "provenance": {k: _provenance_value(v) for k, v in doc["meta"].get("provenance", {}).items()},
        "level_info": doc["meta"].get("levels"),
        "comparison": comparison,
        "levels": pd.read_csv(levels_csv) if levels_csv.is_file() else None,
    }


def _provenance_value(text: Any) -> Any:
    """A provenance value as the FF step made it, from the JSON's text (:func:`scripts.quantification.statistics`
    writes every value as text, None as ``none``): None, booleans and decimals typed again, so the page shows
    ``n/a``, ``no`` and ``53.5000`` as for the values in memory."""
    if not isinstance(text, str):
        return text
    if text == "none":
        return None
    if text in ("True", "False"):
        return text == "True"
    if "." in text or "e" in text.lower():
        try:
            return float(text)
        except ValueError:
            return text
    return text


def _level_images(
    levels: pd.DataFrame, paths: Mapping[str, Path], panels: MontagePanels, level_info: Mapping[str, Any] | None
) -> dict[str, Path]:
    """The per-level pictures, captioned with the level status and, when uncertain, its reasons: first the levels
    on the mid-sagittal plane (not from panels of format "1", which hold no sagittal plane), then the charts."""
    status = str(levels["level_status"].iloc[0])
    reasons = levels["level_reasons"].iloc[0]
    reasons = "" if status == "ok" or pd.isna(reasons) else str(reasons)
    note = "levels ok" if status == "ok" else f"levels UNCERTAIN: {reasons}"
    images = {}
    if panels.sagittal is not None:
        caption = f"Vertebral levels on the mid-sagittal plane: check the names against the spine ({note})"
        images[caption] = level_sagittal(panels, levels, paths["sagittal"], level_info)
    images[f"FF by vertebral level and muscle side ({note})"] = level_heatmap(levels, paths["levels"])
    images[f"Cross-section area by vertebral level ({note})"] = level_csa_chart(levels, paths["csa"])
    return images


def render_subject_report(
    subject_dir: str | os.PathLike[str],
    subject: str,
    panels: MontagePanels,
    normative_attrs: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Draw ``<subject>_qc_axial.png``, ``<subject>_ff_chart.png`` (and the level pictures:
    ``_levels_sagittal.png``, ``_ff_levels.png``, ``_csa_levels.png``) and write the page.

    Args:
        subject_dir: the subject's folder (staged in the pipeline, published for a later rendering), holding the
            tables its run wrote.
        subject: the subject identifier (file prefix).
        panels: the montage panels.
        normative_attrs: the normative comparison's provenance (``DataFrame.attrs`` of
            :func:`scripts.normative.comparison.compare_to_reference`: reference id, version, the approximation).

    Returns:
        name -> written path (``montage``, ``chart``, ``html`` and, with levels, ``sagittal``, ``levels`` and
        ``csa``).

    Raises:
        FileNotFoundError: a table is missing (the message names the file).
    """
    sdir = Path(subject_dir)
    paths = report_paths(sdir, subject)
    t = _read_tables(sdir, subject)
    comparison = t["comparison"]
    comparison.attrs.update(dict(normative_attrs or {}))
    images = {
        "QC montage": render_montage(panels, paths["montage"]),
        "FF against reference": ff_chart(t["table"], comparison, paths["chart"]),
    }
    levels = t["levels"]
    has_levels = levels is not None and len(levels)
    level_images = _level_images(levels, paths, panels, t["level_info"]) if has_levels else {}
    html = html_report(
        subject,
        t["table"],
        comparison,
        images,
        paths["html"],
        t["provenance"],
        levels=levels,
        level_info=t["level_info"],
        level_images=level_images,
    )
    written = {"montage": images["QC montage"], "chart": images["FF against reference"], "html": html}
    if level_images:
        written.update(levels=paths["levels"], csa=paths["csa"])
        if panels.sagittal is not None:
            written["sagittal"] = paths["sagittal"]
    return written


def render_from_saved_inputs(subject_dir: str | os.PathLike[str], subject: str) -> dict[str, Path]:
    """:func:`render_subject_report` from the ``<subject>_report_inputs.npz`` a ``--write_report later`` run kept.

    Raises:
        FileNotFoundError: the inputs file or a table is missing (the message names it and the way forward).
        ValueError: the inputs file cannot be read.
    """
    inputs = report_paths(subject_dir, subject)["inputs"]
    if not inputs.is_file():
        raise FileNotFoundError(
            f"{inputs}: missing; only a run with --write_report later keeps what the pictures need (rerun the "
            "subject with --write_report later or true)"
        )
    panels, notes = load_panels(inputs)
    return render_subject_report(subject_dir, subject, panels, notes.get("normative_attrs"))
