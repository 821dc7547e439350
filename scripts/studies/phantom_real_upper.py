"""Compare the phantom's upper lumbar anatomy (T12 to L2) with a real label map: TotalSegmentator's CT sample.

The MuscleMap comparison (:mod:`scripts.studies.compare_phantom_real`) covers the sacrum to L4. Above L3 no real
scan here has muscle labels except ``../shared/real-samples/totalsegmentator_ct_sample``: a real upper-abdominal CT
(3 mm voxels, T11 to L2) with TotalSegmentator's 41-structure label map (a model's output, not a manual
reference). It labels the autochthon muscles (erector spinae + multifidus), the upper iliopsoas, the vertebrae
T11-L2 and the spinal cord, the kidneys, liver and spleen, so it measures what the phantom draws at the levels
where the real TotalSegmentator MR sample (3 mm, upper abdomen) is judged.

Levels are exact on both sides. Real: each vertebra's body is the part of its label in front of the spinal cord;
the slices where that part has at least a third of its largest area are the body; a disc's centre is the midpoint
between the two bodies it separates. The spacing of the discs gives the real level height, and every real slice
gets the phantom's spine-relative position ``z_rel`` (mm above L5/S1 for a 36-mm level). Phantom: ``z_rel`` from
the subject's anatomy (:func:`scripts.studies.phantom_real_volumes.phantom_volume`).

Measured per band (L2 body, L1/L2 disc, L1 body, T12/L1 disc, T12 body): psoas and ES+MF as in the MuscleMap
comparison (area, position from the spine reference, equivalent ellipse), and the vertebral body, kidneys and lung
bases (area, width, depth, position). Left and right are averaged. The real sample is one subject; the phantom's
subjects give a range, and a real value outside that range is a gap.

Command line (``fire``)::

    .venv/bin/python -m scripts.studies.phantom_real_upper --seeds='[0,1,2,3,4]' --anatomy=complete
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scripts.labels import label_value
from scripts.phantom.tissue_ids import TISSUE_NAMES
from scripts.studies.phantom_real_measures import (
    DISC_CENTRE_REL,
    LEVEL_MM,
    SHORT_NAME,
    Volume,
    compare_bands,
    spine_reference,
    volume_metrics,
)
from scripts.studies.phantom_real_volumes import REAL_SAMPLE_DIR, phantom_volume

__all__ = [
    "TS_CT_DIR",
    "UPPER_BANDS",
    "UPPER_MUSCLES",
    "body_extents",
    "load_totalsegmentator_ct",
    "structure_metrics",
    "compare_structures",
    "format_upper_report",
    "plot_upper",
    "main",
]

#: the TotalSegmentator CT sample beside the checkout (``<checkout>/../shared``).
TS_CT_DIR: Path = REAL_SAMPLE_DIR.parent / "totalsegmentator_ct_sample"
_TS_IMAGE = "example_ct_sm.nii.gz"
_TS_LABEL = "example_seg_total.nii.gz"
#: TotalSegmentator ``total`` values used here.
_TS_MUSCLES: dict[int, int] = {
    86: label_value("erector_spinae_multifidus", "left"),  # autochthon_left
    87: label_value("erector_spinae_multifidus", "right"),  # autochthon_right
    88: label_value("psoas", "left"),  # iliopsoas_left (its upper end is psoas major)
    89: label_value("psoas", "right"),  # iliopsoas_right
}
_TS_VERTEBRAE: dict[str, int] = {"L2": 30, "L1": 31, "T12": 32, "T11": 33}
_TS_CORD = 79
_TS_KIDNEY = {"left": 3, "right": 2}
_TS_LUNG = {"left": (11,), "right": (14,)}  # the lower lobes (the bases); the lingula lies far in front
#: a body slice holds at least this share of the body's largest cross-section (3-mm slices cut the end plates).
_BODY_SHARE = 1.0 / 3.0
#: body voxels lie this far in front of the spinal cord's anterior edge (mm): the pedicles stay out.
_BODY_GAP_MM = 3.0

#: the muscles both label maps hold (TotalSegmentator has no quadratus lumborum).
UPPER_MUSCLES: tuple[str, ...] = ("psoas", "erector_spinae_multifidus")
_UPPER_DISCS: dict[str, float] = {**DISC_CENTRE_REL, "T11/T12": 0.5 + 6 * LEVEL_MM}
#: (name, z_rel from, z_rel to), in the phantom's spine-relative mm, as ``phantom_real_measures.BANDS``.
UPPER_BANDS: tuple[tuple[str, float, float], ...] = (
    ("L2 body", 113.5, 139.5),
    ("L1/L2 disc", 139.5, 149.5),
    ("L1 body", 149.5, 175.5),
    ("T12/L1 disc", 175.5, 185.5),
    ("T12 body", 185.5, 211.5),
)


# ---- the real label map ----------------------------------------------------------------------------------------------
def body_extents(body: dict[str, np.ndarray], slice_mm: float) -> dict[str, tuple[float, float]]:
    """Cranio-caudal extent (mm along the slice axis, slice 0 at 0) of each vertebral body.

    Args:
        body: vertebra name -> its body's voxel count per slice (1-D, inferior to superior).
        slice_mm: slice spacing.

    Returns:
        name -> (lower end, upper end) in mm: the outer faces of the first and last slice whose count is at least
        a third of the largest. A body cut by the end of the scan ends there.
    """
    out = {}
    for name, counts in body.items():
        counts = np.asarray(counts, dtype=np.float64)
        if counts.max() <= 0:
            continue
        k = np.flatnonzero(counts >= _BODY_SHARE * counts.max())
        out[name] = ((k[0] - 0.5) * slice_mm, (k[-1] + 0.5) * slice_mm)
    return out


def _disc_centres(extents: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Disc centre (mm) between each pair of consecutive bodies that are both complete on the facing side."""
    order = ["L2", "L1", "T12", "T11"]
    centres = {}
    for lower, upper in zip(order[:-1], order[1:]):
        if lower in extents and upper in extents:
            centres[f"{upper}/{lower}"] = 0.5 * (extents[lower][1] + extents[upper][0])
    return centres


