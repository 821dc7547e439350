"""Compare the synthetic lumbar Dixon phantom with the real MuscleMap lumbar sample (``shared/real-samples``).

What is measured, per axial slice and per muscle (psoas, quadratus lumborum, erector spinae + multifidus; left and
right), on the real scan and on phantom subjects alike, with label maps only (no knowledge of the phantom's
generator is used for these numbers):

- cross-sectional area (cm^2) and the left/right area ratio;
- centroid position relative to a spine reference found from the labels alone: in x the midpoint between the
  left and right ES+MF centroids (the midline), in y the anterior edge of the ES+MF labels, taken as the 95th
  percentile of their antero-posterior coordinate in the slice (the plane of the laminae and transverse processes,
  against which multifidus and erector spinae lie; a percentile rather than the maximum so that a few stray
  voxels do not move it). Both muscles exist on every slice from the sacrum to T12, and the landmark sits 27-38 mm
  behind the vertebral-body centre in both the real scan and the phantom;
- intensity contrast: the median of the muscle (label eroded by one voxel) over the median of the posterior
  subcutaneous fat (the bright voxels behind the ES+MF labels, within 40 mm of the midline) in the same slice.
  The real image is a single fat-bright (T1-weighted-like) contrast with strong posterior surface-coil falloff;
  the phantom's in-phase image is compared with it.

Matching levels. The real scan has no level annotation, so its intervertebral discs are found in the image: the
vertebral bodies lie 20-45 mm in front of the ES+MF anterior edge, and on this T1-like image a disc is darker than
the fatty marrow of a body, so the median intensity of that box per slice dips at each disc. Complete dips are
the discs (centre = darkness-weighted slice position). Which disc is the lowest is an anatomical call that the
profile cannot make: on the MuscleMap sample slices 0-2 show the sacral alae meeting the iliac bones (sacro-iliac
joints) and the S1 foramina, so the lowest disc is L5/S1 (``lowest_disc``). The spacing of the discs gives the
real level height; every real slice then gets a spine-relative position ``z_rel`` in the phantom's own units
(mm above the L5/S1 disc for a 36-mm level; the phantom's disc centres lie at 0.5 + 36 n). For the phantom the
same quantity is exact: ``z_rel = (z_world - offset_z) / height_factor`` from the subject's anatomy, which is
rebuilt from the seed exactly as :func:`scripts.phantom.generate_subject` draws it. Slices are then grouped in
vertebral bands (S1, L5/S1 disc, L5 body, L4/L5 disc, L4 body) and compared band by band.

Command line (``fire``)::

    .venv/bin/python -m scripts.studies.compare_phantom_real --seeds='[0,1,2,3,4]' --out_dir=docs/images
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from scipy import ndimage
from scripts.labels import LABELS, label_value
from scripts.phantom import Acquisition, generate_subject
from scripts.phantom.anatomy import SubjectAnatomy
from scripts.phantom.generate import make_anatomy
from scripts.phantom.population import draw_participant

__all__ = [
    "REAL_SAMPLE_DIR",
    "MUSCLEMAP_TO_BUNDLE",
    "COMPARED_MUSCLES",
    "BANDS",
    "Volume",
    "load_real_sample",
    "vertebral_body_profile",
    "detect_discs",
    "spine_reference",
    "slice_metrics",
    "volume_metrics",
    "phantom_anatomy",
    "phantom_volume",
    "band_summary",
    "compare_bands",
    "compare_contrast",
    "format_report",
    "plot_comparison",
    "plot_gallery",
    "main",
]

#: the MuscleMap lumbar sample beside the checkout (``<checkout>/../shared``).
REAL_SAMPLE_DIR: Path = Path(__file__).resolve().parents[3] / "shared" / "real-samples" / "musclemap_lumbar_sub0001"
REAL_IMAGE = "sub0001_lumbar_axial_mri.nii.gz"
REAL_LABEL = "sub0001_lumbar_axial_mri_dseg_musclemap_abdomen_v0.nii.gz"

#: MuscleMap abdomen labels -> bundle labels (multifidus and erector spinae merge per side).
MUSCLEMAP_TO_BUNDLE: dict[int, int] = {
    1: label_value("erector_spinae_multifidus", "right"),  # R multifidus
    2: label_value("erector_spinae_multifidus", "left"),  # L multifidus
    3: label_value("erector_spinae_multifidus", "right"),  # R erector spinae
    4: label_value("erector_spinae_multifidus", "left"),  # L erector spinae
    5: label_value("psoas", "right"),
    6: label_value("psoas", "left"),
    7: label_value("quadratus_lumborum", "right"),
    8: label_value("quadratus_lumborum", "left"),
}
#: muscles present in both (the real labels have no iliacus).
COMPARED_MUSCLES: tuple[str, ...] = ("psoas", "quadratus_lumborum", "erector_spinae_multifidus")
SHORT_NAME: dict[str, str] = {
    "psoas": "psoas",
    "quadratus_lumborum": "QL",
    "erector_spinae_multifidus": "ES+MF",
    "iliacus": "iliacus",
}
MUSCLE_COLOUR: dict[str, str] = {
    "psoas": "#ff4040",
    "quadratus_lumborum": "#ffd000",
    "erector_spinae_multifidus": "#00d0ff",
    "iliacus": "#40ff60",
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
#: bounds of the spine-reference box searched for discs (mm in front of the ES+MF anterior edge, mm either side).
_BODY_BOX_MM: tuple[float, float, float] = (20.0, 45.0, 8.0)
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


# ---- the real sample ------------------------------------------------------------------------------------------------
def vertebral_body_profile(image: np.ndarray, label: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Per slice, the median intensity of a box where the vertebral body lies (NaN without a spine reference).

    The box spans 20-45 mm in front of the ES+MF anterior edge and 8 mm either side of the midline.
    """
    lo, hi, half = _BODY_BOX_MM
    out = np.full(image.shape[2], np.nan)
    for k in range(image.shape[2]):
        ref = spine_reference(label[:, :, k], spacing[:2])
        if ref is None:
            continue
        x0, y0 = ref
        xs = slice(max(int(round((x0 - half) / spacing[0])), 0), int(round((x0 + half) / spacing[0])) + 1)
        ys = slice(max(int(round((y0 + lo) / spacing[1])), 0), int(round((y0 + hi) / spacing[1])) + 1)
        box = image[xs, ys, k]
        if box.size:
            out[k] = float(np.median(box))
    return out


