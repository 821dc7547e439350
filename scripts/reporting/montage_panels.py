"""What the report's pictures show, cut from the volume once: display-ready axial, coronal and mid-sagittal panels,
saved and reloaded.

Why a separate step: the volume work (reorientation to RAS, the display window, choosing the slices, cutting and
resampling them to the panel size) needs the whole image; drawing the PNG needs only these small panels. A run
with ``--write_report later`` keeps the panels in ``<subject>_report_inputs.npz`` (about 1 MB) instead of drawing,
and :mod:`scripts.reporting.render_reports` draws the same PNG from them later, pixel for pixel
(:func:`scripts.reporting.montage.render_montage` reads nothing else).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scripts.grid import map_labels_to_grid, slice_axis_from_affine
from scripts.io.atomic import atomic_write_bytes
from scripts.labels import NUM_CLASSES, VERTEBRAL_LABELS
from scripts.reporting.orientation import axial_view, coronal_view, sagittal_view, to_ras

__all__ = ["MontagePanels", "montage_panels", "save_panels", "load_panels", "PANELS_FORMAT"]

#: version of the ``.npz`` layout; a file of another version is refused with a message. "2" adds the mid-sagittal
#: panel; a file of format "1" (bundle 0.25.0 and before) is still read, without it.
PANELS_FORMAT = "2"
_READABLE_FORMATS = ("1", PANELS_FORMAT)
_WINDOW_PERCENTILES = (1.0, 99.5)
#: at most this many voxels (an even stride through the volume) enter the display window's percentiles
_WINDOW_SAMPLES = 1 << 21
#: width of an axial panel and of a coronal panel, pixels; a coronal panel is at most _CORONAL_MAX_H high
_AXIAL_W = 280
_CORONAL_W = 560
_CORONAL_MAX_H = 640
#: width and greatest height of the mid-sagittal panel, pixels
_SAGITTAL_W = 360
_SAGITTAL_MAX_H = 640


@dataclass(frozen=True)
class MontagePanels:
    """The montage's content, display-oriented (radiological convention) and resampled to the panel size.

    Attributes:
        axial: ``(n, H, W)`` uint8 grey levels of the axial panels (window applied), superior slice first.
        axial_labels: ``(n, H, W)`` uint8 label values on the same pixels (nearest neighbour).
        axial_titles: one title per axial panel (stored slice index and world z, mm).
        coronal: ``(m, Hc, Wc)`` uint8 grey levels of the coronal reformats.
        coronal_labels: ``(m, Hc, Wc)`` uint8 label values.
        coronal_titles: one title per coronal panel.
        marks: rows of the coronal panels at the axial panels' slices (dotted lines).
        has_context: the label map holds vertebral labels (9-14): the legend names them.
        title: the montage title.
        sagittal: ``(Hs, Ws)`` uint8 grey levels of the sagittal plane through the spine (superior at the top,
            anterior on the left), or None (panels of format "1").
        sagittal_labels: ``(Hs, Ws)`` uint8 label values on the same pixels, or None.
        sagittal_z_mm: ``(Hs,)`` world z (RAS, mm) of each sagittal row's centre at the panel's centre column
            (continuous, decreasing down the panel), or None.
        sagittal_title: what the sagittal plane passes through (world x, mm).
    """

    axial: np.ndarray
    axial_labels: np.ndarray
    axial_titles: list[str]
    coronal: np.ndarray
    coronal_labels: np.ndarray
    coronal_titles: list[str]
    marks: list[int]
    has_context: bool
    title: str
    sagittal: np.ndarray | None = None
    sagittal_labels: np.ndarray | None = None
    sagittal_z_mm: np.ndarray | None = None
    sagittal_title: str = ""


def _window(img: np.ndarray) -> tuple[float, float]:
    """Display window: the 1st and 99.5th percentiles of the non-zero voxels (background zeros would darken it).

    Taken on every ``s``-th voxel along each axis, ``s`` the smallest stride that leaves at most
    ``_WINDOW_SAMPLES`` voxels: at the reference geometry (18.6 M voxels, ``s`` = 3) the exact percentiles cost
    about a second under load; the strided window is measured in docs/studies/speed.md ("Pictures and report").
    """
    step = max(1, int(np.ceil((img.size / _WINDOW_SAMPLES) ** (1.0 / 3.0))))
    sample = img[::step, ::step, ::step]
    values = sample[np.isfinite(sample) & (sample != 0)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, _WINDOW_PERCENTILES)
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def _montage_slices(lab_ras: np.ndarray, n_slices: int) -> np.ndarray:
    """RAS slice indices evenly spaced over the labelled range (whole volume when unlabelled), superior first."""
    ks = np.nonzero(((lab_ras > 0) & (lab_ras < NUM_CLASSES)).any(axis=(0, 1)))[0]  # muscle slices only
    k_lo, k_hi = (int(ks[0]), int(ks[-1])) if ks.size else (0, lab_ras.shape[2] - 1)
    # from superior to inferior, the usual reading order of an axial stack on a lumbar spine
    return np.unique(np.round(np.linspace(k_hi, k_lo, n_slices)).astype(int))[::-1]


def _coronal_planes(lab_ras: np.ndarray) -> list[tuple[str, int]]:
    """Coronal planes through the centroid of the anterior and of the posterior muscles (centre when unlabelled)."""
    groups = [("psoas + iliacus", (1, 2, 3, 4)), ("QL + ES/MF", (5, 6, 7, 8))]
    # voxels per anterior-posterior index and label value: the centroids without a mask of the whole volume
    per_j = np.stack([np.bincount(lab_ras[:, j].ravel(), minlength=256) for j in range(lab_ras.shape[1])])
    planes = []
    for name, values in groups:
        counts = per_j[:, list(values)].sum(axis=1)
        if counts.sum():
            planes.append((name, int(round(float((counts * np.arange(counts.size)).sum() / counts.sum())))))
    if not planes:
        planes.append(("centre", lab_ras.shape[1] // 2))
    return planes


def _sagittal_plane(lab_ras: np.ndarray) -> tuple[str, int]:
    """The RAS x index of the mid-sagittal plane: through the vertebral labels (9-14), else midway between the
    left and right muscles, else the volume's centre."""
    per_i = np.stack([np.bincount(lab_ras[i].ravel(), minlength=256) for i in range(lab_ras.shape[0])])
    x = np.arange(lab_ras.shape[0], dtype=np.float64)
    spine = per_i[:, min(VERTEBRAL_LABELS) : max(VERTEBRAL_LABELS) + 1].sum(axis=1)
    if spine.sum():
        return "the vertebral bodies", int(round(float((spine * x).sum() / spine.sum())))
    left, right = per_i[:, 1:NUM_CLASSES:2].sum(axis=1), per_i[:, 2:NUM_CLASSES:2].sum(axis=1)
    if left.sum() and right.sum():
        mid = 0.5 * ((left * x).sum() / left.sum() + (right * x).sum() / right.sum())
        return "the midline between the muscles", int(round(float(mid)))
    return "the centre", lab_ras.shape[0] // 2


