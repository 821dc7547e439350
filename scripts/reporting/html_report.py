"""One self-contained HTML page per subject: flags, FF table, normative comparison, levels, provenance, pictures.

The page embeds its pictures as base64, so it is a single file that can be mailed or archived; it is written
atomically (temporary file in the target folder, then ``os.replace``). All text is HTML-escaped. A muscle side whose
quality verdict is ``fail`` is shown in red in the FF table and its normative comparison is withheld; a ``review``
side is shown in amber (:mod:`scripts.reporting.qc_marks`). The numbers themselves are those of the tables. With
the vertebral context (a 15-output model) a "Per vertebral level" section shows the level pictures, FF mean and
mid-plane CSA per level and muscle side, and whether the level names can be trusted, in words.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scripts.io.atomic import atomic_write_bytes
from scripts.labels import MUSCLES
from scripts.quantification.image_vertebrae import IMAGE_SOURCE
from scripts.reporting.qc_marks import QC_COLOURS, QC_WITHHELD_TEXT, qc_status_of, qc_statuses
from scripts.reporting.style import muscle_name, side_key

__all__ = ["APPROXIMATION_NOTE", "LEVELS_NEED_CONTEXT_TEXT", "html_report"]

#: What every normative statement must say (docs/design.md: percentiles and z are approximations).
APPROXIMATION_NOTE: str = (
    "Approximation: the percentile and z-score are approximations under the distribution named per row, fitted "
    "to the reference's published quartiles (or interpolated in its percentile table); the band (below Q1, within "
    "the IQR, above Q3) uses the published reference values themselves."
)

#: the level section's one sentence when the label map holds no vertebral labels (a 9-output model)
LEVELS_NEED_CONTEXT_TEXT: str = (
    "Per-level results (L1-L5) need a model with the vertebral context (15 outputs: the muscles, L1-L5 and the "
    "sacrum); this model's label map holds no vertebral labels, so no per-level table was made."
)
#: how a level status reads on the page; "uncertain" is followed by the reasons
_LEVELS_OK_TEXT = (
    "Levels ok: L1-L5 are the network's vertebral labels, checked (one piece per body, cranio-caudal order, body "
    "heights 20-40 mm, disc gaps 1-20 mm, no level skipped) and anchored on the sacrum in view."
)
#: "ok" levels named from the user's statement of the lowest body in view (--lowest_vertebra), not from the sacrum
_LEVELS_STATED_TEXT = (
    "Levels ok as stated: the sacrum is not in view, so the vertebral bodies were counted up from the lowest one, "
    "which this run's --lowest_vertebra says is {body}, and checked (one piece per body, body heights 20-40 mm, disc "
    "gaps 1-20 mm, no level skipped). The names are as right as that statement."
)
#: bodies found in the FF map (scripts.pipeline.image_vertebrae), not by a network
_LEVELS_FROM_FF_MAP_TEXT = (
    "The vertebral bodies were found in the FF map (marrow between water-like discs), because the spine network "
    "named none: check them on the sagittal picture below."
)
_LEVELS_UNCERTAIN_TAIL = (
    "so the L1-L5 names rest on the network's labels alone and may be off by a level: do not compare these "
    "levels with other subjects' without looking at the sagittal anatomy."
)

_CSS = """
body{font-family:system-ui,Arial,sans-serif;margin:1.5em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f0f0f0} td.t{text-align:left}
.flag{color:#b00020;font-weight:bold} .ok{color:#2e7d32}
.note{background:#fff8e1;border-left:4px solid #f9a825;padding:6px 10px;font-size:0.9em}
img{max-width:100%;border:1px solid #ddd} figure{margin:1em 0}
tr.qc-fail td{color:#b00020;background:#fdecea;font-weight:bold} tr.qc-review td{background:#fff3cd}
tr.qc-review td.t:first-child{border-left:4px solid #f9a825}
"""

#: (column, header) of the FF table, in page order; columns absent from the table are left out.
_FF_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ff_mean_pct", "FF mean (%)"),
    ("ff_core_mean_pct", "FF core mean (%)"),
    ("ff_median_pct", "FF median (%)"),
    ("volume_ml", "volume (mL)"),
    ("n_voxels", "voxels"),
    ("status", "status"),
    ("qc_status", "quality"),
)
#: (column, header) of the normative comparison table, in page order.
_COMPARISON_COLUMNS: tuple[tuple[str, str], ...] = (
    ("muscle", "muscle"),
    ("side", "side"),
    ("ff_mean_pct", "FF (%)"),
    ("p25", "ref Q1"),
    ("p50", "ref median"),
    ("p75", "ref Q3"),
    ("band", "band"),
    ("percentile_approx", "percentile (approx.)"),
    ("z_score_approx", "z (approx.)"),
    ("distribution", "distribution"),
    ("flags", "flags"),
)
#: comparison columns that place the value against the reference: withheld for a side that failed the quality check
_WITHHELD_COLUMNS: frozenset[str] = frozenset({"band", "percentile_approx", "z_score_approx"})


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _html_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], text_cols: int = 2, row_classes: Sequence[str] = ()
) -> str:
    """A table; ``row_classes[k]`` (when given and not empty) is the CSS class of row ``k``."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for k, row in enumerate(rows):
        cells = "".join(
            f'<td class="t">{html.escape(str(v))}</td>' if i < text_cols else f"<td>{html.escape(str(v))}</td>"
            for i, v in enumerate(row)
        )
        cls = row_classes[k] if k < len(row_classes) else ""
        body.append(f'<tr class="{html.escape(cls)}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _side_label(side: Any) -> str:
    return "L/R mean" if side_key(side) == "mean" else str(side)


def _qc_class(status: str) -> str:
    """CSS class of a row with this quality verdict (none for ``pass``)."""
    return f"qc-{status}" if status in QC_COLOURS else ""


def _flag_lines(table: pd.DataFrame) -> list[str]:
    lines: list[str] = []
    sides = table[table["side"].map(side_key) != "mean"] if "side" in table else table
    for _, row in sides.iterrows():
        where = f"{muscle_name(row['muscle'])} {row['side']}"
        status = str(row.get("status", "ok"))
        if status == "missing":
            lines.append(f"{where}: missing (no voxels): FF not reported (n/a, never 0 %)")
        elif status == "no_valid_ff":
            lines.append(f"{where}: every voxel excluded (near-zero FF denominator): FF not reported")
        if bool(row.get("truncated_inferior", False)) or bool(row.get("truncated_superior", False)):
            ends = [e for e in ("inferior", "superior") if bool(row.get(f"truncated_{e}", False))]
            lines.append(
                f"{where}: truncated at the {' and '.join(ends)} end of the field of view: volume is "
                "partial; FF from the covered part"
            )
        qc = str(row.get("qc_status", "pass"))
        if qc in ("review", "fail"):
            reasons = row.get("qc_reasons", "")
            reasons = "" if pd.isna(reasons) else str(reasons)
            verb = (
                "FAILED the quality check: do not use its number" if qc == "fail" else "quality check asks for review"
            )
            lines.append(f"{where}: {verb} ({reasons})")
        swap = row.get("swap_suspected", pd.NA)
        if swap is not pd.NA and not pd.isna(swap) and bool(swap):
            kinds = [
                k.removeprefix("swap_")
                for k in ("swap_global", "swap_asymmetric", "swap_region", "swap_slices")
                if k in row and not pd.isna(row[k]) and bool(row[k])
            ]
            lines.append(f"{where}: fat-water swap suspected ({', '.join(kinds)}): review the images; FF may be 1 - FF")
    checked = [v for v in sides.get("swap_suspected", pd.Series(dtype=object)) if not pd.isna(v)]
    if len(sides) and not checked:
        lines.append("fat-water swap check: not run for this subject (swap not excluded)")
    return lines


def _flags_section(table: pd.DataFrame) -> list[str]:
    flags = _flag_lines(table)
    parts = ["<h2>Flags</h2>"]
    if flags:
        parts.append("<ul>" + "".join(f'<li class="flag">{html.escape(f)}</li>' for f in flags) + "</ul>")
    else:
        parts.append(
            '<p class="ok">No flags: every muscle present, none truncated, no fat-water swap '
            "suspected (where checked).</p>"
        )
    return parts


def _ff_section(table: pd.DataFrame) -> list[str]:
    """The FF table, muscles in :data:`scripts.labels.MUSCLES` order and left, right, L/R mean within each."""
    cols = [(c, h) for c, h in _FF_COLUMNS if c in table.columns]
    rows, classes = [], []
    statuses = qc_statuses(table)
    order = {m: i for i, m in enumerate(MUSCLES)}
    side_order = {"left": 0, "right": 1, "mean": 2}
    ordered = table.assign(_m=table["muscle"].map(order), _s=table["side"].map(side_key).map(side_order))
    for _, row in ordered.sort_values(["_m", "_s"], kind="mergesort").iterrows():
        values = [_fmt(row[c], 1 if c != "volume_ml" else 2) for c, _ in cols]
        rows.append([muscle_name(row["muscle"]), _side_label(row["side"]), *values])
        classes.append(_qc_class(qc_status_of(statuses, row["muscle"], row["side"])))
    core = str(table["core_erosion"].iloc[0]) if "core_erosion" in table.columns and len(table) else "n/a"
    qc_note = (
        " Red rows failed the quality check: their FF is kept in the tables with the verdict but is not a "
        "measurement of that muscle; amber rows ask for review."
        if any(classes)
        else ""
    )
    return [
        "<h2>Fat fraction per muscle</h2>",
        _html_table(["muscle", "side", *[h for _, h in cols]], rows, text_cols=2, row_classes=classes),
        f"<p>FF mean: plain mean of F/(F+W) over the whole label, no erosion (the reference's statistic). "
        f"Core mean: label eroded {html.escape(core)}. L/R mean: mean of the left and right values. n/a = not "
        f"available (never 0 %).{qc_note}</p>",
    ]


def _comparison_row(row: pd.Series, status: str) -> list[str]:
    """One row of the comparison table; a ``fail`` side's placement (band, percentile, z) is withheld."""
    vals = [muscle_name(row["muscle"]), _side_label(row["side"])]
    for c, _ in _COMPARISON_COLUMNS[2:]:
        v = row.get(c, None)
        if status == "fail" and c in _WITHHELD_COLUMNS:
            vals.append(QC_WITHHELD_TEXT)
        elif c == "flags":
            flags = v if isinstance(v, str) else ""
            vals.append("; ".join(f for f in (flags, "qc_fail" if status == "fail" else "") if f))
        else:
            vals.append(_fmt(v, 2 if c == "z_score_approx" else 1))
    return vals


def _comparison_section(comparison: pd.DataFrame | None, table: pd.DataFrame | None = None) -> list[str]:
    """The normative comparison table with the approximation note, or a line saying there is no reference.

    Sides that failed the quality check in ``table`` (the subject's FF table) are shown in red with their band,
    percentile and z-score withheld: placing a number that measures the wrong tissue would read as a finding.
    """
    esc = html.escape
    if comparison is None or comparison.empty:
        return ["<h2>Normative comparison</h2>", "<p>No normative reference was given.</p>"]
    statuses = qc_statuses(table)
    crow, classes = [], []
    for _, row in comparison.iterrows():
        status = qc_status_of(statuses, row["muscle"], row["side"])
        crow.append(_comparison_row(row, status))
        classes.append(_qc_class(status))
    ref = comparison.attrs.get("reference_id", comparison.get("reference_id", pd.Series([""])).iloc[0])
    ver = comparison.attrs.get("reference_version", "")
    dists = sorted({str(d) for d in comparison.get("distribution", pd.Series(dtype=object)).dropna()})
    note = (
        f'<p class="note">{esc(APPROXIMATION_NOTE)} Distribution: {esc(", ".join(dists) or "n/a")}. '
        f"Reference: {esc(str(ref))} {esc(str(ver))}"
        + (f"; {esc(str(comparison.attrs['approximation']))}" if "approximation" in comparison.attrs else "")
        + "</p>"
    )
    if "qc-fail" in classes:
        note += (
            '<p class="flag">Comparison withheld for the sides that failed the quality check '
            f'("{esc(QC_WITHHELD_TEXT)}"): their FF does not measure that muscle, so no band, percentile or z-score '
            "is given.</p>"
        )
    return [
        "<h2>Normative comparison</h2>",
        _html_table([h for _, h in _COMPARISON_COLUMNS], crow, text_cols=2, row_classes=classes),
        note,
    ]


def _level_status_lines(levels: pd.DataFrame | None, level_info: Mapping[str, Any]) -> list[str]:
    """The level status in words: ok, or uncertain with its reasons; then the bound rule and partial levels."""
    status = str(level_info.get("status", "n/a"))
    reasons = [str(r) for r in level_info.get("reasons", [])]
    if not reasons and levels is not None and len(levels) and status != "ok":
        text = levels["level_reasons"].iloc[0]
        reasons = [] if pd.isna(text) or not str(text) else [str(text)]
    why = "; ".join(reasons) or "no reason recorded"
    lines = [_LEVELS_OK_TEXT] if status == "ok" else [f"Levels uncertain: {why}; {_LEVELS_UNCERTAIN_TAIL}"]
    anchor = str(level_info.get("anchor") or "sacrum")
    if status == "ok" and anchor != "sacrum":
        lines = [_LEVELS_STATED_TEXT.format(body=anchor.rsplit(" ", 1)[-1])]
    if (level_info.get("naming") or {}).get("source") == IMAGE_SOURCE:
        lines.append(_LEVELS_FROM_FF_MAP_TEXT)
    rule = level_info.get("boundary_rule")
    if rule:
        lines.append(f"Level bounds: {rule} (axial planes of world z).")
    partial = [
        f"{lv['level']} ({100.0 * float(lv['coverage']):.0f} %)"
        for lv in level_info.get("levels", [])
        if float(lv.get("coverage", 1.0)) < 0.999
    ]
    if partial:
        lines.append(
            f"Partly outside the field of view (share of the level in view): {', '.join(partial)}; their mean CSA "
            "is over the covered part only."
        )
    return lines


def _level_rows(levels: pd.DataFrame, statuses: dict[tuple[str, str], str]) -> list[list[str]]:
    """One row per level and muscle: FF mean and mid-plane CSA of the left and right side; failed sides marked.

    With a per-level normative comparison (``percentile_approx``) also each side's approximate percentile, withheld
    for a side that failed the quality check. A muscle with no voxel in any level is left out.
    """
    placed = "percentile_approx" in levels.columns
    rows = []
    voxels = pd.to_numeric(levels["n_voxels"], errors="coerce").fillna(0) if "n_voxels" in levels else None
    # a muscle with no voxel in any level (not segmented, or outside these levels) would only add rows of n/a
    shown = [m for m in MUSCLES if voxels is None or voxels[levels["muscle"] == m].sum() > 0]
    for level in dict.fromkeys(levels["level"].astype(str)):
        at = levels[levels["level"].astype(str) == level]
        for muscle in shown:
            cells: dict[str, list[str]] = {"ff": [], "csa": [], "pct": []}
            for side in ("left", "right"):
                row = at[(at["muscle"] == muscle) & (at["side"] == side)]
                failed = qc_status_of(statuses, muscle, side) == "fail"
                mark = " (QC fail)" if failed else ""
                ff = row["ff_mean_pct"].iloc[0] if len(row) else None
                csa = row["csa_mid_cm2"].iloc[0] if len(row) else None
                cells["ff"].append(_fmt(ff) + (mark if _fmt(ff) != "n/a" else ""))
                cells["csa"].append(_fmt(csa, 2) + (mark if _fmt(csa) != "n/a" else ""))
                pct = row["percentile_approx"].iloc[0] if placed and len(row) else None
                cells["pct"].append(QC_WITHHELD_TEXT if failed and _fmt(pct) != "n/a" else _fmt(pct))
            rows.append([level, muscle_name(muscle), *cells["ff"], *cells["csa"], *(cells["pct"] if placed else [])])
    return rows


def _levels_section(
    levels: pd.DataFrame | None,
    level_info: Mapping[str, Any] | None,
    images: Mapping[str, str | os.PathLike[str]],
    table: pd.DataFrame | None,
) -> list[str]:
    """The "Per vertebral level" section: status in words, the compact table and the level pictures.

    Without vertebral labels (``level_info`` status ``not available``) it is one sentence saying what is needed.
    """
    esc = html.escape
    parts = ["<h2>Per vertebral level</h2>"]
    info = dict(level_info or {})
    if levels is None or not len(levels):
        if info.get("status") == "not available" or not info:
            return [*parts, f"<p>{esc(LEVELS_NEED_CONTEXT_TEXT)}</p>"]
        return [*parts, f'<p class="flag">{esc("; ".join(str(r) for r in info.get("reasons", [])))}</p>']
    if not info:
        info = {"status": str(levels["level_status"].iloc[0])}
    cls = "ok" if info.get("status") == "ok" else "flag"
    parts.extend(f'<p class="{cls}">{esc(line)}</p>' for line in _level_status_lines(levels, info))
    header = ["level", "muscle", "FF mean left (%)", "FF mean right (%)", "CSA mid left (cm²)", "CSA mid right (cm²)"]
    placed = "percentile_approx" in levels.columns
    if placed:
        header += ["percentile left (approx.)", "percentile right (approx.)"]
    parts.append(_html_table(header, _level_rows(levels, qc_statuses(table)), text_cols=2))
    parts.append(
        "<p>FF mean: plain mean of F/(F+W) over the muscle side's voxels between the level's bounds (same border "
        "trim and minimum volume as the FF table). CSA mid: cross-section area at the level's mid-plane (n/a "
        "outside the field of view). n/a = not available (never 0 %). Left and right are the patient's.</p>"
    )
    if placed:
        flags = sorted({f for text in levels["normative_flags"].fillna("") for f in str(text).split(";") if f})
        parts.append(
            f'<p class="note">Percentiles against the per-level strata of the reference (built from a cohort run): '
            f"{esc(APPROXIMATION_NOTE)} Flags: {esc(', '.join(flags) or 'none')}.</p>"
        )
    parts.extend(_figure(caption, path) for caption, path in images.items())
    return parts


def _figure(caption: str, path: str | os.PathLike[str]) -> str:
    b64 = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{b64}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _provenance_section(provenance: Mapping[str, Any]) -> list[str]:
    parts = ["<h2>Provenance: how FF was made</h2><table><tbody>"]
    for key, value in provenance.items():
        parts.append(f'<tr><th>{html.escape(str(key))}</th><td class="t">{html.escape(_fmt(value, 4))}</td></tr>')
    parts.append("</tbody></table>")
    return parts


def _pictures_section(images: Mapping[str, str | os.PathLike[str]]) -> list[str]:
    return ["<h2>Pictures</h2>", *(_figure(caption, path) for caption, path in images.items())]


def html_report(
    subject: str,
    table: pd.DataFrame,
    comparison: pd.DataFrame | None,
    images: Mapping[str, str | os.PathLike[str]],
    out_html: str | os.PathLike[str],
    provenance: Mapping[str, Any],
    *,
    levels: pd.DataFrame | None = None,
    level_info: Mapping[str, Any] | None = None,
    level_images: Mapping[str, str | os.PathLike[str]] | None = None,
) -> Path:
    """Write one self-contained HTML page for a subject: flags, FF table, normative comparison, levels, provenance,
    images.

    Sections: the flags (missing, no valid FF, truncated, fat-water swap suspected; "No flags" otherwise); the FF
    table (left, right and L/R mean per muscle: mean, core mean, median, volume, voxels, status; rows that failed
    the quality check in red, rows for review in amber); the normative comparison (reference quartiles, band,
    approximate percentile and z-score, with :data:`APPROXIMATION_NOTE` and the distribution named; withheld for
    failed sides); when ``levels`` or ``level_info`` is given, "Per vertebral level" (the level status in words,
    uncertain levels with their reasons, FF mean and mid-plane CSA per level and muscle side, the level pictures;
    with a 9-output model the one sentence :data:`LEVELS_NEED_CONTEXT_TEXT`); the provenance (how FF was made);
    the pictures, embedded as base64 PNG so the page is one portable file. All text is HTML-escaped.

    Args:
        subject: subject identifier (title).
        table: the subject's table from :func:`scripts.quantification.statistics.quantify_muscles`.
        comparison: output of :func:`scripts.normative.comparison.compare_to_reference`, or ``None``.
        images: caption -> PNG path (e.g. ``{"QC montage": ..., "FF chart": ...}``).
        out_html: output path.
        provenance: key -> value describing the FF map (method, source, scale, assumption, software ...).
        levels: the per-level table (:func:`scripts.quantification.level_statistics.level_statistics`), or None.
        level_info: the ``levels`` section of the FF table JSON (status, reasons, boundary_rule, levels), or None.
        level_images: caption -> PNG path of the level pictures, shown in the level section.

    Returns:
        The written path.

    Raises:
        FileNotFoundError: an image path does not exist.
    """
    esc = html.escape
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Fat fraction report '
        f"{esc(subject)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Lumbar muscle fat fraction: {esc(subject)}</h1>",
        *_flags_section(table),
        *_ff_section(table),
        *_comparison_section(comparison, table),
        *(
            _levels_section(levels, level_info, level_images or {}, table)
            if levels is not None or level_info is not None
            else []
        ),
        *_provenance_section(provenance),
        *_pictures_section(images),
        "</body></html>\n",
    ]
    return atomic_write_bytes(Path(out_html), "\n".join(parts).encode("utf-8"))