def _body_masks(seg: np.ndarray, spacing: tuple[float, float, float]) -> dict[str, np.ndarray]:
    """Each vertebra's body: the voxels of its label in front of the spinal cord (RAS: +y anterior)."""
    cord = seg == _TS_CORD
    ys = np.arange(seg.shape[1]) * spacing[1]
    front = np.full(seg.shape[2], np.nan)
    for k in range(seg.shape[2]):
        j = np.nonzero(cord[:, :, k])[1]
        if j.size:
            front[k] = ys[j].max()
    if np.isnan(front).all():
        raise ValueError("the TotalSegmentator label map has no spinal cord to separate bodies from posterior elements")
    idx = np.arange(front.size)
    ok = np.isfinite(front)
    front = np.interp(idx, idx[ok], front[ok])
    ahead = ys[None, :, None] > (front + _BODY_GAP_MM)[None, None, :]
    return {name: (seg == value) & ahead for name, value in _TS_VERTEBRAE.items()}


def load_totalsegmentator_ct(directory: str | Path = TS_CT_DIR) -> Volume:
    """Load the TotalSegmentator CT sample as RAS with bundle labels (psoas, ES+MF) and spine levels.

    Returns:
        a :class:`Volume` (image: CT in HU); ``extra`` holds ``body`` (vertebral bodies T11-L2, uint8),
        ``kidney_left`` / ``kidney_right`` and ``lung_left`` / ``lung_right`` (lower lobes) masks; ``info`` the body
        extents, disc centres (mm along z) and the real level height.

    Raises:
        FileNotFoundError: when the files are absent.
        ValueError: when left and right are inconsistent with RAS, or fewer than two discs are found.
    """
    d = Path(directory)
    img = nib.as_closest_canonical(nib.load(str(d / _TS_IMAGE)))
    lab = nib.as_closest_canonical(nib.load(str(d / _TS_LABEL)))
    seg = np.asarray(lab.dataobj).astype(np.int64)
    spacing = tuple(float(v) for v in lab.header.get_zooms()[:3])
    label = np.zeros(seg.shape, np.uint8)
    for src, dst in _TS_MUSCLES.items():
        label[seg == src] = dst
    for muscle in UPPER_MUSCLES:
        xl = np.argwhere(label == label_value(muscle, "left"))[:, 0].mean()
        xr = np.argwhere(label == label_value(muscle, "right"))[:, 0].mean()
        if not xr > xl:
            raise ValueError(f"{muscle}: right label at x index {xr:.1f} is not right of left at {xl:.1f} (RAS)")
    bodies = _body_masks(seg, spacing)  # type: ignore[arg-type]
    extents = body_extents({n: m.sum(axis=(0, 1)) for n, m in bodies.items()}, spacing[2])
    discs = _disc_centres(extents)
    if len(discs) < 2:
        raise ValueError(f"need two discs to set the level height, found {sorted(discs)}")
    names = sorted(discs, key=discs.get)  # type: ignore[arg-type]
    level_mm = float(np.median(np.diff([discs[n] for n in names])))
    height_factor = level_mm / LEVEL_MM
    ref = names[0]
    z = np.arange(seg.shape[2]) * spacing[2]
    z_rel = _UPPER_DISCS[ref] + (z - discs[ref]) / height_factor
    body = np.zeros(seg.shape, np.uint8)
    for m in bodies.values():
        body[m] = 1
    extra = {"body": body, **{f"kidney_{s}": (seg == v).astype(np.uint8) for s, v in _TS_KIDNEY.items()}}
    extra.update({f"lung_{s}": np.isin(seg, v).astype(np.uint8) for s, v in _TS_LUNG.items()})
    info: dict[str, object] = {
        "body_extents_mm": {n: tuple(round(v, 1) for v in e) for n, e in extents.items()},
        "discs_mm": {n: round(v, 1) for n, v in discs.items()},
        "level_mm": level_mm,
        "height_factor": height_factor,
    }
    image = np.asarray(img.dataobj, dtype=np.float32)
    return Volume("real", image, label, spacing, z - discs[ref], z_rel, extra=extra, info=info)  # type: ignore[arg-type]


