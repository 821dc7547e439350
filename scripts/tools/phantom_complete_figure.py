"""Figure and tables of the anatomy-complete phantom against the real samples (docs/guides/phantom.md).

Writes ``phantom_complete_vs_real.png``: axial slices at L2, L3, L4 and the upper sacrum (pelvis) of the default
phantom, the anatomy-complete phantom (in-phase with target contours, and its tissue-id map) and a real scan at the
same level: the CHAOS in-phase (L2, L3; levels assigned by eye, see ``CHAOS_SLICES``) and the MuscleMap sample (L4,
upper sacrum; levels from its discs, ``phantom_real_volumes.load_real_sample``). Prints Markdown tables: per
vertebral band, target areas and positions of both phantoms against the MuscleMap sample's labels (the measures of
``phantom_real_measures``), and the psoas area per level from L1 to L5 on the phantoms.

Usage::

    .venv/bin/python -m scripts.tools.phantom_complete_figure --seeds='[0,1,2,3,4]' --out_dir=docs/images
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scripts.phantom import Acquisition, generate_subject  # noqa: E402
from scripts.studies.phantom_real_measures import (  # noqa: E402
    BANDS,
    DISC_CENTRE_REL,
    SHORT_NAME,
    Volume,
    band_summary,
    compare_bands,
    volume_metrics,
)
from scripts.studies.phantom_real_volumes import load_real_sample, phantom_anatomy  # noqa: E402

__all__ = ["CHAOS_SLICES", "LEVEL_ROWS", "complete_volume", "psoas_per_level", "plot_levels", "main"]

CHAOS_PATH = Path(__file__).resolve().parents[3] / "shared/real-samples/chaos_t1dual_ipop/chaos_mr11_inphase.nii.gz"
#: CHAOS slices (RAS canonical index) shown for the levels the MuscleMap sample does not cover, chosen by eye: the
#: kidneys' lower poles with a small psoas (~L3) and the renal hilum with the renal vessels (~L2). No labels.
CHAOS_SLICES: dict[str, int] = {"L2": 4, "L3": 1}
#: figure rows: level name -> z_rel (mm above the L5/S1 disc for a 36-mm level): mid-body of L2, L3, L4, upper S1.
LEVEL_ROWS: dict[str, float] = {"L2": 126.5, "L3": 90.5, "L4": 54.5, "pelvis (S1)": -14.0}
#: phantom-only bands above the MuscleMap sample: vertebral bodies L1-L5 (z_rel of body centre +- 13.5 mm).
BODY_BANDS: tuple[tuple[str, float, float], ...] = tuple(
    (f"L{5 - k} body", 5.5 + 36 * k, 31.5 + 36 * k) for k in range(4, -1, -1)
)


def complete_volume(seed: int, geometry: str = "reference", anatomy: str = "complete") -> Volume:
    """Phantom subject ``seed`` (RAS, full coverage, no bias) as a ``phantom_real_measures.Volume`` whose ``z_rel``
    is its exact spine-relative slice position; ``extra["tissue"]`` holds the tissue-id map (complete anatomy)."""
    subj = generate_subject(seed, Acquisition.preset(geometry, bias=0.0), anatomy=anatomy)
    anat = phantom_anatomy(seed, subj.subject_id)
    aff = subj.affine
    zw = aff[2, 2] * np.arange(subj.images["label"].shape[2]) + aff[2, 3]
    spacing = tuple(float(v) for v in np.sqrt((aff[:3, :3] ** 2).sum(0)))
    extra = {"tissue": subj.images["tissue"]} if "tissue" in subj.images else {}
    info = {
        "seed": seed,
        "sex": anat.sex,
        "bmi": anat.bmi,
        "height_factor": anat.height_factor,
        "width_factor": anat.width_factor,
        "origin": aff[:3, 3].copy(),
    }
    return Volume(
        subj.subject_id,
        subj.images["inphase"].astype(np.float32),
        subj.images["label"],
        spacing,
        zw - float(anat.z(DISC_CENTRE_REL["L5/S1"])),
        (zw - anat.offset_mm[2]) / anat.height_factor,
        extra=extra,
        info=info,
    )  # type: ignore[arg-type]


def psoas_per_level(metrics: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Psoas area (cm^2, mean of left and right) per vertebral body L1-L5: mean, min and max over subjects."""
    rows = []
    for band, _, _ in BODY_BANDS:
        vals = []
        for m in metrics:
            b = band_summary(m[m.muscle == "psoas"], BODY_BANDS)
            vals.append(float(b[b.band == band].area_cm2.mean()))
        rows.append(
            {"band": band, "mean": float(np.mean(vals)), "min": float(np.min(vals)), "max": float(np.max(vals))}
        )
    return pd.DataFrame(rows)


