"""The spine network on the real MR samples of ``../shared/real-samples``: where it draws bodies and sacrum.

None of the real samples has vertebral labels, and none shows the sacrum with the lumbar bodies, so there is no Dice
to give and the pipeline names none of their bodies (counting needs the sacrum). What can be checked is whether the
network's raw classes (1 vertebral body of any level, 2 sacrum) lie on the vertebrae and nowhere else: per sample,
the pieces of class 1 (connected in 3-D) with their height, volume and centre, the share of the body voxels in the
pieces that line up in one column (centre within ``column_mm`` of the bodies' median left-right and front-back
position), the sacrum volume, the naming record the pipeline would give, and a picture (a sagittal slice through the
column and three axial slices, bodies yellow, sacrum red) to look at.

Usage::

    python -m scripts.studies.spine_real_samples --shared_dir ../shared --out_dir spine_real
        [--spine_ckpt_path models/spine_model.pt]

Writes ``pieces.csv`` (one row per piece), ``samples.csv`` (one row per sample) and ``<sample>_spine.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage
from scripts.io.atomic import atomic_write_text
from scripts.quantification.vertebra_naming import count_bodies_from_sacrum
from scripts.studies.evaluate_real_samples import segment

__all__ = ["MR_SAMPLES", "body_pieces", "run"]

logger = logging.getLogger(__name__)

#: sample -> image (relative to ``real-samples``): the MR samples (the CT sample is not what the network reads)
MR_SAMPLES: dict[str, str] = {
    "musclemap_lumbar_sub0001": "musclemap_lumbar_sub0001/sub0001_lumbar_axial_mri.nii.gz",
    "totalsegmentator_mr_sample": "totalsegmentator_mr_sample/example_mr_sm.nii.gz",
    "chaos_t1dual_ipop": "chaos_t1dual_ipop/chaos_mr11_inphase.nii.gz",
}


def _voxel_ml(affine: np.ndarray) -> float:
    return abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0


def body_pieces(spine: np.ndarray, affine: np.ndarray, column_mm: float = 15.0) -> pd.DataFrame:
    """The connected pieces of the body class of a spine map, with their place in world coordinates.

    Args:
        spine: ``(X, Y, Z)`` map, 0 background, 1 vertebral body, 2 sacrum.
        affine: its voxel-to-world affine (RAS, mm).
        column_mm: a piece whose centre lies within this distance (left-right and front-back, mm) of the median
            centre of all body voxels is "in the column".

    Returns:
        One row per piece, largest first: ``volume_ml``, ``height_mm`` (its extent along the world S axis),
        ``centre_r_mm``, ``centre_a_mm``, ``centre_s_mm`` (RAS), ``off_column_mm`` and ``in_column``.
    """
    voxel_ml = _voxel_ml(affine)
    pieces, n = ndimage.label(spine == 1, structure=np.ones((3, 3, 3)))
    if n == 0:
        return pd.DataFrame(
            columns=["volume_ml", "height_mm", "centre_r_mm", "centre_a_mm", "centre_s_mm", "off_column_mm"]
        ).assign(in_column=pd.Series(dtype=bool))
    all_world = nib.affines.apply_affine(affine, np.argwhere(pieces > 0))
    median = np.median(all_world[:, :2], axis=0)
    rows = []
    for k, idx in enumerate(ndimage.find_objects(pieces), start=1):
        vox = np.argwhere(pieces[idx] == k) + [s.start for s in idx]
        world = nib.affines.apply_affine(affine, vox)
        centre = world.mean(axis=0)
        off = float(np.hypot(*(centre[:2] - median)))
        rows.append(
            {
                "volume_ml": len(vox) * voxel_ml,
                "height_mm": float(np.ptp(world[:, 2])),
                "centre_r_mm": float(centre[0]),
                "centre_a_mm": float(centre[1]),
                "centre_s_mm": float(centre[2]),
                "off_column_mm": off,
                "in_column": off <= column_mm,
            }
        )
    return pd.DataFrame(rows).sort_values("volume_ml", ascending=False, ignore_index=True)


def _picture(image: np.ndarray, spine: np.ndarray, affine: np.ndarray, title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = np.asarray(nib.as_closest_canonical(nib.Nifti1Image(image.astype(np.float32), affine)).dataobj)
    canonical = nib.as_closest_canonical(nib.Nifti1Image(spine.astype(np.uint8), affine))
    sp, zooms = np.asarray(canonical.dataobj), canonical.header.get_zooms()[:3]
    body = np.argwhere(sp == 1)
    x = int(np.median(body[:, 0])) if len(body) else sp.shape[0] // 2
    zs = np.unique(body[:, 2]) if len(body) else np.array([sp.shape[2] // 2])
    axial = [int(zs[int(q * (len(zs) - 1))]) for q in (0.1, 0.5, 0.9)]
    hi = float(np.percentile(img, 99.5)) or 1.0
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))

    def show(ax: Any, im: np.ndarray, lab: np.ndarray, aspect: float, name: str) -> None:
        ax.imshow(im.T, cmap="gray", origin="lower", vmin=0, vmax=hi, aspect=aspect)
        for value, colour in ((1, "yellow"), (2, "red")):
            if (lab == value).any():
                ax.contour((lab == value).T.astype(float), levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(name, fontsize=9)
        ax.axis("off")

    show(axes[0], img[x], sp[x], zooms[2] / zooms[1], f"sagittal x={x}")
    for ax, z in zip(axes[1:], axial, strict=True):
        show(ax, img[:, :, z], sp[:, :, z], zooms[1] / zooms[0], f"axial z={z}")
    fig.suptitle(f"{title}: spine network, bodies yellow, sacrum red (RAS, patient's right on the left)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def run(
    shared_dir: str = "../shared",
    out_dir: str = "spine_real",
    spine_ckpt_path: str = "models/spine_model.pt",
    bundle_root: str = ".",
    column_mm: float = 15.0,
) -> pd.DataFrame:
    """Run the spine network on every MR sample; write the tables and pictures; return the per-sample table."""
    root = Path(shared_dir) / "real-samples"
    ckpt = Path(spine_ckpt_path)
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: spine network weights not found; give --spine_ckpt_path")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    all_pieces, samples = [], []
    for name, rel in MR_SAMPLES.items():
        path = root / rel
        if not path.is_file():
            raise FileNotFoundError(f"{path}: real sample missing (is {shared_dir} the shared folder?)")
        spine, affine = segment(
            path,
            ckpt,
            bundle_root,
            network_key="spine_network_def",
            inferer_key="spine_inferer",
            largest_component_labels=(),
            weigh_muscles=False,
        )
        pieces = body_pieces(spine, affine, column_mm).assign(sample=name)
        _, record = count_bodies_from_sacrum(spine, affine)
        body_ml = float(pieces["volume_ml"].sum()) if len(pieces) else 0.0
        in_column_ml = float(pieces.loc[pieces["in_column"], "volume_ml"].sum()) if len(pieces) else 0.0
        samples.append(
            {
                "sample": name,
                "body_pieces": len(pieces),
                "pieces_in_column": int(pieces["in_column"].sum()) if len(pieces) else 0,
                "body_ml": body_ml,
                "body_share_in_column": in_column_ml / body_ml if body_ml else float("nan"),
                "sacrum_ml": float((spine == 2).sum()) * _voxel_ml(affine),
                "naming": record.status,
                "naming_reason": "; ".join(record.reasons),
            }
        )
        all_pieces.append(pieces)
        _picture(np.asarray(nib.load(str(path)).dataobj), spine, affine, name, out / f"{name}_spine.png")
        logger.info("%s: %d body pieces, naming %s", name, len(pieces), record.status)
    table = pd.DataFrame(samples)
    atomic_write_text(out / "samples.csv", table.to_csv(index=False, float_format="%.3f"))
    atomic_write_text(out / "pieces.csv", pd.concat(all_pieces).to_csv(index=False, float_format="%.2f"))
    return table


def main() -> None:
    import fire

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(run), serialize=lambda table: table.to_string(index=False))


if __name__ == "__main__":
    main()