def _phantom_upper(seed: int, geometry: str, anatomy: str) -> Volume:
    """A phantom subject with the same ``extra`` masks as the real sample (bodies T11-L2, kidneys, lungs)."""
    if anatomy != "complete":  # the default anatomy has no tissue map: its muscles only
        return phantom_volume(seed, geometry, extra_keys=(), anatomy=anatomy)
    vol = phantom_volume(seed, geometry, extra_keys=("tissue", "vertebrae"), anatomy=anatomy)
    tissue = vol.extra.pop("tissue")
    vert = vol.extra.pop("vertebrae")
    upper = (TISSUE_NAMES["vertebral_body_T12"], TISSUE_NAMES["vertebral_body_T11"])
    vol.extra["body"] = (np.isin(vert, (9, 10)) | np.isin(tissue, upper)).astype(np.uint8)  # L2, L1, T12, T11
    for side in ("left", "right"):
        for organ in ("kidney", "lung"):
            vol.extra[f"{organ}_{side}"] = (tissue == TISSUE_NAMES[f"{organ}_{side}"]).astype(np.uint8)
    return vol


# ---- structures other than the target muscles ------------------------------------------------------------------------
_STRUCTURES = ("body", "kidney_left", "kidney_right", "lung_left", "lung_right")


def structure_metrics(vol: Volume, keys: Sequence[str] = _STRUCTURES) -> pd.DataFrame:
    """Per slice with a spine reference, each mask of ``vol.extra`` named in ``keys``: area (cm^2), width and
    depth (its left-right and antero-posterior extent, mm), lateral offset from the midline and antero-posterior
    offset from the ES+MF anterior edge (mm, + anterior) of its centroid. Absent structures give area 0."""
    rows = []
    sx, sy = vol.spacing[:2]
    for k in range(vol.label.shape[2]):
        ref = spine_reference(vol.label[:, :, k], (sx, sy))
        if ref is None:
            continue
        for key in keys:
            if key not in vol.extra:
                continue
            i, j = np.nonzero(vol.extra[key][:, :, k])
            row = {"slice": k, "z_rel": float(vol.z_rel[k]), "structure": key, "area_cm2": i.size * sx * sy / 100.0}
            if i.size:
                row.update(
                    width_mm=(i.max() - i.min() + 1) * sx,
                    depth_mm=(j.max() - j.min() + 1) * sy,
                    lateral_mm=abs(i.mean() * sx - ref[0]),
                    dy_mm=j.mean() * sy - ref[1],
                )
            rows.append(row)
    return pd.DataFrame(rows)


