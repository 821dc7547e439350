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

The measurements are in :mod:`scripts.studies.phantom_real_measures`, the real sample and phantom subjects as compared
volumes in :mod:`scripts.studies.phantom_real_volumes`, the figures in :mod:`scripts.studies.phantom_real_figures`;
this module writes the report and is the command line.

Command line (``fire``)::

    .venv/bin/python -m scripts.studies.compare_phantom_real --seeds='[0,1,2,3,4]' --out_dir=docs/images
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scripts.studies.phantom_real_figures import plot_comparison, plot_gallery
from scripts.studies.phantom_real_measures import SHORT_NAME, Volume, compare_bands, compare_contrast, volume_metrics
from scripts.studies.phantom_real_volumes import REAL_SAMPLE_DIR, load_real_sample, phantom_volume

__all__ = ["format_report", "main"]


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
