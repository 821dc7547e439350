"""Per-subject QC pictures and a one-page HTML report: overlay montage, FF chart against the reference, tables.

Display convention: **radiological**. Axial images are shown as if looking up from the patient's feet: patient
right on the image left, anterior at the top; coronal images with superior at the top and patient right on the
image left. The volume is first reoriented to RAS with nibabel (flips and axis permutations only, no resampling),
so the picture does not depend on how the scanner stored the slices (LPS, RAS, reversed order). The axial view is
:func:`display_slice`, which the montage itself uses, so the orientation can be tested without parsing a PNG.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never through ``pyplot``: no global backend
switch, safe in headless workers (as in :mod:`scripts.evaluation.agreement_plots`). Every file is written atomically
(temporary file in the target folder, then ``os.replace``). The HTML page embeds its pictures as base64, so it is a
single file that can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from scripts.io.atomic import atomic_write_bytes
from scripts.labels import LABELS, MUSCLES, NUM_CLASSES
from scripts.quantification.fat_fraction import map_labels_to_grid, slice_axis_from_affine

__all__ = [
    "LABEL_COLOURS",
    "MUSCLE_DISPLAY_NAMES",
    "APPROXIMATION_NOTE",
    "to_ras",
    "display_slice",
    "coronal_slice",
    "qc_montage",
    "ff_chart",
    "html_report",
]

#: label value -> colour of its contour: 8 distinct colours, left and right of a muscle in one hue family.
LABEL_COLOURS: dict[int, str] = {
    1: "#1f77b4",
    2: "#17becf",  # psoas: blue, cyan
    3: "#2ca02c",
    4: "#bcbd22",  # iliacus: green, olive
    5: "#d62728",
    6: "#ff7f0e",  # quadratus lumborum: red, orange
    7: "#9467bd",
    8: "#e377c2",  # erector spinae + multifidus: purple, pink
}

#: muscle key of :mod:`scripts.labels` -> name shown to readers.
MUSCLE_DISPLAY_NAMES: dict[str, str] = {
    "psoas": "Psoas",
    "iliacus": "Iliacus",
    "quadratus_lumborum": "Quadratus lumborum",
    "erector_spinae_multifidus": "Erector spinae + multifidus",
}

#: What every normative statement must say (docs/design.md: percentiles and z are approximations).
APPROXIMATION_NOTE: str = (
    "Approximation: the percentile and z-score are approximations under the distribution named per row, fitted "
    "to the reference's published quartiles (or interpolated in its percentile table); the band (below Q1, within "
    "the IQR, above Q3) uses the published reference values themselves."
)

_WINDOW_PERCENTILES = (1.0, 99.5)
_SIDE_STYLE = {"left": ("<", -0.18), "right": (">", 0.18), "mean": ("o", 0.0)}
_LR = ("lr_mean", "mean")


# ----------------------------------------------------------------------------------------------------------------
# orientation
# ----------------------------------------------------------------------------------------------------------------


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a 3D array to the closest RAS axis order by flips and permutations (no interpolation).

    Args:
        data: 3D array ``(I, J, K)``.
        affine: its 4x4 voxel-to-world (RAS, mm) affine.

    Returns:
        ``(data_ras, affine_ras)``: array axes point to patient right, anterior and superior.
    """
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {arr.shape}")
    aff = np.asarray(affine, dtype=np.float64)
    ornt = nib.orientations.io_orientation(aff)
    ras = nib.orientations.apply_orientation(arr, ornt)
    return ras, aff @ nib.orientations.inv_ornt_aff(ornt, arr.shape)


def _axial_view(ras: np.ndarray, k: int) -> np.ndarray:
    # RAS array [x, y, z]: rows from anterior (top) to posterior, columns from patient right to patient left
    return ras[::-1, ::-1, k].T


def _coronal_view(ras: np.ndarray, j: int) -> np.ndarray:
    # rows from superior (top) to inferior, columns from patient right to patient left
    return ras[::-1, j, ::-1].T


