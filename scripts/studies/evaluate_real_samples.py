"""Run the network on the real scans in ``../shared/real-samples`` and compare with their (model-made) labels.

The real samples are single-contrast images (no Dixon set), so this runs the segmentation part of inference.json
(same preprocessing, network, sliding window, inversion, largest component) directly, then maps the samples'
label conventions onto ours:

- MuscleMap abdomen model (sub0001): multifidus + erector spinae -> ES+MF, psoas, quadratus lumborum (no iliacus);
- TotalSegmentator ``total_mr``: autochthon -> ES+MF, iliopsoas -> psoas + iliacus merged (it cannot be split).

Usage: ``python -m scripts.studies.evaluate_real_samples --shared_dir ../shared --ckpt_path models/model.pt
[--out_csv real.csv] [--out_dir real_qc]``; ``out_dir`` receives, per sample, the predicted label map
(``<sample>_pred.nii.gz``, input grid) and two QC montages to look at: ``<sample>_qc_pred.png`` (our labels) and
``<sample>_qc_reference.png`` (the sample's labels mapped onto ours: psoas + iliacus of TotalSegmentator shown as
psoas).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from scripts.configuration.values import overrides_from_cli
from scripts.evaluation.segmentation_metrics import dice
from scripts.evaluation.surface_distance import hausdorff_distance
from scripts.labels import MUSCLE_VALUES

__all__ = ["SAMPLES", "segment", "evaluate", "reference_in_our_labels"]

logger = logging.getLogger(__name__)

#: sample -> (image, label, {structure: (our labels, their labels)})
SAMPLES = {
    "musclemap_lumbar_sub0001": (
        "musclemap_lumbar_sub0001/sub0001_lumbar_axial_mri.nii.gz",
        "musclemap_lumbar_sub0001/sub0001_lumbar_axial_mri_dseg_musclemap_abdomen_v0.nii.gz",
        {
            "psoas_left": ([1], [6]),
            "psoas_right": ([2], [5]),
            "quadratus_lumborum_left": ([5], [8]),
            "quadratus_lumborum_right": ([6], [7]),
            "erector_spinae_multifidus_left": ([7], [2, 4]),
            "erector_spinae_multifidus_right": ([8], [1, 3]),
        },
    ),
    "totalsegmentator_mr_sample": (
        "totalsegmentator_mr_sample/example_mr_sm.nii.gz",
        "totalsegmentator_mr_sample/example_seg_mr.nii.gz",
        {
            "erector_spinae_multifidus_left": ([7], [46]),
            "erector_spinae_multifidus_right": ([8], [47]),
            "psoas+iliacus_left": ([1, 3], [48]),
            "psoas+iliacus_right": ([2, 4], [49]),
        },
    ),
}


def segment(
    image_path: str | Path,
    ckpt_path: str | Path,
    bundle_root: str | Path = ".",
    overrides: dict | None = None,
    network_key: str = "network_def",
    inferer_key: str = "inferer",
    largest_component_labels: Sequence[int] = MUSCLE_VALUES,
    weigh_muscles: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Label map (input grid) of one image by the bundle's network and inference settings.

    Args:
        image_path: a 3-D NIfTI image (used as the network's in-phase input).
        ckpt_path: the weights (bare state_dict).
        bundle_root: the bundle folder (its configs/inference.json gives network and settings).
        overrides: inference.json ids to replace, e.g. ``{"working_spacing": [2, 2, 4]}``.
        network_key, inferer_key: the inference.json nodes of the network and its inferer (the spine network:
            ``spine_network_def``, ``spine_inferer``).
        largest_component_labels: labels reduced to their largest connected piece (none: every piece kept).
        weigh_muscles: apply inference.json's ``background_weight`` before the argmax, as the inference does (the
            muscle network's channels; off for the spine network).

    Returns:
        (label map on the image's grid, the image's affine).
    """
    from monai.bundle import ConfigParser
    from monai.transforms import (
        Activationsd,
        AsDiscreted,
        Compose,
        EnsureChannelFirstd,
        Invertd,
        LoadImaged,
        Orientationd,
        ScaleIntensityRangePercentilesd,
        Spacingd,
    )
    from scripts.pipeline.background_weight import BackgroundWeightd
    from scripts.pipeline.postprocess import KeepLargestComponentPerLabeld

    p = ConfigParser()
    p.read_config(str(Path(bundle_root) / "configs" / "inference.json"))
    p["bundle_root"] = str(bundle_root)
    p.update(overrides or {})
    net = p.get_parsed_content(network_key)
    net.load_state_dict(torch.load(ckpt_path, map_location="cpu", weights_only=True))
    net.eval()
    spacing = p.get_parsed_content("working_spacing")
    pre = Compose(
        [
            LoadImaged("image", image_only=True),
            EnsureChannelFirstd("image"),
            Orientationd("image", "RAS"),
            Spacingd("image", spacing, mode="bilinear"),
            ScaleIntensityRangePercentilesd("image", 1, 99, 0.0, 1.0, clip=True),
        ]
    )
    d = pre({"image": str(image_path)})
    with torch.no_grad():
        d["pred"] = p.get_parsed_content(inferer_key)(d["image"][None].float(), net)[0]
    post = [Activationsd("pred", softmax=True)]
    if weigh_muscles:
        post.append(BackgroundWeightd("pred", weight=p.get_parsed_content("background_weight")))
    post += [
        Invertd("pred", transform=pre, orig_keys="image", nearest_interp=False),
        AsDiscreted("pred", argmax=True),
    ]
    if len(largest_component_labels):
        post.append(KeepLargestComponentPerLabeld("pred", labels=largest_component_labels))
    d = Compose(post)(d)
    img = nib.load(str(image_path))
    return np.asarray(d["pred"][0].numpy(), dtype=np.uint8), img.affine