def detect_discs(profile: np.ndarray, dark_fraction: float = 0.5) -> list[float]:
    """Centres (fractional slice index) of the intervertebral discs seen as dips of ``profile``.

    A run of consecutive slices darker than ``dark_fraction`` times the profile's median is one disc; its centre is
    the darkness-weighted mean slice. Runs touching the first or last slice are incomplete and are left out.
    """
    p = np.asarray(profile, dtype=np.float64)
    thr = dark_fraction * float(np.nanmedian(p))
    dark = np.nan_to_num(p, nan=np.inf) < thr
    centres: list[float] = []
    k = 0
    n = p.size
    while k < n:
        if not dark[k]:
            k += 1
            continue
        j = k
        while j + 1 < n and dark[j + 1]:
            j += 1
        if k > 0 and j < n - 1:
            idx = np.arange(k, j + 1)
            w = thr - p[idx]
            centres.append(float(np.sum(idx * w) / np.sum(w)))
        k = j + 1
    return centres


def load_real_sample(directory: str | Path = REAL_SAMPLE_DIR, lowest_disc: str = "L5/S1") -> Volume:
    """Load the MuscleMap lumbar sample as RAS (``as_closest_canonical``) with bundle labels and spine levels.

    Args:
        directory: folder holding the image and its MuscleMap abdomen labels.
        lowest_disc: name of the lowest complete disc found by :func:`detect_discs` (the sample's slices 0-2 show
            the sacral alae and sacro-iliac joints, so the lowest disc is L5/S1).

    Returns:
        the scan as a :class:`Volume`; ``info`` holds the disc positions and the real level height.

    Raises:
        FileNotFoundError: when the files are absent.
        ValueError: when the labels' left and right are inconsistent with the RAS x axis, or no disc is found.
    """
    d = Path(directory)
    img = nib.as_closest_canonical(nib.load(str(d / REAL_IMAGE)))
    lab = nib.as_closest_canonical(nib.load(str(d / REAL_LABEL)))
    image = np.asarray(img.dataobj, dtype=np.float32)
    mm = np.asarray(lab.dataobj).astype(np.int64)
    lut = np.zeros(max(MUSCLEMAP_TO_BUNDLE) + 1, np.uint8)
    for src, dst in MUSCLEMAP_TO_BUNDLE.items():
        lut[src] = dst
    label = lut[np.clip(mm, 0, lut.size - 1)]
    spacing = tuple(float(v) for v in img.header.get_zooms()[:3])
    # RAS: +x is the patient's right, so every right-sided muscle must lie at larger x than its left partner
    for muscle in COMPARED_MUSCLES:
        xl = np.argwhere(label == label_value(muscle, "left"))[:, 0].mean()
        xr = np.argwhere(label == label_value(muscle, "right"))[:, 0].mean()
        if not xr > xl:
            raise ValueError(f"{muscle}: right label at x index {xr:.1f} is not right of left at {xl:.1f}")
    profile = vertebral_body_profile(image, label, spacing)  # type: ignore[arg-type]
    discs = detect_discs(profile)
    if not discs:
        raise ValueError("no intervertebral disc found in the real scan's vertebral-body profile")
    first = DISC_NAMES.index(lowest_disc)
    level_mm = float(np.median(np.diff(discs))) * spacing[2] if len(discs) > 1 else LEVEL_MM
    height_factor = level_mm / LEVEL_MM
    k = np.arange(image.shape[2], dtype=np.float64)
    z_mm = (k - discs[0]) * spacing[2] + (DISC_CENTRE_REL[lowest_disc] - DISC_CENTRE_REL["L5/S1"]) * height_factor
    z_rel = DISC_CENTRE_REL["L5/S1"] + z_mm / height_factor
    info: dict[str, object] = {
        "discs": {DISC_NAMES[first + i]: round(c, 2) for i, c in enumerate(discs)},
        "level_mm": level_mm,
        "height_factor": height_factor,
        "body_profile": profile,
        "orientation_on_disk": "".join(nib.aff2axcodes(nib.load(str(d / REAL_IMAGE)).affine)),
    }
    return Volume("real", image, label, spacing, z_mm, z_rel, info=info)  # type: ignore[arg-type]


