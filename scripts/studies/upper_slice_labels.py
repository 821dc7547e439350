"""How much of a label a network draws on a scan's uppermost slices, and how much of it lies on dark tissue.

Written for the real CHAOS in-phase/opposed-phase scan (``../shared/real-samples/chaos_t1dual_ipop``, 26 axial
slices of 9 mm from the liver dome to the pelvis, no labels): on its eight upper slices the lung bases lie beside
the spine, dark on the in-phase image, and a network never shown a lung labels them erector spinae. Dark is an
in-phase value under ``dark_fraction`` of the whole image's 99th percentile (0.15: lung and gas, below fat and
muscle on a T1-weighted in-phase image). Command (one ``--run_dirs`` folder per model, each an output folder of
``configs/inference.json`` on the same dataset)::

    python -m scripts.studies.upper_slice_labels \
        --image ../shared/real-samples/chaos_t1dual_ipop/chaos_mr11_inphase.nii.gz \
        --run_dirs chaos_shipped,chaos_candidate --subject chaos_mr11
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.grid import check_same_grid
from scripts.labels import label_value

__all__ = ["upper_slice_volumes", "main"]

#: ES+MF left and right, the labels the lung bases are taken for.
ES_MF_LABELS: tuple[int, int] = (
    label_value("erector_spinae_multifidus", "left"),
    label_value("erector_spinae_multifidus", "right"),
)


def upper_slice_volumes(
    seg_path: str | Path,
    image_path: str | Path,
    labels: Sequence[int] = ES_MF_LABELS,
    n_slices: int = 8,
    dark_fraction: float = 0.15,
) -> dict[str, float]:
    """Volume (mL) of ``labels`` on the ``n_slices`` most superior slices, and of its dark part.

    Args:
        seg_path: label map (NIfTI), on the image's grid.
        image_path: the in-phase image (NIfTI) the network read.
        labels: label values counted together.
        n_slices: how many slices, counted from the superior end of the volume's third axis (in world space).
        dark_fraction: a voxel is dark below this share of the image's 99th percentile.

    Returns:
        ``{"volume_ml", "dark_ml", "dark_share"}`` (``dark_share`` is NaN when the volume is 0).

    Raises:
        ValueError: the grids differ, the third axis is not the cranio-caudal one, or a parameter is out of range.
    """
    if n_slices < 1:
        raise ValueError(f"n_slices must be >= 1, got {n_slices}")
    if not 0.0 < dark_fraction < 1.0:
        raise ValueError(f"dark_fraction must lie in (0, 1), got {dark_fraction}")
    seg_img, img = nib.load(str(seg_path)), nib.load(str(image_path))
    try:
        check_same_grid(
            seg_img.shape, seg_img.affine, img.shape, img.affine, name_a=str(seg_path), name_b=str(image_path)
        )
    except ValueError as err:
        raise ValueError(
            f"{seg_path}: its grid differs from the image's; resample the label map onto it ({err})"
        ) from err
    axes = nib.aff2axcodes(img.affine)
    if axes[2] not in ("S", "I"):
        raise ValueError(f"{image_path}: third axis is {axes[2]}, not superior-inferior; reorient the image to axial")
    seg = np.asarray(seg_img.dataobj).astype(np.int16)
    image = np.asarray(img.dataobj, dtype=np.float32)
    n = min(n_slices, image.shape[2])
    top = slice(image.shape[2] - n, None) if axes[2] == "S" else slice(0, n)
    in_label = np.isin(seg[..., top], list(labels))
    dark = in_label & (image[..., top] < dark_fraction * float(np.percentile(image, 99)))
    voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000.0
    volume, dark_ml = float(in_label.sum()) * voxel_ml, float(dark.sum()) * voxel_ml
    return {"volume_ml": volume, "dark_ml": dark_ml, "dark_share": dark_ml / volume if volume else float("nan")}


def main(
    image: str,
    run_dirs: Sequence[str] | str,
    subject: str,
    n_slices: int = 8,
    dark_fraction: float = 0.15,
    out_csv: str | None = None,
) -> str:
    """One row per run folder (``<run_dir>/<subject>/<subject>_seg.nii.gz``); returns the table as text."""
    dirs = run_dirs.split(",") if isinstance(run_dirs, str) else list(run_dirs)
    rows = []
    for run_dir in dirs:
        seg = Path(run_dir) / subject / f"{subject}_seg.nii.gz"
        if not seg.is_file():
            raise FileNotFoundError(f"{seg}: no label map; run configs/inference.json with --output_dir {run_dir}")
        rows.append(
            {"run_dir": run_dir, **upper_slice_volumes(seg, image, n_slices=n_slices, dark_fraction=dark_fraction)}
        )
    table = pd.DataFrame(rows).round(3)
    if out_csv:
        table.to_csv(out_csv, index=False)
    return table.to_string(index=False)


if __name__ == "__main__":
    import fire

    fire.Fire(main)