def reference_in_our_labels(ref: np.ndarray, mapping: dict[str, tuple[list[int], list[int]]]) -> np.ndarray:
    """The sample's label map rewritten in our label values (the first of ``ours`` for each structure)."""
    out = np.zeros(ref.shape, dtype=np.uint8)
    for ours, theirs in mapping.values():
        out[np.isin(ref, theirs)] = ours[0]
    return out


def evaluate(
    shared_dir: str = "../shared",
    ckpt_path: str = "models/model.pt",
    bundle_root: str = ".",
    out_csv: str | None = None,
    overrides: dict | None = None,
    out_dir: str | None = None,
) -> pd.DataFrame:
    """Dice and HD95 (mm) per structure for each real sample present.

    Args:
        shared_dir: the folder holding ``real-samples/``.
        ckpt_path: the weights to run.
        bundle_root: the bundle folder (configs/inference.json).
        out_csv: where to write the table (optional).
        overrides: inference.json ids to replace.
        out_dir: where to write label maps and QC pictures (optional; refused if it already holds them).
    """
    from scripts.reporting.montage import qc_montage

    rows = []
    root = Path(shared_dir) / "real-samples"
    qc = Path(out_dir) if out_dir else None
    if qc is not None:
        clash = sorted(qc.glob("*_pred.nii.gz")) + sorted(qc.glob("*_qc_*.png"))
        if clash:
            raise FileExistsError(f"{qc}: holds earlier results ({clash[0].name}); choose another --out_dir")
        qc.mkdir(parents=True, exist_ok=True)
    for name, (img_rel, lab_rel, mapping) in SAMPLES.items():
        if not (root / img_rel).is_file():
            logger.warning("%s: not found under %s", name, root)
            continue
        pred, affine = segment(root / img_rel, ckpt_path, bundle_root, overrides)
        ref_img = nib.load(str(root / lab_rel))
        ref = np.asarray(ref_img.dataobj).astype(np.int32)
        if qc is not None:
            image = np.asarray(nib.load(str(root / img_rel)).dataobj, dtype=np.float32)
            nib.save(nib.Nifti1Image(pred, affine), str(qc / f"{name}_pred.nii.gz"))
            qc_montage(image, affine, pred, qc / f"{name}_qc_pred.png", title=f"{name}: prediction ({ckpt_path})")
            qc_montage(
                image,
                affine,
                reference_in_our_labels(ref, mapping),
                qc / f"{name}_qc_reference.png",
                label_affine=ref_img.affine,
                title=f"{name}: reference labels (model-made), in our labels",
            )
        spacing = ref_img.header.get_zooms()[:3]
        for struct, (ours, theirs) in mapping.items():
            p, r = np.isin(pred, ours), np.isin(ref, theirs)
            rows.append(
                dict(
                    sample=name,
                    structure=struct,
                    dice=dice(p, r),
                    hd95_mm=hausdorff_distance(p, r, spacing, percentile=95),
                    vol_pred_ml=p.sum() * np.prod(spacing) / 1000,
                    vol_ref_ml=r.sum() * np.prod(spacing) / 1000,
                )
            )
    df = pd.DataFrame(rows)
    if out_csv:
        df.to_csv(out_csv, index=False)
    return df


def main(
    shared_dir: str = "../shared",
    ckpt_path: str = "models/model.pt",
    bundle_root: str = ".",
    out_csv: str | None = None,
    overrides: str | dict | None = None,
    out_dir: str | None = None,
) -> str:
    """Command line: :func:`evaluate` with the same arguments; the table is printed (fire would page a DataFrame).

    ``--overrides`` may be a JSON object (``'{"adapt_batch_norm": false}'``). The arguments are spelled out (not
    ``**kwargs``) so that fire answers ``--help`` instead of passing it on."""
    table = evaluate(
        shared_dir=shared_dir,
        ckpt_path=ckpt_path,
        bundle_root=bundle_root,
        out_csv=out_csv,
        overrides=overrides_from_cli(overrides),
        out_dir=out_dir,
    )
    return table.to_string(index=False, float_format=lambda v: f"{v:.3f}")


if __name__ == "__main__":
    import fire

    logging.basicConfig(level=logging.INFO)
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(main))