def _show(
    ax,
    img2d: np.ndarray,
    spacing: tuple[float, float],
    centre: tuple[float, float],
    title: str,
    cmap: str = "gray",
    label2d: np.ndarray | None = None,
    vmax: float | None = None,
) -> None:
    """Axial slice in radiological view (patient right on the left, anterior up), 360 x 280 mm around ``centre``."""
    nx, ny = img2d.shape
    ext = (0.0, nx * spacing[0], 0.0, ny * spacing[1])
    # ids are shown modulo 20 on a fixed 20-colour map, so a colour means the same id group in every panel
    kw = (
        dict(cmap=cmap, interpolation="nearest", vmin=-0.5, vmax=19.5)
        if cmap != "gray"
        else dict(cmap="gray", vmin=0, vmax=vmax)
    )
    ax.imshow(img2d.T, origin="lower", extent=ext, **kw)
    if label2d is not None:
        xs = (np.arange(nx) + 0.5) * spacing[0]
        ys = (np.arange(ny) + 0.5) * spacing[1]
        ax.contour(xs, ys, label2d.T, levels=np.arange(0.5, 9.5), colors="red", linewidths=0.6)
    ax.set_xlim(centre[0] + 180, centre[0] - 180)
    ax.set_ylim(centre[1] - 150, centre[1] + 130)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _centre(label2d: np.ndarray, img2d: np.ndarray, spacing: tuple[float, float]) -> tuple[float, float]:
    """In-plane centre (mm, array frame): midline from the ES+MF labels, else the image's bright-mass centroid."""
    es = np.argwhere((label2d == 7) | (label2d == 8))
    body = np.argwhere(img2d > 0.3 * np.percentile(img2d, 99))
    x = es[:, 0].mean() if es.size else body[:, 0].mean()
    return float(x * spacing[0]), float(body[:, 1].mean() * spacing[1])


def plot_levels(default: Volume, complete: Volume, real: Volume, out_png: str | Path) -> None:
    """The 4 x 4 figure (rows ``LEVEL_ROWS``; columns default phantom, complete phantom, its tissue map, real)."""
    chaos = nib.as_closest_canonical(nib.load(str(CHAOS_PATH)))
    chaos_img = np.asarray(chaos.dataobj, dtype=np.float32)
    chaos_sp = tuple(float(v) for v in chaos.header.get_zooms()[:2])
    fig, axs = plt.subplots(len(LEVEL_ROWS), 4, figsize=(16, 3.4 * len(LEVEL_ROWS)))
    cmap = plt.get_cmap("tab20", 20)
    for i, (name, z) in enumerate(LEVEL_ROWS.items()):
        for j, vol in enumerate((default, complete)):
            k = vol.slice_at(z)
            c = _centre(vol.label[:, :, k], vol.image[:, :, k], vol.spacing[:2])
            vmax = float(np.percentile(vol.image, 99.5))
            _show(
                axs[i, j],
                vol.image[:, :, k],
                vol.spacing[:2],
                c,
                f"{'default' if j == 0 else 'complete'} phantom {vol.name}, {name}",
                label2d=vol.label[:, :, k],
                vmax=vmax,
            )
        k = complete.slice_at(z)
        c = _centre(complete.label[:, :, k], complete.image[:, :, k], complete.spacing[:2])
        tis = complete.extra["tissue"][:, :, k]
        _show(
            axs[i, 2],
            np.ma.masked_where(tis == 0, tis % 20),
            complete.spacing[:2],
            c,
            f"complete phantom: tissue ids, {name}",
            cmap=cmap,
        )
        if name in CHAOS_SLICES:
            img = chaos_img[:, :, CHAOS_SLICES[name]]
            _show(
                axs[i, 3],
                img,
                chaos_sp,
                _centre(np.zeros(img.shape, np.uint8), img, chaos_sp),
                f"real: CHAOS in-phase slice {CHAOS_SLICES[name]} (~{name}, by eye)",
                vmax=float(np.percentile(chaos_img, 99.5)),
            )
        else:
            k = real.slice_at(z)
            _show(
                axs[i, 3],
                real.image[:, :, k],
                real.spacing[:2],
                _centre(real.label[:, :, k], real.image[:, :, k], real.spacing[:2]),
                f"real: MuscleMap slice {k} (z_rel {real.z_rel[k]:.0f}), {name}",
                label2d=real.label[:, :, k],
                vmax=float(np.percentile(real.image, 99.5)),
            )
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)