_STRUCT_METRICS = ("area_cm2", "width_mm", "depth_mm", "lateral_mm", "dy_mm")


def _band_means(m: pd.DataFrame, bands: Sequence[tuple[str, float, float]]) -> dict[tuple[str, str], dict[str, float]]:
    out: dict[tuple[str, str], dict[str, float]] = {}
    if m.empty:
        return out
    m = m.assign(structure=m.structure.str.replace(r"_(left|right)$", "", regex=True))
    for band, lo, hi in bands:
        sub = m[(m.z_rel >= lo) & (m.z_rel < hi)]
        for name, g in sub.groupby("structure"):
            out[(band, str(name))] = {c: float(g[c].mean()) if c in g else np.nan for c in _STRUCT_METRICS}
    return out


def compare_structures(
    real: pd.DataFrame, phantoms: Sequence[pd.DataFrame], bands: Sequence[tuple[str, float, float]] = UPPER_BANDS
) -> pd.DataFrame:
    """Band means of :func:`structure_metrics` (left and right sides of kidneys and lungs pooled): real against
    phantom mean [min-max]. One row per (structure, band) that the real scan holds."""
    r = _band_means(real, bands)
    ps = [_band_means(p, bands) for p in phantoms]
    rows = []
    for key, rv in sorted(r.items(), key=lambda kv: (kv[0][1], [b[0] for b in bands].index(kv[0][0]))):
        row: dict[str, object] = {"structure": key[1], "band": key[0]}
        for c in _STRUCT_METRICS:
            vals = np.array([p[key][c] if key in p else np.nan for p in ps], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            row[f"real_{c}"] = rv[c]
            row[f"phantom_{c}"] = float(vals.mean()) if vals.size else np.nan
            row[f"phantom_{c}_min"] = float(vals.min()) if vals.size else np.nan
            row[f"phantom_{c}_max"] = float(vals.max()) if vals.size else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


# ---- report ----------------------------------------------------------------------------------------------------------
def _cell(row: pd.Series, col: str, fmt: str = "{:.1f}") -> str:
    real, mean = row[f"real_{col}"], row[f"phantom_{col}"]
    if not np.isfinite(mean):
        return f"{fmt.format(real) if np.isfinite(real) else '-'} / -"
    lo, hi = row[f"phantom_{col}_min"], row[f"phantom_{col}_max"]
    flag = " **out**" if np.isfinite(real) and not (lo <= real <= hi) else ""
    real_s = fmt.format(real) if np.isfinite(real) else "-"
    return f"{real_s} / {fmt.format(mean)} [{fmt.format(lo)}-{fmt.format(hi)}]{flag}"


def format_upper_report(muscles: pd.DataFrame, structures: pd.DataFrame, info: dict[str, object]) -> str:
    """Markdown tables: real / phantom mean [min-max] per band; ``**out**`` marks a real value outside the
    phantom's range."""
    lines = [
        f"Real: discs (mm along z) {info['discs_mm']}, level height {info['level_mm']:.1f} mm.",
        "",
        "| muscle | band | area (cm^2) | lateral (mm) | AP (mm) | semi-major (mm) | semi-minor (mm) |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in muscles.iterrows():
        cells = [_cell(r, c) for c in ("area_cm2", "lateral_mm", "dy_mm", "semi_major_mm", "semi_minor_mm")]
        lines.append(f"| {SHORT_NAME[r.muscle]} | {r.band} | " + " | ".join(cells) + " |")
    if not structures.empty:
        lines += [
            "",
            "| structure | band | area (cm^2) | width (mm) | depth (mm) | lateral (mm) | AP (mm) |",
            "|---|---|---|---|---|---|---|",
        ]
        for _, r in structures.iterrows():
            cells = [_cell(r, c) for c in _STRUCT_METRICS]
            lines.append(f"| {r.structure} | {r.band} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_upper(real: Volume, phantom: Volume, out_png: str | Path, z_rels: Sequence[float] = (126, 160, 195)) -> Path:
    """Real CT (top) and a phantom subject's in-phase image (bottom) at the same spine-relative heights, same mm
    scale, target labels in red and vertebral bodies in cyan."""
    fig = Figure(figsize=(4.2 * len(z_rels), 7.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(z_rels), squeeze=False)
    for row, (vol, title) in enumerate(((real, "real CT (TotalSegmentator sample)"), (phantom, phantom.name))):
        sx, sy = vol.spacing[:2]
        xs, ys = np.arange(vol.label.shape[0]) * sx, np.arange(vol.label.shape[1]) * sy
        for ax, z in zip(axes[row], z_rels):
            k = vol.slice_at(z)
            im = vol.image[:, :, k].T
            # centre the view on the spine reference so that both rows show the same 240 x 200 mm
            ref = spine_reference(vol.label[:, :, k], (sx, sy)) or (xs.mean(), ys.mean())
            # CT: a soft-tissue window (HU); MR: the image's own range
            lo, hi = (-160.0, 240.0) if vol is real else (np.percentile(im, 2), np.percentile(im, 99.5))
            ax.imshow(im, origin="lower", cmap="gray", extent=(0, xs[-1] + sx, 0, ys[-1] + sy), vmin=lo, vmax=hi)
            ax.contour(xs, ys, vol.label[:, :, k].T, levels=np.arange(0.5, 9), colors="r", linewidths=0.8)
            if "body" in vol.extra:
                ax.contour(xs, ys, vol.extra["body"][:, :, k].T, levels=[0.5], colors="c", linewidths=0.8)
            ax.set_xlim(ref[0] + 120, ref[0] - 120)  # radiological view: patient right on the image left
            ax.set_ylim(ref[1] - 60, ref[1] + 140)
            ax.set_title(f"{title}, z_rel {vol.z_rel[k]:.0f}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    return out


def main(
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    anatomy: str = "complete",
    geometry: str = "reference",
    real_dir: str | Path = TS_CT_DIR,
    out_png: str | Path | None = None,
) -> str:
    """Compare phantom subjects ``seeds`` (``anatomy``: "complete" or "default") with the TotalSegmentator CT
    sample at T12-L2; returns the Markdown report (real / phantom mean [min-max] per band). ``out_png``: a figure
    of the real sample beside the first seed at the L2 body, L1 body and T12/L1 disc."""
    seeds = [int(s) for s in (seeds if isinstance(seeds, (list, tuple)) else [seeds])]
    real = load_totalsegmentator_ct(real_dir)
    real_m = volume_metrics(real, None, muscles=UPPER_MUSCLES)
    real_s = structure_metrics(real)
    ph_m, ph_s = [], []
    for i, seed in enumerate(seeds):
        vol = _phantom_upper(seed, geometry, anatomy)
        ph_m.append(volume_metrics(vol, None, muscles=UPPER_MUSCLES))
        ph_s.append(structure_metrics(vol))
        if out_png is not None and i == 0:
            plot_upper(real, vol, out_png)
    muscles = compare_bands(real_m, ph_m, UPPER_BANDS)
    structures = compare_structures(real_s, ph_s)
    return format_upper_report(muscles, structures, real.info)


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(main))
