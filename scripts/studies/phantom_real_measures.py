"""Measurements of the phantom-vs-real comparison (:mod:`scripts.studies.compare_phantom_real`): the compared
:class:`Volume`, the spine reference of a slice found from its labels alone, per-slice and per-volume muscle metrics
(area, centroid offsets, equivalent ellipse, intensity over posterior subcutaneous fat), and their band-by-band
comparison between the real scan and phantom subjects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage
from scripts.labels import label_value

__all__ = [
    "COMPARED_MUSCLES",
    "SHORT_NAME",
    "LEVEL_MM",
    "DISC_NAMES",
    "DISC_CENTRE_REL",
    "BANDS",
    "Volume",
    "spine_reference",
    "slice_metrics",
    "volume_metrics",
    "band_summary",
    "compare_bands",
    "compare_contrast",
]

#: muscles present in both (the real labels have no iliacus).
COMPARED_MUSCLES: tuple[str, ...] = ("psoas", "quadratus_lumborum", "erector_spinae_multifidus")
SHORT_NAME: dict[str, str] = {
    "psoas": "psoas",
    "quadratus_lumborum": "QL",
    "erector_spinae_multifidus": "ES+MF",
    "iliacus": "iliacus",
}

#: the phantom's level height (mm) and disc centres (mm above the L5/S1 disc, before the height factor).
LEVEL_MM = 36.0
DISC_NAMES: tuple[str, ...] = ("L5/S1", "L4/L5", "L3/L4", "L2/L3", "L1/L2", "T12/L1")
DISC_CENTRE_REL: dict[str, float] = {name: 0.5 + LEVEL_MM * i for i, name in enumerate(DISC_NAMES)}
#: vertebral bands compared: (name, z_rel from, z_rel to), in the phantom's spine-relative mm.
BANDS: tuple[tuple[str, float, float], ...] = (
    ("S1 (upper)", -24.0, -4.5),
    ("L5/S1 disc", -4.5, 5.5),
    ("L5 body", 5.5, 31.5),
    ("L4/L5 disc", 31.5, 41.5),
    ("L4 body", 41.5, 68.5),
)
#: posterior subcutaneous fat: sought within this distance of the midline and this far behind the ES+MF labels (mm).
_SAT_HALF_WIDTH_MM = 40.0
_SAT_GAP_MM = 4.0


@dataclass
class Volume:
    """An axial stack in RAS array order (x = patient right, y = anterior, z = superior) with bundle labels.

    Attributes:
        name: "real" or the phantom subject id.
        image: the compared contrast (real: its single T1-like image; phantom: in-phase), float32.
        label: bundle label values (``scripts.labels``), uint8.
        spacing: in-plane x and y voxel size and the slice spacing (mm).
        z_mm: per slice, mm above the L5/S1 disc centre (true mm along the slice normal).
        z_rel: per slice, the phantom's spine-relative position (mm for a 36-mm level; 0.5 = L5/S1 disc centre).
        extra: other images of the subject (phantom: water, fat, ff as a fraction).
        info: facts about the level assignment and the subject.
    """

    name: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]
    z_mm: np.ndarray
    z_rel: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)

    def slice_at(self, z_rel: float) -> int:
        """Index of the slice nearest the spine-relative position ``z_rel``."""
        return int(np.argmin(np.abs(self.z_rel - z_rel)))


# ---- spine reference and per-slice measurements --------------------------------------------------------------------
def _xy_mm(mask: np.ndarray, spacing_xy: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    ij = np.nonzero(mask)
    return ij[0] * spacing_xy[0], ij[1] * spacing_xy[1]


def spine_reference(label2d: np.ndarray, spacing_xy: tuple[float, float]) -> tuple[float, float] | None:
    """Spine reference of one axial slice from its labels: ``(x_ref, y_ref)`` in array mm (``index * spacing``).

    ``x_ref`` is the midpoint of the left and right ES+MF centroids (the midline); ``y_ref`` is the anterior edge of
    the ES+MF labels (95th percentile of their y over both sides: the lamina / transverse-process plane).
    Returns None when either side's ES+MF is absent.
    """
    left = label2d == label_value("erector_spinae_multifidus", "left")
    right = label2d == label_value("erector_spinae_multifidus", "right")
    if not left.any() or not right.any():
        return None
    xl, yl = _xy_mm(left, spacing_xy)
    xr, yr = _xy_mm(right, spacing_xy)
    x_ref = 0.5 * (float(xl.mean()) + float(xr.mean()))
    y_ref = float(np.percentile(np.concatenate([yl, yr]), 95))
    return x_ref, y_ref


def _eroded(mask: np.ndarray) -> np.ndarray:
    er = ndimage.binary_erosion(mask)
    return er if er.sum() >= 4 else mask


def _sat_signal(image2d: np.ndarray, label2d: np.ndarray, spacing_xy: tuple[float, float], x_ref: float) -> float:
    """Median signal of the posterior subcutaneous fat: bright voxels behind the ES+MF labels near the midline."""
    esmf = np.isin(label2d, [label_value("erector_spinae_multifidus", s) for s in ("left", "right")])
    _, y = _xy_mm(esmf, spacing_xy)
    y_post = float(np.percentile(y, 5))
    xs = np.arange(label2d.shape[0]) * spacing_xy[0]
    ys = np.arange(label2d.shape[1]) * spacing_xy[1]
    roi = (np.abs(xs - x_ref) <= _SAT_HALF_WIDTH_MM)[:, None] & (ys <= y_post - _SAT_GAP_MM)[None, :]
    vals = image2d[roi & (label2d == 0)].astype(np.float64)
    if vals.size < 10:
        return float("nan")
    bright = vals[vals > 0.5 * np.percentile(vals, 99)]
    return float(np.median(bright)) if bright.size else float("nan")


def slice_metrics(
    image2d: np.ndarray,
    label2d: np.ndarray,
    spacing_xy: tuple[float, float],
    muscles: Sequence[str] = COMPARED_MUSCLES,
    extra: dict[str, np.ndarray] | None = None,
) -> list[dict[str, float | str]]:
    """Area, centroid offsets and contrast of each (muscle, side) on one axial slice.

    Args:
        image2d: the slice's intensities (x, y), RAS array order.
        label2d: its bundle labels.
        spacing_xy: in-plane voxel size (mm).
        muscles: muscles to measure.
        extra: other images of the slice (key -> 2-D array); their muscle / subcutaneous-fat ratio is added as
            ``contrast_<key>``.

    Returns:
        one dict per (muscle, side): ``area_cm2`` (0 when absent), ``dx_mm`` (centroid x minus the midline, +
        = patient right), ``lateral_mm`` (its absolute value), ``dy_mm`` (centroid y minus the ES+MF anterior edge,
        + = anterior), ``signal`` (median over the eroded label), ``sat_signal`` (posterior subcutaneous fat) and
        ``contrast`` (their ratio), the equivalent ellipse (``semi_major_mm``, ``semi_minor_mm``, ``angle_deg`` of
        the major axis from lateral towards anterior) and, on psoas rows, ``deep_fat_ratio`` (retroperitoneal fat
        beside the psoas over posterior subcutaneous fat). Empty when the slice has no spine reference.
    """
    ref = spine_reference(label2d, spacing_xy)
    if ref is None:
        return []
    x_ref, y_ref = ref
    sat = _sat_signal(image2d, label2d, spacing_xy, x_ref)
    deep = _deep_fat_signal(image2d, label2d, spacing_xy, x_ref) if "psoas" in muscles else float("nan")
    extra_sat = {key: _sat_signal(other, label2d, spacing_xy, x_ref) for key, other in (extra or {}).items()}
    px_cm2 = spacing_xy[0] * spacing_xy[1] / 100.0
    rows: list[dict[str, float | str]] = []
    for muscle in muscles:
        for side in ("left", "right"):
            mask = label2d == label_value(muscle, side)
            n = int(mask.sum())
            row: dict[str, float | str] = {
                "muscle": muscle,
                "side": side,
                "area_cm2": n * px_cm2,
                "dx_mm": np.nan,
                "lateral_mm": np.nan,
                "dy_mm": np.nan,
                "signal": np.nan,
                "sat_signal": sat,
                "contrast": np.nan,
            }
            if n:
                x, y = _xy_mm(mask, spacing_xy)
                core = _eroded(mask)
                sig = float(np.median(image2d[core]))
                row.update(
                    dx_mm=float(x.mean()) - x_ref,
                    lateral_mm=abs(float(x.mean()) - x_ref),
                    dy_mm=float(y.mean()) - y_ref,
                    signal=sig,
                    contrast=sig / sat if sat > 0 else np.nan,
                )
                row.update(_ellipse(x, y, side))
                for key, other in (extra or {}).items():
                    osat = extra_sat[key]
                    row[f"contrast_{key}"] = float(np.median(other[core])) / osat if osat > 0 else np.nan
            else:
                row.update(semi_major_mm=np.nan, semi_minor_mm=np.nan, angle_deg=np.nan)
                for key in extra or {}:
                    row[f"contrast_{key}"] = np.nan
            if muscle == "psoas":
                row["deep_fat_ratio"] = deep / sat if sat > 0 else np.nan
            rows.append(row)
    return rows


def _ellipse(x: np.ndarray, y: np.ndarray, side: str) -> dict[str, float]:
    """Equivalent ellipse of a region (same second moments): semi-axes (mm) and the major axis's angle (degrees,
    0-180) from lateral towards anterior, so left and right read alike. In the phantom's keyframes the same angle
    is ``theta`` when ``a > b`` and ``theta + 90 degrees`` when ``b > a``."""
    lat = x if side == "right" else -x  # RAS: the right side lies at +x
    if x.size < 3:
        return {"semi_major_mm": np.nan, "semi_minor_mm": np.nan, "angle_deg": np.nan}
    cov = np.cov(np.stack([lat, y]))
    vals, vecs = np.linalg.eigh(cov)
    major = vecs[:, 1]
    ang = float(np.degrees(np.arctan2(major[1], major[0]))) % 180.0
    return {
        "semi_major_mm": 2.0 * float(np.sqrt(max(vals[1], 0.0))),
        "semi_minor_mm": 2.0 * float(np.sqrt(max(vals[0], 0.0))),
        "angle_deg": ang,
    }


def _deep_fat_signal(image2d: np.ndarray, label2d: np.ndarray, spacing_xy: tuple[float, float], x_ref: float) -> float:
    """Median of the bright (fat) voxels in a 10-mm ring lateral to each psoas: retroperitoneal fat about 6 cm
    deeper than the posterior subcutaneous fat, so their ratio measures the receive-coil falloff with depth."""
    vals = []
    xs = np.arange(label2d.shape[0]) * spacing_xy[0]
    for side in ("left", "right"):
        m = label2d == label_value("psoas", side)
        if not m.any():
            continue
        it = max(int(round(10.0 / spacing_xy[0])), 1)
        ring = ndimage.binary_dilation(m, iterations=it) & (label2d == 0)
        cx = float(xs[np.nonzero(m)[0]].mean())
        lateral = (xs - cx) * (1.0 if cx > x_ref else -1.0) > 0
        v = image2d[ring & lateral[:, None]].astype(np.float64)
        if v.size:
            vals.append(v)
    if not vals:
        return float("nan")
    v = np.concatenate(vals)
    bright = v[v > 0.5 * np.percentile(v, 99)]
    return float(np.median(bright)) if bright.size else float("nan")


def volume_metrics(
    vol: Volume,
    z_rel_range: tuple[float, float] | None = (-30.0, 80.0),
    muscles: Sequence[str] = COMPARED_MUSCLES,
    extra_keys: Sequence[str] = (),
) -> pd.DataFrame:
    """:func:`slice_metrics` on every slice of ``vol`` (within ``z_rel_range``), as a long table.

    ``extra_keys`` names images of ``vol.extra`` whose muscle / fat ratio is measured as well (``contrast_<key>``).
    Columns: source, slice, z_mm, z_rel, muscle, side and the metrics of :func:`slice_metrics`.
    """
    rows: list[dict[str, float | str]] = []
    for k in range(vol.label.shape[2]):
        z = float(vol.z_rel[k])
        if z_rel_range is not None and not (z_rel_range[0] <= z <= z_rel_range[1]):
            continue
        extra = {key: vol.extra[key][:, :, k] for key in extra_keys}
        for r in slice_metrics(vol.image[:, :, k], vol.label[:, :, k], vol.spacing[:2], muscles, extra):
            rows.append({"source": vol.name, "slice": k, "z_mm": float(vol.z_mm[k]), "z_rel": z, **r})
    return pd.DataFrame(rows)


# ---- tables ----------------------------------------------------------------------------------------------------------
_BAND_METRICS: tuple[str, ...] = ("area_cm2", "lateral_mm", "dy_mm", "semi_major_mm", "semi_minor_mm", "angle_deg")


def _angle_mean(deg: np.ndarray) -> float:
    """Mean of axial (0-180 degree) orientations: circular mean of the doubled angle."""
    d = np.radians(np.asarray(deg, dtype=np.float64)[np.isfinite(deg)]) * 2.0
    if d.size == 0:
        return float("nan")
    return float(np.degrees(np.arctan2(np.sin(d).mean(), np.cos(d).mean())) / 2.0) % 180.0


def band_summary(metrics: pd.DataFrame, bands: Sequence[tuple[str, float, float]] = BANDS) -> pd.DataFrame:
    """Mean of each metric per vertebral band, muscle and side.

    Areas average absent slices as 0; positions and shapes average the slices where the muscle is present.

    Returns:
        one row per (band, muscle, side) with n_slices and the means of ``area_cm2``, ``lateral_mm``, ``dy_mm``,
        ``semi_major_mm``, ``semi_minor_mm``, ``angle_deg`` and ``contrast``.
    """
    rows = []
    for band, lo, hi in bands:
        sub = metrics[(metrics.z_rel >= lo) & (metrics.z_rel < hi)]
        for (muscle, side), g in sub.groupby(["muscle", "side"], sort=False):
            row = {
                "band": band,
                "muscle": muscle,
                "side": side,
                "n_slices": int(g.slice.nunique()),
                "contrast": float(g.contrast.mean()),
            }
            for col in _BAND_METRICS:
                if col == "angle_deg":
                    row[col] = _angle_mean(g[col].to_numpy(dtype=np.float64))
                else:
                    row[col] = float(g[col].mean())
            rows.append(row)
    return pd.DataFrame(rows)


def _side_mean(b: pd.DataFrame) -> pd.DataFrame:
    """Per (band, muscle): the mean of left and right, and the left/right area ratio."""
    out = {}
    for (band, muscle), g in b.groupby(["band", "muscle"], sort=False):
        g = g.set_index("side")
        row = {
            col: (
                _angle_mean(g[col].to_numpy(dtype=np.float64))
                if col == "angle_deg"
                else (
                    float(np.nanmean(g[col].to_numpy(dtype=np.float64)))
                    if np.isfinite(g[col].to_numpy(dtype=np.float64)).any()
                    else np.nan
                )
            )
            for col in _BAND_METRICS
        }
        right = float(g.loc["right", "area_cm2"]) if "right" in g.index else 0.0
        left = float(g.loc["left", "area_cm2"]) if "left" in g.index else 0.0
        row["lr_ratio"] = left / right if right > 0 and left > 0 else np.nan
        out[(band, muscle)] = row
    return pd.DataFrame.from_dict(out, orient="index")


def compare_bands(
    real: pd.DataFrame, phantoms: Sequence[pd.DataFrame], bands: Sequence[tuple[str, float, float]] = BANDS
) -> pd.DataFrame:
    """Band-by-band comparison of the real scan's metrics with several phantom subjects'.

    Args:
        real: :func:`volume_metrics` of the real scan.
        phantoms: :func:`volume_metrics` of each phantom subject.
        bands: vertebral bands.

    Returns:
        one row per (muscle, band) with ``real_<m>`` and ``phantom_<m>`` (mean), ``phantom_<m>_min`` and
        ``_max`` over subjects, for m in area_cm2 (side mean), lr_ratio, lateral_mm, dy_mm, semi_major_mm,
        semi_minor_mm and angle_deg; ``area_ratio`` = phantom mean / real; ``n_real_slices``.
    """
    rb = band_summary(real, bands)
    r = _side_mean(rb)
    ps = [_side_mean(band_summary(p, bands)) for p in phantoms]
    nreal = rb.groupby(["band", "muscle"], sort=False).n_slices.first()
    rows = []
    for muscle in COMPARED_MUSCLES:
        for band, _, _ in bands:
            key = (band, muscle)
            if key not in r.index:
                continue
            row: dict[str, float | str | int] = {"muscle": muscle, "band": band, "n_real_slices": int(nreal[key])}
            for col in (*_BAND_METRICS, "lr_ratio"):
                vals = np.array([p.loc[key, col] if key in p.index else np.nan for p in ps], dtype=np.float64)
                row[f"real_{col}"] = float(r.loc[key, col])
                finite = vals[np.isfinite(vals)]
                mean = _angle_mean(finite) if col == "angle_deg" else float(finite.mean()) if finite.size else np.nan
                row[f"phantom_{col}"] = mean
                row[f"phantom_{col}_min"] = float(finite.min()) if finite.size else np.nan
                row[f"phantom_{col}_max"] = float(finite.max()) if finite.size else np.nan
            real_area = float(row["real_area_cm2"])
            row["area_ratio"] = float(row["phantom_area_cm2"]) / real_area if real_area > 0 else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def compare_contrast(
    real: pd.DataFrame, phantoms: Sequence[pd.DataFrame], z_rel_range: tuple[float, float] | None = None
) -> pd.DataFrame:
    """Muscle / posterior subcutaneous fat intensity ratios (mean over slices and sides), real vs phantom.

    Rows: each muscle; ``psoas / ES+MF`` (psoas lies ~6 cm deeper: coil falloff and FF difference together);
    ``peri-psoas fat / SAT`` (fat beside the psoas over posterior subcutaneous fat: the coil falloff alone).
    Columns: ``real``; ``phantom`` (in-phase) mean, min, max over subjects; ``phantom_fat`` (the phantom's fat
    image) when the metrics hold ``contrast_fat``. ``z_rel_range`` defaults to the real scan's range.
    """
    lo, hi = z_rel_range or (float(real.z_rel.min()) - 3.0, float(real.z_rel.max()) + 3.0)

    def per_muscle(df: pd.DataFrame, col: str) -> dict[str, float]:
        sub = df[(df.z_rel >= lo) & (df.z_rel <= hi)]
        out = {m: float(sub[sub.muscle == m][col].mean()) for m in COMPARED_MUSCLES}
        out["psoas / ES+MF"] = out["psoas"] / out["erector_spinae_multifidus"]
        if col == "contrast" and "deep_fat_ratio" in sub.columns:
            out["peri-psoas fat / SAT"] = float(sub[sub.muscle == "psoas"].deep_fat_ratio.mean())
        return out

    rm = per_muscle(real, "contrast")
    pm = [per_muscle(p, "contrast") for p in phantoms]
    pf = [per_muscle(p, "contrast_fat") for p in phantoms if "contrast_fat" in p.columns]
    rows = []
    for key in rm:
        vals = np.array([p[key] for p in pm])
        row = {
            "muscle": key,
            "real": rm[key],
            "phantom": float(np.nanmean(vals)),
            "phantom_min": float(np.nanmin(vals)),
            "phantom_max": float(np.nanmax(vals)),
        }
        if pf and key in pf[0]:
            fv = np.array([p[key] for p in pf])
            row.update(
                phantom_fat=float(np.nanmean(fv)),
                phantom_fat_min=float(np.nanmin(fv)),
                phantom_fat_max=float(np.nanmax(fv)),
            )
        rows.append(row)
    return pd.DataFrame(rows)