def display_slice(inphase: np.ndarray, affine: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of the RAS-reoriented volume as displayed: radiological convention.

    Row 0 is the most anterior row, column 0 the patient's far right; a structure at world ``x < 0`` (patient
    left) appears in the right half of the image when the field of view is centred on ``x = 0``.

    Args:
        inphase: 3D image.
        affine: its 4x4 voxel-to-world (RAS, mm) affine.
        k: slice index along the superior axis of the RAS-reoriented volume (0 = most inferior).

    Returns:
        2D array ``(n_anterior_posterior, n_right_left)``.

    Example:
        >>> import numpy as np
        >>> vol = np.zeros((4, 2, 1)); vol[0, 0, 0] = 1.0  # RAS voxel 0: the patient's far left, posterior
        >>> display_slice(vol, np.eye(4), 0).tolist()  # shown bottom (posterior) right (patient left)
        [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    """
    ras, _ = to_ras(inphase, affine)
    if not 0 <= k < ras.shape[2]:
        raise ValueError(f"slice index k must be in [0, {ras.shape[2] - 1}], got {k}")
    return _axial_view(ras, k)


def coronal_slice(volume: np.ndarray, affine: np.ndarray, j: int) -> np.ndarray:
    """Coronal slice ``j`` (index along the anterior axis of the RAS volume), radiological convention.

    Args:
        volume: 3D image.
        affine: its 4x4 voxel-to-world (RAS, mm) affine.
        j: index along the posterior-to-anterior axis of the RAS-reoriented volume.

    Returns:
        2D array ``(n_superior_inferior, n_right_left)``, superior at row 0.
    """
    ras, _ = to_ras(volume, affine)
    if not 0 <= j < ras.shape[1]:
        raise ValueError(f"slice index j must be in [0, {ras.shape[1] - 1}], got {j}")
    return _coronal_view(ras, j)


# ----------------------------------------------------------------------------------------------------------------
# file helpers
# ----------------------------------------------------------------------------------------------------------------


def _save_png(fig: Figure, out_png: str | os.PathLike[str], dpi: int) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return atomic_write_bytes(Path(out_png), buffer.getvalue())


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# QC montage
# ----------------------------------------------------------------------------------------------------------------


def _window(ras: np.ndarray) -> tuple[float, float]:
    """Display window from robust percentiles of the non-zero voxels (background zeros would darken it)."""
    values = ras[np.isfinite(ras) & (ras != 0)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, _WINDOW_PERCENTILES)
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def _draw_contours(ax: Axes, label_view: np.ndarray) -> None:
    for value in np.unique(label_view):
        if value in LABEL_COLOURS:
            mask = (label_view == value).astype(np.float32)
            ax.contour(mask, levels=[0.5], colors=[LABEL_COLOURS[int(value)]], linewidths=1.0)


def _label_name(value: int) -> str:
    return LABELS[value].replace("_", " ")


def qc_montage(
    inphase: np.ndarray,
    affine: np.ndarray,
    label: np.ndarray,
    out_png: str | os.PathLike[str],
    n_slices: int = 12,
    label_affine: np.ndarray | None = None,
    title: str | None = None,
    ncols: int = 4,
    dpi: int = 110,
) -> Path:
    """Axial overlay montage plus coronal reformats, for a visual check of the segmentation.

    ``n_slices`` evenly spaced axial slices cover the labelled cranio-caudal range (the whole volume when no
    label is present), each with the label contours in :data:`LABEL_COLOURS` and a legend of the label names.
    Intensities are windowed at the 1st and 99.5th percentiles of the non-zero voxels. Below, coronal reformats
    through the centroid of the anterior muscles (psoas, iliacus) and of the posterior ones (quadratus lumborum,
    erector spinae + multifidus), with dashed lines at the montage slices. Pixel aspect ratios follow the voxel
    spacing. Radiological convention (see :func:`display_slice`); orientation letters mark each view.

    Args:
        inphase: 3D in-phase (or any anatomical) image.
        affine: its 4x4 voxel-to-world (RAS, mm) affine.
        label: 3D label map, on the image grid unless ``label_affine`` is given.
        out_png: output PNG path.
        n_slices: number of axial panels (fewer when the labelled range has fewer slices).
        label_affine: affine of ``label`` when it is on another grid: mapped by nearest neighbour.
        title: figure title.
        ncols: panels per row of the montage.
        dpi: resolution of the PNG.

    Returns:
        The written path.
    """
    if n_slices < 1 or ncols < 1:
        raise ValueError(f"n_slices and ncols must be >= 1, got {n_slices} and {ncols}")
    img = np.asarray(inphase, dtype=np.float32)
    lab = np.asarray(label)
    if label_affine is not None:
        lab = map_labels_to_grid(lab, label_affine, img.shape, affine)
    elif lab.shape != img.shape:
        raise ValueError(f"label shape {lab.shape} differs from the image shape {img.shape}; pass label_affine")
    ras, ras_aff = to_ras(img, affine)
    lab_ras, _ = to_ras(lab, affine)
    spacing = np.linalg.norm(ras_aff[:3, :3], axis=0)
    vmin, vmax = _window(ras)
    present = lab_ras != 0
    ks = np.nonzero(present.any(axis=(0, 1)))[0]
    k_lo, k_hi = (int(ks[0]), int(ks[-1])) if ks.size else (0, ras.shape[2] - 1)
    # from superior to inferior, the usual reading order of an axial stack on a lumbar spine
    chosen = np.unique(np.round(np.linspace(k_hi, k_lo, n_slices)).astype(int))[::-1]
    # panels are titled with the stored slice index, the one the per-slice table uses
    stored_axis = slice_axis_from_affine(np.asarray(affine, dtype=np.float64))
    ras_to_stored = np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ ras_aff

    nrows = int(math.ceil(len(chosen) / ncols))
    panel_w = 2.6
    ap_over_rl = ras.shape[1] * spacing[1] / (ras.shape[0] * spacing[0])
    si_over_rl = ras.shape[2] * spacing[2] / (ras.shape[0] * spacing[0])
    cor_h = min(panel_w * 2 * si_over_rl, 6.0)
    fig = _new_figure((panel_w * ncols, panel_w * ap_over_rl * nrows + cor_h + 1.0))
    top, bottom = fig.subfigures(2, 1, height_ratios=[panel_w * ap_over_rl * nrows, cor_h])
    axes = top.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, k in zip(axes.ravel(), chosen):
        ax.imshow(
            _axial_view(ras, int(k)),
            cmap="gray",
            vmin=vmin,
            vmax=vmax,
            aspect=spacing[1] / spacing[0],
            interpolation="nearest",
        )
        _draw_contours(ax, _axial_view(lab_ras, int(k)))
        z_mm = float((ras_aff @ np.array([0.0, 0.0, float(k), 1.0]))[2])
        stored = int(round(float((ras_to_stored @ np.array([0.0, 0.0, float(k), 1.0]))[stored_axis])))
        ax.set_title(f"slice {stored}  z={z_mm:.0f} mm", fontsize=8)
    first = axes.ravel()[0]
    for x, y, text in ((0.02, 0.5, "R"), (0.98, 0.5, "L"), (0.5, 0.97, "A"), (0.5, 0.03, "P")):
        first.text(x, y, text, transform=first.transAxes, color="yellow", fontsize=8, ha="center", va="center")

    groups = [("psoas + iliacus", (1, 2, 3, 4)), ("QL + ES/MF", (5, 6, 7, 8))]
    planes = []
    for name, values in groups:
        sel = np.isin(lab_ras, values)
        if sel.any():
            planes.append((name, int(round(float(np.nonzero(sel)[1].mean())))))
    if not planes:
        planes.append(("centre", ras.shape[1] // 2))
    cor_axes = bottom.subplots(1, len(planes), squeeze=False).ravel()
    for ax, (name, j) in zip(cor_axes, planes):
        ax.imshow(
            _coronal_view(ras, j),
            cmap="gray",
            vmin=vmin,
            vmax=vmax,
            aspect=spacing[2] / spacing[0],
            interpolation="nearest",
        )
        _draw_contours(ax, _coronal_view(lab_ras, j))
        for k in chosen:
            # the coronal view runs superior (row 0) to inferior
            ax.axhline(ras.shape[2] - 1 - int(k), color="yellow", linestyle=":", linewidth=0.5)
        ax.set_title(f"coronal through {name} (index {j})", fontsize=8)
        ax.set_axis_off()
        for x, y, text in ((0.02, 0.5, "R"), (0.98, 0.5, "L"), (0.5, 0.97, "S"), (0.5, 0.03, "I")):
            ax.text(x, y, text, transform=ax.transAxes, color="yellow", fontsize=8, ha="center", va="center")
    handles = [
        Patch(facecolor="none", edgecolor=LABEL_COLOURS[v], linewidth=2, label=_label_name(v))
        for v in range(1, NUM_CLASSES)
    ]
    bottom.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    fig.suptitle(
        title or "QC: axial montage (radiological: patient right on image left) and coronal reformat", fontsize=10
    )
    return _save_png(fig, out_png, dpi)


# ----------------------------------------------------------------------------------------------------------------
# FF chart
# ----------------------------------------------------------------------------------------------------------------


def _side_key(side: Any) -> str:
    text = str(side).strip().lower()
    return "mean" if text in _LR else text


def _reference_rows(comparison: pd.DataFrame | None) -> dict[str, pd.Series]:
    """L/R-mean reference row per muscle of a :func:`scripts.normative.reference.compare_to_reference` table."""
    if comparison is None or comparison.empty:
        return {}
    rows = comparison[comparison["side"].map(_side_key) == "mean"]
    return {str(r["muscle"]): r for _, r in rows.iterrows()}


def _finite(value: Any) -> bool:
    try:
        return value is not None and not pd.isna(value) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _distribution_note(comparison: pd.DataFrame | None) -> str:
    if comparison is None or comparison.empty:
        return "No normative reference given."
    dists = sorted({str(d) for d in comparison.get("distribution", pd.Series(dtype=object)).dropna()})
    ref = comparison.attrs.get("reference_id") or (
        comparison["reference_id"].iloc[0] if "reference_id" in comparison else "reference"
    )
    version = comparison.attrs.get("reference_version") or (
        comparison["reference_version"].iloc[0] if "reference_version" in comparison else ""
    )
    stratum = comparison["stratum"].iloc[0] if "stratum" in comparison else "all"
    n = comparison["n"].iloc[0] if "n" in comparison else "?"
    return (
        f"Reference {ref} {version} (stratum {stratum}, n = {n}): box = Q1-Q3, line = median, whiskers = "
        f"P5-P95 where the reference has them. Percentiles and z-scores are approximations under the "
        f"{', '.join(dists) or 'fitted'} distribution."
    )


def ff_chart(
    table: pd.DataFrame,
    reference_comparison: pd.DataFrame | None,
    out_png: str | os.PathLike[str],
    value_column: str = "ff_mean_pct",
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Per muscle, the subject's FF (left, right, L/R mean) as points over the reference band.

    The band of each muscle is drawn from the L/R-mean rows of ``reference_comparison``: a Q1-Q3 box, a median
    line and P5-P95 whiskers when the reference tabulates them (the paper's reference has quartiles only). A
    missing value is not drawn as 0; the muscle is marked "missing" instead. The note under the chart names the
    reference and the distribution under which percentiles are approximated.

    Args:
        table: the subject's table from :func:`scripts.quantification.statistics.quantify_muscles` (``muscle``, ``side``
        and
            ``value_column``).
        reference_comparison: output of :func:`scripts.normative.reference.compare_to_reference`, or ``None`` for no
        band.
        out_png: output PNG path.
        value_column: the FF column to plot (percent).
        title: chart title.
        dpi: resolution of the PNG.

    Returns:
        The written path.
    """
    for col in ("muscle", "side", value_column):
        if col not in table.columns:
            raise ValueError(f"table lacks column {col!r}; it has {list(table.columns)}")
    refs = _reference_rows(reference_comparison)
    fig = _new_figure((8.0, 4.8))
    ax = fig.add_subplot()
    for i, muscle in enumerate(MUSCLES):
        ref = refs.get(muscle)
        if ref is not None and all(_finite(ref.get(p)) for p in ("p25", "p50", "p75")):
            p25, p50, p75 = float(ref["p25"]), float(ref["p50"]), float(ref["p75"])
            ax.add_patch(Rectangle((i - 0.3, p25), 0.6, p75 - p25, facecolor="#d9d9d9", edgecolor="#7f7f7f", zorder=1))
            ax.plot([i - 0.3, i + 0.3], [p50, p50], color="#404040", linewidth=2, zorder=2)
            if _finite(ref.get("p5")) and _finite(ref.get("p95")):
                for lo, hi in ((float(ref["p5"]), p25), (p75, float(ref["p95"]))):
                    ax.plot([i, i], [lo, hi], color="#7f7f7f", linewidth=1, zorder=1)
                for end in (float(ref["p5"]), float(ref["p95"])):
                    ax.plot([i - 0.12, i + 0.12], [end, end], color="#7f7f7f", linewidth=1, zorder=1)
        rows = table[table["muscle"] == muscle]
        missing = True
        for side, (marker, dx) in _SIDE_STYLE.items():
            sel = rows[rows["side"].map(_side_key) == side]
            value = sel[value_column].iloc[0] if len(sel) else math.nan
            if _finite(value):
                missing = False
                ax.plot(
                    i + dx,
                    float(value),
                    marker=marker,
                    linestyle="none",
                    markersize=8 if side == "mean" else 7,
                    color="black" if side == "mean" else LABEL_COLOURS[1 + 2 * i + (side == "right")],
                    zorder=3,
                )
        if missing:
            ax.text(
                i,
                0.5,
                "missing",
                ha="center",
                va="bottom",
                color="#d62728",
                fontsize=9,
                transform=ax.get_xaxis_transform(),
            )
    ax.set_xticks(range(len(MUSCLES)), [MUSCLE_DISPLAY_NAMES[m].replace(" + ", " +\n") for m in MUSCLES])
    ax.set_xlim(-0.6, len(MUSCLES) - 0.4)
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel("fat fraction (%)")
    ax.grid(axis="y", alpha=0.3)
    handles = [
        Line2D([], [], marker="<", linestyle="none", color="#555555", label="left"),
        Line2D([], [], marker=">", linestyle="none", color="#555555", label="right"),
        Line2D([], [], marker="o", linestyle="none", color="black", label="L/R mean"),
        Patch(facecolor="#d9d9d9", edgecolor="#7f7f7f", label="reference Q1-Q3, median"),
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=8)
    ax.set_title(title or f"Fat fraction ({value_column}) against the reference", fontsize=10)
    fig.text(0.01, 0.005, _distribution_note(reference_comparison), fontsize=7, wrap=True, ha="left", va="bottom")
    fig.get_layout_engine().set(h_pad=0.3)  # room for the note
    return _save_png(fig, out_png, dpi)


# ----------------------------------------------------------------------------------------------------------------
# HTML report
# ----------------------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,Arial,sans-serif;margin:1.5em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f0f0f0} td.t{text-align:left}
.flag{color:#b00020;font-weight:bold} .ok{color:#2e7d32}
.note{background:#fff8e1;border-left:4px solid #f9a825;padding:6px 10px;font-size:0.9em}
img{max-width:100%;border:1px solid #ddd} figure{margin:1em 0}
"""


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


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], text_cols: int = 2) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="t">{html.escape(str(v))}</td>' if i < text_cols else f"<td>{html.escape(str(v))}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _muscle_name(muscle: Any) -> str:
    return MUSCLE_DISPLAY_NAMES.get(str(muscle), str(muscle))


def _flag_lines(table: pd.DataFrame) -> list[str]:
    lines: list[str] = []
    sides = table[table["side"].map(_side_key) != "mean"] if "side" in table else table
    for _, row in sides.iterrows():
        where = f"{_muscle_name(row['muscle'])} {row['side']}"
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


def html_report(
    subject: str,
    table: pd.DataFrame,
    comparison: pd.DataFrame | None,
    images: Mapping[str, str | os.PathLike[str]],
    out_html: str | os.PathLike[str],
    provenance: Mapping[str, Any],
) -> Path:
    """Write one self-contained HTML page for a subject: flags, FF table, normative comparison, provenance, images.

    Sections: the flags (missing, no valid FF, truncated, fat-water swap suspected; "No flags" otherwise); the FF
    table (left, right and L/R mean per muscle: mean, core mean, median, volume, voxels, status); the normative
    comparison (reference quartiles, band, approximate percentile and z-score, with :data:`APPROXIMATION_NOTE` and
    the distribution named); the provenance (how FF was made); the pictures, embedded as base64 PNG so the page is
    one portable file. All text is HTML-escaped.

    Args:
        subject: subject identifier (title).
        table: the subject's table from :func:`scripts.quantification.statistics.quantify_muscles`.
        comparison: output of :func:`scripts.normative.reference.compare_to_reference`, or ``None``.
        images: caption -> PNG path (e.g. ``{"QC montage": ..., "FF chart": ...}``).
        out_html: output path.
        provenance: key -> value describing the FF map (method, source, scale, assumption, software ...).

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
    ]

    flags = _flag_lines(table)
    parts.append("<h2>Flags</h2>")
    if flags:
        parts.append("<ul>" + "".join(f'<li class="flag">{esc(f)}</li>' for f in flags) + "</ul>")
    else:
        parts.append(
            '<p class="ok">No flags: every muscle present, none truncated, no fat-water swap '
            "suspected (where checked).</p>"
        )

    parts.append("<h2>Fat fraction per muscle</h2>")
    cols = [
        ("ff_mean_pct", "FF mean (%)"),
        ("ff_core_mean_pct", "FF core mean (%)"),
        ("ff_median_pct", "FF median (%)"),
        ("volume_ml", "volume (mL)"),
        ("n_voxels", "voxels"),
        ("status", "status"),
        ("qc_status", "quality"),
    ]
    cols = [(c, h) for c, h in cols if c in table.columns]
    rows = []
    order = {m: i for i, m in enumerate(MUSCLES)}
    side_order = {"left": 0, "right": 1, "mean": 2}
    ordered = table.assign(_m=table["muscle"].map(order), _s=table["side"].map(_side_key).map(side_order))
    for _, row in ordered.sort_values(["_m", "_s"], kind="mergesort").iterrows():
        side = "L/R mean" if _side_key(row["side"]) == "mean" else str(row["side"])
        rows.append([_muscle_name(row["muscle"]), side, *[_fmt(row[c], 1 if c != "volume_ml" else 2) for c, _ in cols]])
    parts.append(_html_table(["muscle", "side", *[h for _, h in cols]], rows, text_cols=2))
    core = str(table["core_erosion"].iloc[0]) if "core_erosion" in table.columns and len(table) else "n/a"
    parts.append(
        f"<p>FF mean: plain mean of F/(F+W) over the whole label, no erosion (the reference's statistic). "
        f"Core mean: label eroded {esc(core)}. L/R mean: mean of the left and right values. n/a = not "
        "available (never 0 %).</p>"
    )

    parts.append("<h2>Normative comparison</h2>")
    if comparison is not None and not comparison.empty:
        ccols = [
            "muscle",
            "side",
            "ff_mean_pct",
            "p25",
            "p50",
            "p75",
            "band",
            "percentile_approx",
            "z_score_approx",
            "distribution",
            "flags",
        ]
        heads = [
            "muscle",
            "side",
            "FF (%)",
            "ref Q1",
            "ref median",
            "ref Q3",
            "band",
            "percentile (approx.)",
            "z (approx.)",
            "distribution",
            "flags",
        ]
        crow = []
        for _, row in comparison.iterrows():
            side = "L/R mean" if _side_key(row["side"]) == "mean" else str(row["side"])
            vals = [_muscle_name(row["muscle"]), side]
            for c in ccols[2:]:
                v = row.get(c, None)
                vals.append(_fmt(v, 2 if c == "z_score_approx" else 1) if c != "flags" else (v or ""))
            crow.append(vals)
        parts.append(_html_table(heads, crow, text_cols=2))
        ref = comparison.attrs.get("reference_id", comparison.get("reference_id", pd.Series([""])).iloc[0])
        ver = comparison.attrs.get("reference_version", "")
        dists = sorted({str(d) for d in comparison.get("distribution", pd.Series(dtype=object)).dropna()})
        parts.append(
            f'<p class="note">{esc(APPROXIMATION_NOTE)} Distribution: {esc(", ".join(dists) or "n/a")}. '
            f"Reference: {esc(str(ref))} {esc(str(ver))}"
            + (f"; {esc(str(comparison.attrs['approximation']))}" if "approximation" in comparison.attrs else "")
            + "</p>"
        )
    else:
        parts.append("<p>No normative reference was given.</p>")

    parts.append("<h2>Provenance: how FF was made</h2><table><tbody>")
    for key, value in provenance.items():
        parts.append(f'<tr><th>{esc(str(key))}</th><td class="t">{esc(_fmt(value, 4))}</td></tr>')
    parts.append("</tbody></table>")

    parts.append("<h2>Pictures</h2>")
    for caption, path in images.items():
        data = Path(path).read_bytes()
        b64 = base64.b64encode(data).decode("ascii")
        parts.append(
            f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    parts.append("</body></html>\n")
    return atomic_write_bytes(Path(out_html), "\n".join(parts).encode("utf-8"))
