"""Figures of the phantom-vs-real comparison (:mod:`scripts.studies.compare_phantom_real`): real and phantom
slices side by side in mm from the spine reference, area profiles along the spine, and a gallery of phantom images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from scripts.labels import LABELS, label_value
from scripts.studies.phantom_real_measures import (
    BANDS,
    COMPARED_MUSCLES,
    DISC_CENTRE_REL,
    DISC_NAMES,
    SHORT_NAME,
    Volume,
    spine_reference,
)

__all__ = ["MUSCLE_COLOUR", "plot_comparison", "plot_gallery"]

MUSCLE_COLOUR: dict[str, str] = {
    "psoas": "#ff4040",
    "quadratus_lumborum": "#ffd000",
    "erector_spinae_multifidus": "#00d0ff",
    "iliacus": "#40ff60",
}


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _window(img: np.ndarray) -> tuple[float, float]:
    v = img[img > 0]
    if v.size == 0:
        return 0.0, 1.0
    return float(np.percentile(v, 1)), float(np.percentile(v, 99.5))


def _slice_ref(vol: Volume, k: int) -> tuple[float, float]:
    ref = spine_reference(vol.label[:, :, k], vol.spacing[:2])
    if ref is None:
        raise ValueError(f"{vol.name}: slice {k} has no ES+MF on both sides")
    return ref


def _draw_axial(
    ax: Axes,
    vol: Volume,
    k: int,
    title: str,
    half_width: float | None = 125.0,
    y_lim: tuple[float, float] | None = (-95.0, 115.0),
    image: np.ndarray | None = None,
    contours: bool = True,
    **imshow_kw: object,
) -> None:
    """Axial slice ``k`` in mm relative to its spine reference, radiological view (patient right on the left)."""
    x_ref, y_ref = _slice_ref(vol, k)
    img = (vol.image if image is None else image)[:, :, k]
    sx, sy = vol.spacing[:2]
    nx, ny = img.shape
    ext = (-0.5 * sx - x_ref, (nx - 0.5) * sx - x_ref, -0.5 * sy - y_ref, (ny - 0.5) * sy - y_ref)
    kw: dict[str, object] = {"cmap": "gray"}
    if "vmin" not in imshow_kw:
        kw["vmin"], kw["vmax"] = _window(img)
    kw.update(imshow_kw)
    ax.imshow(img.T, origin="lower", extent=ext, interpolation="nearest", **kw)  # type: ignore[arg-type]
    if contours:
        _contours(ax, vol.label[:, :, k], np.arange(nx) * sx - x_ref, np.arange(ny) * sy - y_ref)
    ax.set_xlim(*((half_width, -half_width) if half_width is not None else (ext[1], ext[0])))
    ax.set_ylim(*(y_lim if y_lim is not None else ext[2:]))
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.text(0.02, 0.97, "R", transform=ax.transAxes, color="w", va="top", fontsize=9)
    ax.text(0.98, 0.97, "L", transform=ax.transAxes, color="w", va="top", ha="right", fontsize=9)
    ax.tick_params(labelsize=7)


def _contours(ax: Axes, label2d: np.ndarray, xc: np.ndarray, yc: np.ndarray) -> None:
    for value, name in LABELS.items():
        if value == 0:
            continue
        muscle = name.rsplit("_", 1)[0]
        m = label2d == value
        if m.any() and m.shape[0] > 1 and m.shape[1] > 1:
            ax.contour(xc, yc, m.T.astype(np.float32), levels=[0.5], colors=[MUSCLE_COLOUR[muscle]], linewidths=0.7)


def _coronal_y(vol: Volume, ks: Sequence[int]) -> int:
    """Array y index of the coronal plane through the psoas centroid over slices ``ks``."""
    ps = np.isin(vol.label[:, :, list(ks)], [label_value("psoas", s) for s in ("left", "right")])
    ys = np.nonzero(ps)[1]
    return int(round(float(ys.mean()))) if ys.size else vol.label.shape[1] // 2


def _draw_coronal(
    ax: Axes,
    vol: Volume,
    j: int,
    x_ref: float,
    title: str,
    z_lim: tuple[float, float] | None,
    half_width: float | None = 125.0,
    image: np.ndarray | None = None,
    contours: bool = True,
    **imshow_kw: object,
) -> None:
    """Coronal plane ``j`` (array y index), x relative to ``x_ref``, vertical axis = mm above the L5/S1 disc."""
    img = (vol.image if image is None else image)[:, j, :]
    sx = vol.spacing[0]
    nx, nz = img.shape
    z = vol.z_mm
    dz = float(np.median(np.diff(z))) if nz > 1 else vol.spacing[2]
    ext = (-0.5 * sx - x_ref, (nx - 0.5) * sx - x_ref, float(z[0]) - dz / 2, float(z[-1]) + dz / 2)
    kw: dict[str, object] = {"cmap": "gray"}
    if "vmin" not in imshow_kw:
        kw["vmin"], kw["vmax"] = _window(img)
    kw.update(imshow_kw)
    ax.imshow(img.T, origin="lower", extent=ext, interpolation="nearest", aspect="auto", **kw)  # type: ignore
    if contours:
        _contours(ax, vol.label[:, j, :], np.arange(nx) * sx - x_ref, z)
    ax.set_xlim(*((half_width, -half_width) if half_width is not None else (ext[1], ext[0])))
    ax.set_ylim(*(z_lim if z_lim is not None else ext[2:]))
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def plot_comparison(
    real: Volume,
    phantom: Volume,
    real_metrics: pd.DataFrame,
    phantom_metrics: Sequence[pd.DataFrame],
    out_png: str | Path | None = None,
    dpi: int = 80,
) -> Figure:
    """Side-by-side figure: three real axial slices (lower, middle, upper of the scan) next to the phantom at the
    same spine-relative level, a coronal plane of each, and the area profiles along the spine.

    All images are in mm relative to the spine reference (same scale); contours: psoas red, QL yellow, ES+MF cyan,
    iliacus green (phantom only; the real labels have none).
    """
    nz = real.label.shape[2]
    ks = [int(round(f * (nz - 1))) for f in (0.85, 0.5, 0.1)]
    fig = _new_figure((11.0, 22.0))
    top, bottom = fig.subfigures(2, 1, height_ratios=[4.2, 1.0])
    axes = top.subplots(4, 2)
    for row, k in enumerate(ks):
        z = float(real.z_rel[k])
        kp = phantom.slice_at(z)
        _draw_axial(axes[row, 0], real, k, f"real, slice {k}: z_rel {z:.0f} mm ({_band_name(z)})")
        _draw_axial(axes[row, 1], phantom, kp, f"phantom {phantom.name} in-phase: z_rel {phantom.z_rel[kp]:.0f} mm")
    # coronal planes through the psoas, same z scale (mm above the L5/S1 disc centre)
    z_lim = (-45.0, 105.0)
    jr = _coronal_y(real, range(nz))
    xr = float(np.median([_slice_ref(real, k)[0] for k in range(nz)]))
    _draw_coronal(axes[3, 0], real, jr, xr, "real, coronal through psoas (oblique stack)", z_lim)
    in_range = [
        k for k in range(phantom.label.shape[2]) if real.z_rel.min() - 3 <= phantom.z_rel[k] <= real.z_rel.max() + 3
    ]
    jp = _coronal_y(phantom, in_range)
    xp = float(np.median([_slice_ref(phantom, k)[0] for k in in_range]))
    _draw_coronal(axes[3, 1], phantom, jp, xp, f"phantom {phantom.name}, coronal through psoas", z_lim)
    for zz in (float(real.z_mm[0]), float(real.z_mm[-1])):
        axes[3, 1].axhline(zz, color="w", ls="--", lw=0.8)
    for k in ks:
        axes[3, 1].axhline(float(phantom.z_mm[phantom.slice_at(float(real.z_rel[k]))]), color="m", ls=":", lw=0.8)
    for ax in axes[:3].ravel():
        ax.set_xlabel("x from midline (mm)", fontsize=7)
        ax.set_ylabel("y from ES+MF anterior edge (mm)", fontsize=7)
    for ax in axes[3]:
        ax.set_xlabel("x from midline (mm)", fontsize=7)
        ax.set_ylabel("mm above L5/S1 disc", fontsize=7)
    pax = bottom.subplots(1, 3)
    for ax, muscle in zip(pax, COMPARED_MUSCLES):
        _area_profile(ax, muscle, real_metrics, phantom_metrics)
    if out_png is not None:
        Path(out_png).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_png, dpi=dpi)
    return fig


def _band_name(z_rel: float) -> str:
    for name, lo, hi in BANDS:
        if lo <= z_rel < hi:
            return name
    return "outside the compared bands"


def _area_profile(ax: Axes, muscle: str, real: pd.DataFrame, phantoms: Sequence[pd.DataFrame]) -> None:
    """Area (side mean) along the spine: phantom mean and range over seeds, real L and R slices."""
    grid = np.arange(-25.0, 72.0, 1.0)
    curves = []
    for p in phantoms:
        s = p[p.muscle == muscle].groupby("z_rel").area_cm2.mean()
        curves.append(np.interp(grid, s.index.to_numpy(), s.to_numpy(), left=np.nan, right=np.nan))
    c = np.array(curves)
    ax.fill_between(grid, np.nanmin(c, 0), np.nanmax(c, 0), color="C0", alpha=0.25, lw=0, label="phantom range")
    ax.plot(grid, np.nanmean(c, 0), color="C0", label="phantom mean")
    for side, mk in (("left", "v"), ("right", "^")):
        s = real[(real.muscle == muscle) & (real.side == side)]
        ax.plot(s.z_rel, s.area_cm2, mk, color="k", ms=4, ls="none", label=f"real {side}")
    for name in DISC_NAMES[:3]:
        ax.axvline(DISC_CENTRE_REL[name], color="0.6", lw=0.7, ls=":")
        ax.text(
            DISC_CENTRE_REL[name],
            0.99,
            name,
            transform=ax.get_xaxis_transform(),
            fontsize=6,
            ha="center",
            va="top",
            color="0.4",
        )
    ax.set_xlabel("z_rel (mm above L5/S1, 36-mm levels)", fontsize=7)
    ax.set_ylabel("area per side (cm$^2$)", fontsize=7)
    ax.set_title(SHORT_NAME[muscle], fontsize=9)
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=7)
    if muscle == COMPARED_MUSCLES[0]:
        ax.legend(fontsize=6, frameon=False, loc="lower left")


def plot_gallery(
    phantoms: Sequence[Volume], out_png: str | Path | None = None, z_rel: float = 90.0, dpi: int = 70
) -> Figure:
    """In-phase, water, fat, FF and labels of several phantom subjects: one axial slice at ``z_rel`` (default the
    middle of L3) and one coronal plane through the psoas, per subject."""
    cols = ("inphase", "water", "fat", "ff", "label")
    fig = _new_figure((14.0, 5.0 * len(phantoms)))
    ext = [n * s for n, s in zip(phantoms[0].label.shape, phantoms[0].spacing)]
    axes = fig.subplots(
        2 * len(phantoms), len(cols), squeeze=False, gridspec_kw={"height_ratios": [ext[1], ext[2]] * len(phantoms)}
    )
    lab_cmap = ListedColormap(
        ["black", "#ff4040", "#c00000", "#40ff60", "#00a030", "#ffd000", "#b08000", "#00d0ff", "#0060ff"]
    )
    for i, vol in enumerate(phantoms):
        k = vol.slice_at(z_rel)
        j = _coronal_y(vol, [k])
        x_ref = _slice_ref(vol, k)[0]
        images = {"inphase": vol.image, **vol.extra, "label": vol.label}
        for c, key in enumerate(cols):
            if key not in images:
                axes[2 * i, c].set_axis_off()
                axes[2 * i + 1, c].set_axis_off()
                continue
            data = images[key]
            kw: dict[str, object] = {}
            if key == "ff":
                kw = {"cmap": "magma", "vmin": 0.0, "vmax": 1.0}
            elif key == "label":
                kw = {"cmap": lab_cmap, "vmin": -0.5, "vmax": 8.5}
            seed = vol.info.get("seed", vol.name)
            _draw_axial(
                axes[2 * i, c],
                vol,
                k,
                f"seed {seed} {key}, z_rel {vol.z_rel[k]:.0f}",
                half_width=None,
                y_lim=None,
                image=data,
                contours=key == "inphase",
                **kw,
            )
            _draw_coronal(
                axes[2 * i + 1, c],
                vol,
                j,
                x_ref,
                f"seed {seed} {key}, coronal",
                None,
                half_width=None,
                image=data,
                contours=key == "inphase",
                **kw,
            )
            axes[2 * i + 1, c].axhline(float(vol.z_mm[k]), color="c", lw=0.6, ls=":")
    if out_png is not None:
        Path(out_png).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_png, dpi=dpi)
    return fig
