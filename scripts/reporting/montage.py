"""QC overlay montage: axial slices with the label contours, and coronal reformats, radiological convention."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import SubFigure
from matplotlib.patches import Patch
from scripts.grid import map_labels_to_grid, slice_axis_from_affine
from scripts.labels import LABELS, NUM_CLASSES, VERTEBRAL_LABELS
from scripts.reporting.figures import new_figure, save_png
from scripts.reporting.orientation import axial_view, coronal_view, to_ras
from scripts.reporting.style import CONTEXT_COLOUR, LABEL_COLOURS

__all__ = ["qc_montage"]

_WINDOW_PERCENTILES = (1.0, 99.5)
_PANEL_W = 2.6


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
        elif value in VERTEBRAL_LABELS:
            mask = (label_view == value).astype(np.float32)
            ax.contour(mask, levels=[0.5], colors=[CONTEXT_COLOUR], linewidths=0.6, linestyles="dashed")


def _label_name(value: int) -> str:
    return LABELS[value].replace("_", " ")


def _orientation_letters(ax: Axes, letters: tuple[str, str, str, str]) -> None:
    """Letters at the left, right, top and bottom edges of a view."""
    for x, y, text in zip((0.02, 0.98, 0.5, 0.5), (0.5, 0.5, 0.97, 0.03), letters):
        ax.text(x, y, text, transform=ax.transAxes, color="yellow", fontsize=8, ha="center", va="center")


def _montage_slices(lab_ras: np.ndarray, n_slices: int) -> np.ndarray:
    """RAS slice indices evenly spaced over the labelled range (whole volume when unlabelled), superior first."""
    ks = np.nonzero(((lab_ras > 0) & (lab_ras < NUM_CLASSES)).any(axis=(0, 1)))[0]  # muscle slices only
    k_lo, k_hi = (int(ks[0]), int(ks[-1])) if ks.size else (0, lab_ras.shape[2] - 1)
    # from superior to inferior, the usual reading order of an axial stack on a lumbar spine
    return np.unique(np.round(np.linspace(k_hi, k_lo, n_slices)).astype(int))[::-1]


def _draw_axial_panels(
    top: SubFigure,
    ras: np.ndarray,
    lab_ras: np.ndarray,
    chosen: np.ndarray,
    affine: np.ndarray,
    ras_aff: np.ndarray,
    window: tuple[float, float],
    grid: tuple[int, int],
) -> None:
    """One panel per chosen slice on a ``(nrows, ncols)`` grid, titled with the stored slice index and z."""
    spacing = np.linalg.norm(ras_aff[:3, :3], axis=0)
    # panels are titled with the stored slice index, the one the per-slice table uses
    stored_axis = slice_axis_from_affine(np.asarray(affine, dtype=np.float64))
    ras_to_stored = np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ ras_aff
    axes = top.subplots(*grid, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, k in zip(axes.ravel(), chosen):
        ax.imshow(
            axial_view(ras, int(k)),
            cmap="gray",
            vmin=window[0],
            vmax=window[1],
            aspect=spacing[1] / spacing[0],
            interpolation="nearest",
        )
        _draw_contours(ax, axial_view(lab_ras, int(k)))
        z_mm = float((ras_aff @ np.array([0.0, 0.0, float(k), 1.0]))[2])
        stored = int(round(float((ras_to_stored @ np.array([0.0, 0.0, float(k), 1.0]))[stored_axis])))
        ax.set_title(f"slice {stored}  z={z_mm:.0f} mm", fontsize=8)
    _orientation_letters(axes.ravel()[0], ("R", "L", "A", "P"))


def _coronal_planes(lab_ras: np.ndarray) -> list[tuple[str, int]]:
    """Coronal planes through the centroid of the anterior and of the posterior muscles (centre when unlabelled)."""
    groups = [("psoas + iliacus", (1, 2, 3, 4)), ("QL + ES/MF", (5, 6, 7, 8))]
    planes = []
    for name, values in groups:
        sel = np.isin(lab_ras, values)
        if sel.any():
            planes.append((name, int(round(float(np.nonzero(sel)[1].mean())))))
    if not planes:
        planes.append(("centre", lab_ras.shape[1] // 2))
    return planes


def _draw_coronal_panels(
    bottom: SubFigure,
    ras: np.ndarray,
    lab_ras: np.ndarray,
    chosen: np.ndarray,
    spacing: np.ndarray,
    window: tuple[float, float],
) -> None:
    """Coronal reformats with the label contours and dotted lines at the montage slices, then the label legend."""
    planes = _coronal_planes(lab_ras)
    cor_axes = bottom.subplots(1, len(planes), squeeze=False).ravel()
    for ax, (name, j) in zip(cor_axes, planes):
        ax.imshow(
            coronal_view(ras, j),
            cmap="gray",
            vmin=window[0],
            vmax=window[1],
            aspect=spacing[2] / spacing[0],
            interpolation="nearest",
        )
        _draw_contours(ax, coronal_view(lab_ras, j))
        for k in chosen:
            # the coronal view runs superior (row 0) to inferior
            ax.axhline(ras.shape[2] - 1 - int(k), color="yellow", linestyle=":", linewidth=0.5)
        ax.set_title(f"coronal through {name} (index {j})", fontsize=8)
        ax.set_axis_off()
        _orientation_letters(ax, ("R", "L", "S", "I"))
    handles = [
        Patch(facecolor="none", edgecolor=LABEL_COLOURS[v], linewidth=2, label=_label_name(v))
        for v in range(1, NUM_CLASSES)
    ]
    if np.isin(lab_ras, list(VERTEBRAL_LABELS)).any():
        handles.append(
            Patch(facecolor="0.6", edgecolor=CONTEXT_COLOUR, linestyle="--", label="vertebral bodies, sacrum (white)")
        )
    bottom.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8, frameon=False)


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
    label is present), each with the label contours in :data:`scripts.reporting.style.LABEL_COLOURS` and a legend
    of the label names. Intensities are windowed at the 1st and 99.5th percentiles of the non-zero voxels. Below,
    coronal reformats through the centroid of the anterior muscles (psoas, iliacus) and of the posterior ones
    (quadratus lumborum, erector spinae + multifidus), with dashed lines at the montage slices. Pixel aspect ratios
    follow the voxel spacing. Radiological convention (see :func:`scripts.reporting.orientation.display_slice`);
    orientation letters mark each view.

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
    window = _window(ras)
    chosen = _montage_slices(lab_ras, n_slices)

    nrows = int(math.ceil(len(chosen) / ncols))
    ap_over_rl = ras.shape[1] * spacing[1] / (ras.shape[0] * spacing[0])
    si_over_rl = ras.shape[2] * spacing[2] / (ras.shape[0] * spacing[0])
    cor_h = min(_PANEL_W * 2 * si_over_rl, 6.0)
    fig = new_figure((_PANEL_W * ncols, _PANEL_W * ap_over_rl * nrows + cor_h + 1.0))
    top, bottom = fig.subfigures(2, 1, height_ratios=[_PANEL_W * ap_over_rl * nrows, cor_h])
    _draw_axial_panels(top, ras, lab_ras, chosen, affine, ras_aff, window, (nrows, ncols))
    _draw_coronal_panels(bottom, ras, lab_ras, chosen, spacing, window)
    fig.suptitle(
        title or "QC: axial montage (radiological: patient right on image left) and coronal reformat", fontsize=10
    )
    return save_png(fig, out_png, dpi)