def _rows(n_src: int, n_dst: int) -> np.ndarray:
    """Nearest-neighbour source index of each of ``n_dst`` display pixels over ``n_src`` voxels."""
    return np.minimum(((np.arange(n_dst) + 0.5) * n_src / n_dst).astype(np.intp), n_src - 1)


def _display_size(height_mm: float, width_mm: float, width_px: int, max_h: int | None = None) -> tuple[int, int]:
    """``(H, W)`` pixels of a panel showing ``height_mm`` x ``width_mm`` with square pixels."""
    h = max(1, int(round(width_px * height_mm / width_mm)))
    if max_h is not None and h > max_h:
        return max_h, max(1, int(round(max_h * width_mm / height_mm)))
    return h, width_px


def _grey(view: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    scaled = np.clip((np.nan_to_num(view.astype(np.float32), nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    return np.round(scaled * 255.0).astype(np.uint8)


def _axial_titles(chosen: np.ndarray, affine: np.ndarray, ras_aff: np.ndarray) -> list[str]:
    """``slice <stored index>  z=<world z> mm``: the stored index is the one the per-slice table uses."""
    stored_axis = slice_axis_from_affine(np.asarray(affine, dtype=np.float64))
    ras_to_stored = np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ ras_aff
    titles = []
    for k in chosen:
        z_mm = float((ras_aff @ np.array([0.0, 0.0, float(k), 1.0]))[2])
        stored = int(round(float((ras_to_stored @ np.array([0.0, 0.0, float(k), 1.0]))[stored_axis])))
        titles.append(f"slice {stored}  z={z_mm:.0f} mm")
    return titles


def montage_panels(
    inphase: np.ndarray,
    affine: np.ndarray,
    label: np.ndarray,
    n_slices: int = 12,
    label_affine: np.ndarray | None = None,
    title: str | None = None,
) -> MontagePanels:
    """Cut the report's panels from a volume: ``n_slices`` axial slices over the labelled range, two coronal planes
    and the mid-sagittal plane.

    Axial slices are evenly spaced over the cranio-caudal range of the muscle labels 1-8 (the whole volume when
    none is present); the coronal planes pass through the centroid of the anterior muscles (psoas, iliacus) and of
    the posterior ones (quadratus lumborum, erector spinae + multifidus); the sagittal plane through the vertebral
    labels' centroid (without them, midway between the left and right muscles), on which the report draws the
    vertebral levels. The volume is reoriented to RAS by flips and permutations only; each panel is resampled by
    nearest neighbour to square display pixels (axial panels 280 pixels wide, coronal 560 wide and at most 640
    high, sagittal 360 wide and at most 640 high), grey levels windowed at the 1st and 99.5th percentiles of the
    non-zero voxels (:func:`_window`).

    Args:
        inphase: 3D in-phase (or any anatomical) image ``(I, J, K)``, stored orientation.
        affine: its 4x4 voxel-to-world (RAS, mm) affine.
        label: 3D label map, on the image grid unless ``label_affine`` is given.
        n_slices: number of axial panels (fewer when the labelled range has fewer slices).
        label_affine: affine of ``label`` when it is on another grid: mapped by nearest neighbour.
        title: the montage title; default says the convention.

    Returns:
        The panels (:class:`MontagePanels`).

    Raises:
        ValueError: ``n_slices`` < 1, or a label map of another shape without ``label_affine``.
    """
    if n_slices < 1:
        raise ValueError(f"n_slices must be >= 1, got {n_slices}")
    img = np.asarray(inphase, dtype=np.float32)
    lab = np.asarray(label)
    if label_affine is not None:
        lab = map_labels_to_grid(lab, label_affine, img.shape, affine)
    elif lab.shape != img.shape:
        raise ValueError(f"label shape {lab.shape} differs from the image shape {img.shape}; pass label_affine")
    window = _window(img)
    ras, ras_aff = to_ras(img, affine)
    lab_ras, _ = to_ras(lab.astype(np.uint8, copy=False), affine)
    sp = np.linalg.norm(ras_aff[:3, :3], axis=0)
    chosen = _montage_slices(lab_ras, n_slices)
    ah, aw = _display_size(ras.shape[1] * sp[1], ras.shape[0] * sp[0], _AXIAL_W)
    ar, ac = _rows(ras.shape[1], ah), _rows(ras.shape[0], aw)
    axial = [_grey(axial_view(ras, int(k))[np.ix_(ar, ac)], window) for k in chosen]
    axial_labels = [axial_view(lab_ras, int(k))[np.ix_(ar, ac)] for k in chosen]
    ch, cw = _display_size(ras.shape[2] * sp[2], ras.shape[0] * sp[0], _CORONAL_W, _CORONAL_MAX_H)
    cr, cc = _rows(ras.shape[2], ch), _rows(ras.shape[0], cw)
    planes = _coronal_planes(lab_ras)
    # the coronal view runs superior (row 0) to inferior: a slice k is source row (n - 1 - k)
    marks = sorted({int(np.searchsorted(cr, ras.shape[2] - 1 - int(k))) for k in chosen})
    through, i = _sagittal_plane(lab_ras)
    sh, sw = _display_size(ras.shape[2] * sp[2], ras.shape[1] * sp[1], _SAGITTAL_W, _SAGITTAL_MAX_H)
    sr, sc = _rows(ras.shape[2], sh), _rows(ras.shape[1], sw)
    # display row r samples the continuous RAS slice position k = n - 1 - u, u = (r + 0.5) n / H - 0.5 (voxel
    # centres at whole numbers): a line at a world z then falls where that plane is, not on a voxel centre
    u = (np.arange(sh, dtype=np.float64) + 0.5) * ras.shape[2] / sh - 0.5
    rows = np.stack([np.full(sh, float(i)), np.full(sh, (ras.shape[1] - 1) / 2.0), ras.shape[2] - 1 - u, np.ones(sh)])
    world = ras_aff @ rows  # (4, Hs): each row's point at the panel's centre column
    z_mm, x_mm = world[2], float(world[0].mean())
    return MontagePanels(
        axial=np.stack(axial),
        axial_labels=np.stack(axial_labels).astype(np.uint8),
        axial_titles=_axial_titles(chosen, affine, ras_aff),
        coronal=np.stack([_grey(coronal_view(ras, j)[np.ix_(cr, cc)], window) for _, j in planes]),
        coronal_labels=np.stack([coronal_view(lab_ras, j)[np.ix_(cr, cc)] for _, j in planes]).astype(np.uint8),
        coronal_titles=[f"coronal through {name} (index {j})" for name, j in planes],
        marks=[m for m in marks if m < ch],
        has_context=bool(((lab_ras >= min(VERTEBRAL_LABELS)) & (lab_ras <= max(VERTEBRAL_LABELS))).any()),
        title=title or "QC: axial montage (radiological: patient right on image left) and coronal reformat",
        sagittal=_grey(sagittal_view(ras, i)[np.ix_(sr, sc)], window),
        sagittal_labels=sagittal_view(lab_ras, i)[np.ix_(sr, sc)].astype(np.uint8),
        sagittal_z_mm=z_mm,
        sagittal_title=f"sagittal through {through} (x={x_mm:.0f} mm)",
    )


def save_panels(panels: MontagePanels, path: str | os.PathLike[str], notes: Mapping[str, Any] | None = None) -> Path:
    """Write ``panels`` as ``.npz`` (arrays compressed, texts as one JSON string), atomically; returns the path.

    Args:
        panels: the montage panels.
        path: the ``.npz`` file.
        notes: JSON-ready values saved beside the panels (the report keeps there what the tables do not hold).
    """
    texts = {
        "format": PANELS_FORMAT,
        "axial_titles": panels.axial_titles,
        "coronal_titles": panels.coronal_titles,
        "marks": panels.marks,
        "has_context": panels.has_context,
        "title": panels.title,
        "sagittal_title": panels.sagittal_title,
        "notes": dict(notes or {}),
    }
    sagittal = {
        k: getattr(panels, k)
        for k in ("sagittal", "sagittal_labels", "sagittal_z_mm")
        if getattr(panels, k) is not None
    }
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        axial=panels.axial,
        axial_labels=panels.axial_labels,
        coronal=panels.coronal,
        coronal_labels=panels.coronal_labels,
        texts=np.array(json.dumps(texts)),
        **sagittal,
    )
    return atomic_write_bytes(Path(path), buffer.getvalue())


def load_panels(path: str | os.PathLike[str]) -> tuple[MontagePanels, dict[str, Any]]:
    """Read panels written by :func:`save_panels`: ``(panels, notes)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a panels file of this format (names the file and what to do).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: missing")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("axial", "axial_labels", "coronal", "coronal_labels")}
            arrays.update({k: z[k] for k in ("sagittal", "sagittal_labels", "sagittal_z_mm") if k in z.files})
            texts = json.loads(str(z["texts"]))
    except (KeyError, ValueError, OSError, EOFError) as err:
        raise ValueError(
            f"{p}: not a readable QC panels file ({err}); rerun the subject with --write_report later"
        ) from err
    if texts.get("format") not in _READABLE_FORMATS:
        raise ValueError(
            f"{p}: panels format {texts.get('format')!r}, this bundle reads {PANELS_FORMAT!r}; rerun the subject "
            "with --write_report later (or true)"
        )
    panels = MontagePanels(
        **arrays,
        axial_titles=list(texts["axial_titles"]),
        coronal_titles=list(texts["coronal_titles"]),
        marks=[int(m) for m in texts["marks"]],
        has_context=bool(texts["has_context"]),
        title=str(texts["title"]),
        sagittal_title=str(texts.get("sagittal_title", "")),
    )
    return panels, dict(texts.get("notes", {}))
