"""QC overlay montage: axial slices with the label outlines, and coronal reformats, radiological convention.

The montage is drawn as one raster: the panels (:mod:`scripts.reporting.montage_panels`) are composed into a single
RGB array, label outlines found by edge detection on the label panels and coloured by lookup, and the figure
carries only that image and its text (titles, orientation letters, legend). Why: with twelve axes, contour paths
and a constrained layout the montage cost about 2 s per subject at the reference geometry; composed, a tenth of it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scripts.labels import LABELS, NUM_CLASSES, VERTEBRAL_LABELS
from scripts.reporting.figures import new_figure, save_png
from scripts.reporting.montage_panels import MontagePanels, montage_panels
from scripts.reporting.style import CONTEXT_COLOUR, LABEL_COLOURS

__all__ = ["qc_montage", "render_montage", "montage_figure", "panel_rgb"]

_GAP = 8  # pixels between panels and at the edges
_TITLE_H = 26  # the montage title band
_CAPTION_H = 16  # a panel's caption band
_LEGEND_ROW_H = 17
_MARK_RGB = (255, 255, 0)  # the coronal lines at the axial slices, as the orientation letters: yellow


def _lut() -> np.ndarray:
    """Label value -> outline colour (uint8 RGB); vertebral labels in the context colour."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    for value, colour in LABEL_COLOURS.items():
        lut[value] = np.round(np.array(to_rgb(colour)) * 255.0)
    for value in VERTEBRAL_LABELS:
        lut[value] = np.round(np.array(to_rgb(CONTEXT_COLOUR)) * 255.0)
    return lut


_OUTLINE_LUT = _lut()