# ---- phantom subjects ------------------------------------------------------------------------------------------------
def phantom_anatomy(seed: int, subject_id: str | None = None) -> SubjectAnatomy:
    """The anatomy (height factor, offsets, muscle scales) that :func:`generate_subject` draws for ``seed``.

    It repeats the first draws of ``generate_subject`` (participant, then anatomy) from the same generator, so it
    holds for subjects generated with the default participant.
    """
    sid = subject_id or f"sub-{seed:04d}"
    rng = np.random.default_rng([int(seed), 20261125])
    return make_anatomy(draw_participant(sid, rng), rng)


def phantom_volume(
    seed: int, geometry: str = "reference", extra_keys: Sequence[str] = ("water", "fat", "ff"), texture: str = "smooth"
) -> Volume:
    """Generate phantom subject ``seed`` (RAS, full coverage) and attach its spine-relative slice positions.

    Args:
        seed: subject seed.
        geometry: acquisition preset ("reference", "low" or "tiny").
        extra_keys: other images kept in ``Volume.extra`` (of "water", "fat", "ff", "opposed"; FF as stored).
        texture: the phantom's texture, "smooth" or "septa" (see :func:`scripts.phantom.generate_subject`).

    Returns:
        the subject as a :class:`Volume` (image = in-phase).
    """
    subj = generate_subject(seed, Acquisition.preset(geometry), texture=texture)
    anat = phantom_anatomy(seed, subj.subject_id)
    canon = nib.as_closest_canonical(nib.Nifti1Image(subj.images["label"], subj.affine))
    if not np.allclose(canon.affine, subj.affine):
        raise ValueError("phantom subject is not stored RAS; pass an RAS acquisition")
    aff = subj.affine
    k = np.arange(subj.images["label"].shape[2], dtype=np.float64)
    zw = aff[2, 2] * k + aff[2, 3]
    z_rel = (zw - anat.offset_mm[2]) / anat.height_factor
    z_mm = zw - float(anat.z(DISC_CENTRE_REL["L5/S1"]))
    spacing = tuple(float(v) for v in np.sqrt((aff[:3, :3] ** 2).sum(0)))
    extra = {key: subj.images[key] for key in extra_keys}
    info: dict[str, object] = {
        "seed": seed,
        "height_factor": anat.height_factor,
        "width_factor": anat.width_factor,
        "sex": anat.sex,
        "bmi": anat.bmi,
        "sat_mm": anat.sat_mm,
        "muscle_scale": {f"{m}_{s}": round(v, 3) for (m, s), v in anat.muscle_scale.items()},
    }
    return Volume(
        subj.subject_id,
        subj.images["inphase"].astype(np.float32),
        subj.images["label"],
        spacing,
        z_mm,
        z_rel,
        extra=extra,
        info=info,
    )  # type: ignore[arg-type]


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