def _table(table: pd.DataFrame, default_table: pd.DataFrame) -> list[str]:
    lines = [
        "| muscle | band | real area | complete area | default area | real lateral | complete lateral | "
        "real AP | complete AP |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    d = default_table.set_index(["muscle", "band"])
    for _, r in table.iterrows():
        dr = d.loc[(r.muscle, r.band)]

        def rng(p: pd.Series | pd.DataFrame, col: str, fmt: str = "{:.1f}") -> str:
            m = p[f"phantom_{col}"]
            if not np.isfinite(m):
                return "-"
            return f"{fmt.format(m)} [{fmt.format(p[f'phantom_{col}_min'])}-{fmt.format(p[f'phantom_{col}_max'])}]"

        def f(v: float, fmt: str = "{:.1f}") -> str:
            return fmt.format(v) if np.isfinite(v) else "-"

        lines.append(
            f"| {SHORT_NAME[r.muscle]} | {r.band} | {f(r.real_area_cm2)} | {rng(r, 'area_cm2')} | "
            f"{rng(dr, 'area_cm2')} | {f(r.real_lateral_mm, '{:.0f}')} | {rng(r, 'lateral_mm', '{:.0f}')} | "
            f"{f(r.real_dy_mm, '{:.0f}')} | {rng(r, 'dy_mm', '{:.0f}')} |"
        )
    return lines


def main(
    seeds: Sequence[int] = (0, 1, 2, 3, 4), geometry: str = "reference", out_dir: str | Path | None = "docs/images"
) -> str:
    """Generate default and complete phantoms for ``seeds``, compare with the real MuscleMap sample, draw the
    figure (first seed) into ``out_dir`` and return the Markdown tables."""
    seeds = [int(s) for s in (seeds if isinstance(seeds, (list, tuple)) else [seeds])]
    real = load_real_sample()
    real_m = volume_metrics(real, None)
    metrics: dict[str, list[pd.DataFrame]] = {"complete": [], "default": []}
    first: dict[str, Volume] = {}
    for seed in seeds:
        for anatomy in ("complete", "default"):
            vol = complete_volume(seed, geometry, anatomy)
            metrics[anatomy].append(volume_metrics(vol, None))
            first.setdefault(anatomy, vol)
        del vol
    table = compare_bands(real_m, metrics["complete"])
    default_table = compare_bands(real_m, metrics["default"])
    if out_dir is not None:
        plot_levels(first["default"], first["complete"], real, Path(out_dir) / "phantom_complete_vs_real.png")
    lines = [
        f"Seeds {seeds}, geometry {geometry}; bands as in `phantom_real_measures.BANDS` "
        f"({', '.join(b for b, _, _ in BANDS)}).",
        "",
    ] + _table(table, default_table)
    lines += ["", "| psoas area per side (cm^2) | complete phantom | default phantom |", "|---|---|---|"]
    pc, pd_ = psoas_per_level(metrics["complete"]), psoas_per_level(metrics["default"])
    for (_, a), (_, b) in zip(pc.iterrows(), pd_.iterrows()):
        lines.append(
            f"| {a.band} | {a['mean']:.1f} [{a['min']:.1f}-{a['max']:.1f}] | "
            f"{b['mean']:.1f} [{b['min']:.1f}-{b['max']:.1f}] |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import fire

    fire.Fire(main)