def _differs(labels: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another value (the panel border counts as unlabelled)."""
    pad = np.pad(labels, 1)
    centre = pad[1:-1, 1:-1]
    return (
        (centre != pad[:-2, 1:-1]) | (centre != pad[2:, 1:-1]) | (centre != pad[1:-1, :-2]) | (centre != pad[1:-1, 2:])
    )


def _outlines(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(muscle, context)`` pixel masks of the label outlines of a ``(H, W)`` label panel.

    The outline is two pixels wide, inside the label: its pixels with a 4-neighbour of another value, and their
    4-neighbours of the same value (one pixel was too faint to read at the panel size). Muscle outlines (1-8) are
    solid; vertebral ones (9-14) dashed, so that the spine reads as the anchor and never as a ninth muscle.
    """
    edge = _differs(labels)
    pad_e, pad_l = np.pad(edge, 1), np.pad(labels, 1)
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        rs, cs = slice(1 + dr, pad_e.shape[0] - 1 + dr), slice(1 + dc, pad_e.shape[1] - 1 + dc)
        edge = edge | (pad_e[rs, cs] & (pad_l[rs, cs] == labels))
    muscle = edge & (labels > 0) & (labels < NUM_CLASSES)
    rows, cols = np.indices(labels.shape)
    dashes = ((rows + cols) // 4) % 2 == 0
    context = edge & (labels >= min(VERTEBRAL_LABELS)) & (labels <= max(VERTEBRAL_LABELS)) & dashes
    return muscle, context


def panel_rgb(grey: np.ndarray, labels: np.ndarray, marks: list[int] = ()) -> np.ndarray:
    """One panel as ``(H, W, 3)`` uint8: grey levels, then the outlines, then the dotted mark rows on top."""
    rgb = np.repeat(grey[..., None], 3, axis=2)
    muscle, context = _outlines(labels)
    rgb[muscle] = _OUTLINE_LUT[labels[muscle]]
    rgb[context] = _OUTLINE_LUT[labels[context]]
    dotted = (np.arange(rgb.shape[1]) % 6) < 2
    for row in marks:
        rgb[row, dotted] = _MARK_RGB
    return rgb


def _layout(panels: MontagePanels, ncols: int) -> tuple[int, int, list[tuple[int, int]], list[tuple[int, int]]]:
    """``(width, height, axial_origins, coronal_origins)`` in pixels: origin = (top row, left column) of a panel."""
    n, ah, aw = panels.axial.shape
    m, ch, cw = panels.coronal.shape
    cols = min(ncols, n)
    width = max(cols * (aw + _GAP), m * (cw + _GAP)) + _GAP
    nrows = -(-n // cols)
    axial = [
        (_TITLE_H + (k // cols) * (_CAPTION_H + ah + _GAP) + _CAPTION_H, _GAP + (k % cols) * (aw + _GAP))
        for k in range(n)
    ]
    top = _TITLE_H + nrows * (_CAPTION_H + ah + _GAP) + _CAPTION_H
    left = (width - m * (cw + _GAP) + _GAP) // 2
    coronal = [(top, left + j * (cw + _GAP)) for j in range(m)]
    n_handles = 8 + int(panels.has_context)
    height = top + ch + _GAP + _LEGEND_ROW_H * (-(-n_handles // 4)) + _GAP
    return width, height, axial, coronal


def _compose(panels: MontagePanels, ncols: int) -> tuple[np.ndarray, list[tuple[int, int]], list[tuple[int, int]]]:
    """The whole montage as one white ``(height, width, 3)`` uint8 raster with every panel in place."""
    width, height, axial, coronal = _layout(panels, ncols)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    _, ah, aw = panels.axial.shape
    for (r, c), grey, labels in zip(axial, panels.axial, panels.axial_labels):
        canvas[r : r + ah, c : c + aw] = panel_rgb(grey, labels)
    _, ch, cw = panels.coronal.shape
    for (r, c), grey, labels in zip(coronal, panels.coronal, panels.coronal_labels):
        canvas[r : r + ch, c : c + cw] = panel_rgb(grey, labels, panels.marks)
    return canvas, axial, coronal


def _letters(fig: Figure, origin: tuple[int, int], size: tuple[int, int], letters: tuple[str, ...]) -> None:
    """Orientation letters at the left, right, top and bottom edges of the panel at ``origin`` of ``size``."""
    (r, c), (h, w) = origin, size
    height, width = fig.bbox.height, fig.bbox.width
    for fx, fy, text in zip((0.02, 0.98, 0.5, 0.5), (0.5, 0.5, 0.03, 0.97), letters):
        x, y = (c + fx * w) / width, 1.0 - (r + fy * h) / height
        fig.text(x, y, text, color="yellow", fontsize=8, ha="center", va="center")


def _label_name(value: int) -> str:
    return LABELS[value].replace("_", " ")


def montage_figure(panels: MontagePanels, ncols: int = 4, dpi: int = 110) -> Figure:
    """The montage as a figure of one composed image plus its text (arguments as :func:`render_montage`)."""
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    canvas, axial, coronal = _compose(panels, ncols)
    height, width = canvas.shape[:2]
    fig = new_figure((width / dpi, height / dpi), layout=None, dpi=dpi)
    fig.figimage(canvas, xo=0, yo=0, origin="upper")
    fig.text(0.5, 1.0 - (_TITLE_H / 2) / height, panels.title, fontsize=10, ha="center", va="center")
    for origins, titles, shape in (
        (axial, panels.axial_titles, panels.axial.shape[1:]),
        (coronal, panels.coronal_titles, panels.coronal.shape[1:]),
    ):
        for (r, c), text in zip(origins, titles):
            y = 1.0 - (r - _CAPTION_H / 2) / height
            fig.text((c + shape[1] / 2) / width, y, text, fontsize=8, ha="center", va="center")
    _letters(fig, axial[0], panels.axial.shape[1:], ("R", "L", "A", "P"))
    for origin in coronal:
        _letters(fig, origin, panels.coronal.shape[1:], ("R", "L", "S", "I"))
    handles = [
        Patch(facecolor="none", edgecolor=LABEL_COLOURS[v], linewidth=2, label=_label_name(v))
        for v in range(1, NUM_CLASSES)
    ]
    if panels.has_context:
        handles.append(
            Patch(facecolor="0.6", edgecolor=CONTEXT_COLOUR, linestyle="--", label="vertebral bodies, sacrum (white)")
        )
    fig.legend(handles=handles, loc="lower center", ncols=4, fontsize=8, frameon=False, borderaxespad=0.2)
    return fig


def render_montage(panels: MontagePanels, out_png: str | os.PathLike[str], ncols: int = 4, dpi: int = 110) -> Path:
    """Draw the montage of ``panels`` as PNG (atomically): the same panels always give the same file.

    Axial panels on a grid of ``ncols`` columns, each captioned with its stored slice index and world z; below,
    the coronal reformats with dotted yellow lines at the axial slices; muscle outlines in
    :data:`scripts.reporting.style.LABEL_COLOURS`, vertebral bodies and sacrum dashed in
    :data:`scripts.reporting.style.CONTEXT_COLOUR`; orientation letters; the label legend at the bottom.

    Args:
        panels: what to draw (:func:`scripts.reporting.montage_panels.montage_panels` or ``load_panels``).
        out_png: output PNG path.
        ncols: axial panels per row.
        dpi: resolution written into the PNG; the image has one pixel per panel pixel whatever its value.

    Returns:
        The written path.
    """
    return save_png(montage_figure(panels, ncols, dpi), out_png, dpi, compress_level=3)


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
    label is present), each with the label outlines in :data:`scripts.reporting.style.LABEL_COLOURS` and a legend
    of the label names. Intensities are windowed at the 1st and 99.5th percentiles of the non-zero voxels. Below,
    coronal reformats through the centroid of the anterior muscles (psoas, iliacus) and of the posterior ones
    (quadratus lumborum, erector spinae + multifidus), with dotted lines at the montage slices. Pixels are square
    in millimetres (the voxel spacing is honoured). Radiological convention (see
    :func:`scripts.reporting.orientation.display_slice`); orientation letters mark each view. This is
    :func:`scripts.reporting.montage_panels.montage_panels` followed by :func:`render_montage`.

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
    if ncols < 1:
        raise ValueError(f"n_slices and ncols must be >= 1, got {n_slices} and {ncols}")
    panels = montage_panels(inphase, affine, label, n_slices=n_slices, label_affine=label_affine, title=title)
    return render_montage(panels, out_png, ncols=ncols, dpi=dpi)