def _rng(mean: float, lo: float, hi: float, fmt: str = "{:.1f}") -> str:
    if not np.isfinite(mean):
        return "-"
    return f"{fmt.format(mean)} [{fmt.format(lo)}-{fmt.format(hi)}]"


def _f(v: float, fmt: str = "{:.1f}") -> str:
    return fmt.format(v) if np.isfinite(v) else "-"


def format_report(
    table: pd.DataFrame,
    contrast: pd.DataFrame,
    real_info: dict[str, object],
    phantom_infos: Sequence[dict[str, object]],
) -> str:
    """Markdown text of the comparison: level matching, areas and positions, shapes, contrast."""
    discs = ", ".join(f"{k} at slice {v}" for k, v in dict(real_info["discs"]).items())  # type: ignore[arg-type]
    seeds = ", ".join(
        f"{i['seed']} ({i['sex']}, BMI {i['bmi']:.0f}, h {i['height_factor']:.2f}, w {i['width_factor']:.2f})"
        for i in phantom_infos
    )
    lines = [
        f"Real scan: discs {discs} (slice 0 inferior); level height {real_info['level_mm']:.1f} mm "
        f"(height factor {real_info['height_factor']:.2f}).",
        f"Phantom seeds (sex, BMI, height factor, width factor): {seeds}.",
        "",
        "Areas: mean of left and right per slice, averaged over the band's slices (cm^2); phantom: mean "
        "[min-max] over seeds. L/R: left/right area ratio. Offsets from the spine reference (mm): lateral = "
        "|x - midline|, AP = y - ES+MF anterior edge (+ anterior).",
        "",
        "| muscle | band | real area | phantom area | ph/real | real L/R | phantom L/R | real lateral | "
        "phantom lateral | real AP | phantom AP |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {SHORT_NAME[r.muscle]} | {r.band} | {_f(r.real_area_cm2)} | "
            f"{_rng(r.phantom_area_cm2, r.phantom_area_cm2_min, r.phantom_area_cm2_max)} | "
            f"{_f(r.area_ratio, '{:.2f}')} | {_f(r.real_lr_ratio, '{:.2f}')} | "
            f"{_rng(r.phantom_lr_ratio, r.phantom_lr_ratio_min, r.phantom_lr_ratio_max, '{:.2f}')} | "
            f"{_f(r.real_lateral_mm, '{:.0f}')} | "
            f"{_rng(r.phantom_lateral_mm, r.phantom_lateral_mm_min, r.phantom_lateral_mm_max, '{:.0f}')} | "
            f"{_f(r.real_dy_mm, '{:.0f}')} | "
            f"{_rng(r.phantom_dy_mm, r.phantom_dy_mm_min, r.phantom_dy_mm_max, '{:.0f}')} |"
        )
    lines += [
        "",
        "Shape: equivalent ellipse (same second moments), semi-axes major/minor (mm) and the major "
        "axis's angle from lateral towards anterior (degrees); side means, phantom mean over seeds.",
        "",
        "| muscle | band | real semi-axes | phantom semi-axes | real angle | phantom angle |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        if not np.isfinite(r.real_semi_major_mm) and not np.isfinite(r.phantom_semi_major_mm):
            continue
        lines.append(
            f"| {SHORT_NAME[r.muscle]} | {r.band} | {_f(r.real_semi_major_mm, '{:.0f}')} / "
            f"{_f(r.real_semi_minor_mm, '{:.0f}')} | {_f(r.phantom_semi_major_mm, '{:.0f}')} / "
            f"{_f(r.phantom_semi_minor_mm, '{:.0f}')} | {_f(r.real_angle_deg, '{:.0f}')} | "
            f"{_f(r.phantom_angle_deg, '{:.0f}')} |"
        )
    has_fat = "phantom_fat" in contrast.columns
    lines += [
        "",
        "Intensity over posterior subcutaneous fat (real: its single T1-like image; phantom: in-phase"
        + (" and fat images" if has_fat else "")
        + "), mean over the real scan's range:",
        "",
        "| ratio | real | phantom in-phase" + (" | phantom fat |" if has_fat else " |"),
        "|---|---|---|" + ("---|" if has_fat else ""),
    ]
    for _, r in contrast.iterrows():
        line = (
            f"| {SHORT_NAME.get(r.muscle, r.muscle)} | {_f(r.real, '{:.2f}')} | "
            f"{_rng(r.phantom, r.phantom_min, r.phantom_max, '{:.2f}')} |"
        )
        if has_fat:
            line += f" {_rng(r.phantom_fat, r.phantom_fat_min, r.phantom_fat_max, '{:.2f}')} |"
        lines.append(line)
    return "\n".join(lines)


# ---- figures ---------------------------------------------------------------------------------------------------------
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


# ---- command line ----------------------------------------------------------------------------------------------------
def main(
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    geometry: str = "reference",
    real_dir: str | Path = REAL_SAMPLE_DIR,
    out_dir: str | Path | None = "docs/images",
    n_gallery: int = 3,
    texture: str = "smooth",
) -> str:
    """Compare phantom subjects ``seeds`` with the real MuscleMap sample; returns the Markdown report.

    Args:
        seeds: phantom seeds (the table reports mean and range over them).
        geometry: phantom acquisition preset.
        real_dir: folder of the real sample.
        out_dir: where ``phantom_vs_real.png`` and ``phantom_gallery.png`` go (None: no figures).
        n_gallery: subjects shown in the gallery (the first seeds).
        texture: phantom texture ("smooth" or "septa"); figures of "septa" are named ``*_septa.png``.
    """
    seeds = [int(s) for s in (seeds if isinstance(seeds, (list, tuple)) else [seeds])]
    real = load_real_sample(real_dir)
    real_m = volume_metrics(real, None)
    ph_metrics: list[pd.DataFrame] = []
    kept: list[Volume] = []
    infos: list[dict[str, object]] = []
    for i, seed in enumerate(seeds):
        gallery = out_dir is not None and i < max(n_gallery, 1)
        vol = phantom_volume(
            seed, geometry, extra_keys=("water", "fat", "ff") if gallery else ("fat",), texture=texture
        )
        ph_metrics.append(volume_metrics(vol, extra_keys=("fat",)))
        infos.append(vol.info)
        if gallery:
            kept.append(vol)
    table = compare_bands(real_m, ph_metrics)
    contrast = compare_contrast(real_m, ph_metrics)
    if out_dir is not None and kept:
        out = Path(out_dir)
        suffix = "" if texture == "smooth" else f"_{texture}"
        plot_comparison(real, kept[0], real_m, ph_metrics, out / f"phantom_vs_real{suffix}.png")
        plot_gallery(kept[:n_gallery], out / f"phantom_gallery{suffix}.png")
    return format_report(table, contrast, real.info, infos)


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(main))
