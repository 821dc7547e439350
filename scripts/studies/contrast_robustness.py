"""How a model's segmentation holds when the image it sees has another contrast than its training scans.

Why: the bundle will meet real Dixon scans from scanners and protocols it never saw. Their in-phase images differ
mostly in the muscle/fat signal ratio (flip angle, TR, field strength) and in the receive-coil profile, and some
users feed a fat-bright T1-weighted or a water image instead. A Dixon water/fat pair can synthesise each of these
exactly (any ``w_water * W + w_fat * F`` is a physically possible contrast, ``|W - F|`` the opposed-phase image), so
a phantom cohort with water and fat images gives a repeatable measure of transfer that one real scan cannot: Dice
per muscle as the contrast moves away from the training in-phase image.

The segmentation runs exactly as :func:`scripts.studies.evaluate_real_samples.segment` (inference.json's preprocessing,
network, sliding window, flip ensembling, inversion and largest component); only the network image changes.

With ``--coil_decay_mm D`` every contrast is scored twice: as mixed, and shaded by a posterior surface coil whose
gain falls as ``exp(-depth / D)`` from the body's posterior edge (no floor, no anterior coil; the profile of
:class:`scripts.transforms.acquisition.surface_coil.RandSurfaceCoil`, fixed rather than drawn), named
``<contrast>+coil<D>mm``. Real lumbar scans from a spine array can be that dark in front (on the MuscleMap sample
the psoas is 0.09-0.29 times as bright as ES+MF); this measures, where the truth is known, how a model holds muscle
that dark. It did not predict which models lose that sample's right psoas (docs/studies/training_history.md, "Does a
coil-shaded phantom show the lost psoas?").

Usage::

    python -m scripts.studies.contrast_robustness --dataset_dir phantom_val3 --ckpt_path models/model.pt \\
        [--datalist_key testing] [--max_subjects 5] [--contrasts in_phase,fat_0.05] [--coil_decay_mm 60] \\
        [--out_csv contrast.csv]
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.data import MetaTensor
from scripts.configuration.values import overrides_from_cli
from scripts.evaluation.segmentation_metrics import compute_label_metrics
from scripts.labels import MUSCLES
from scripts.transforms.acquisition.surface_coil import RandSurfaceCoil

__all__ = ["CONTRASTS", "mix_contrast", "coil_shaded", "evaluate_contrasts", "summarise"]

logger = logging.getLogger(__name__)

#: name -> (water weight, fat weight) of ``w_water * W + w_fat * F``; ``None`` is the opposed-phase ``|W - F|``.
#: Muscle median over the image's 99th percentile on phantoms (docs/studies/real_scans.md): in_phase (the training
#: contrast) 0.25-0.38, fat_bright_0.5 0.14-0.27, fat_bright_0.2 0.07-0.20, fat_0.05 0.03-0.16, water 0.51-0.66;
#: the fat-bright real MuscleMap sample measures 0.013-0.073.
CONTRASTS: dict[str, tuple[float, float] | None] = {
    "in_phase": (1.0, 1.0),
    "fat_bright_0.5": (0.5, 1.0),
    "fat_bright_0.2": (0.2, 1.0),
    "fat_0.05": (0.05, 1.0),
    "water": (1.0, 0.1),
    "opposed": None,
}


def mix_contrast(water: np.ndarray, fat: np.ndarray, weights: tuple[float, float] | None) -> np.ndarray:
    """The contrast ``w_water * water + w_fat * fat`` (or ``|water - fat|`` for ``weights=None``).

    Args:
        water: water image, any shape, magnitude on the same scale as ``fat`` (as a Dixon reconstruction writes).
        fat: fat image, the shape of ``water``.
        weights: ``(w_water, w_fat)``, both finite and not negative, not both zero; ``None`` for opposed phase.

    Returns:
        float32 array of the input shape.
    """
    w = np.asarray(water, dtype=np.float32)
    f = np.asarray(fat, dtype=np.float32)
    if w.shape != f.shape:
        raise ValueError(f"water {w.shape} and fat {f.shape} differ in shape")
    if weights is None:
        return np.abs(w - f)
    ww, wf = (float(x) for x in weights)
    if not (np.isfinite(ww) and np.isfinite(wf)) or ww < 0 or wf < 0 or ww + wf == 0:
        raise ValueError(f"contrast weights must be finite, not negative and not both zero, not {weights!r}")
    return (ww * w + wf * f).astype(np.float32)


def coil_shaded(image: np.ndarray, affine: np.ndarray, decay_mm: float) -> np.ndarray:
    """``image`` (X, Y, Z) times a posterior surface-coil gain ``exp(-depth / decay_mm)``, depth in mm from the
    body's posterior edge along the patient's antero-posterior axis (found through ``affine``, so LPS or RAS storage
    alike); the gain is 1 at that edge and behind it. Returns float32 of the input shape."""
    if not np.isfinite(decay_mm) or decay_mm <= 0:
        raise ValueError(f"coil_decay_mm must be a positive number of mm, not {decay_mm!r}")
    coil = RandSurfaceCoil(prob=1.0, decay_range_mm=(decay_mm, decay_mm), floor_range=(0.0, 0.0), anterior_prob=0.0)
    img = MetaTensor(torch.as_tensor(np.asarray(image, dtype=np.float32))[None], affine=torch.as_tensor(affine))
    return coil(img)[0].numpy().astype(np.float32)


def _parse_contrasts(
    contrasts: Sequence[str] | Mapping[str, tuple[float, float] | None] | None,
) -> dict[str, tuple[float, float] | None]:
    if contrasts is None:
        return dict(CONTRASTS)
    if isinstance(contrasts, Mapping):
        return dict(contrasts)
    if isinstance(contrasts, str):
        contrasts = [c.strip() for c in contrasts.split(",") if c.strip()]
    unknown = [c for c in contrasts if c not in CONTRASTS]
    if unknown or not contrasts:
        raise ValueError(f"contrasts must be names from {sorted(CONTRASTS)}, not {list(contrasts)!r}")
    return {c: CONTRASTS[c] for c in contrasts}


def evaluate_contrasts(
    dataset_dir: str,
    ckpt_path: str,
    bundle_root: str = ".",
    datalist_key: str = "testing",
    max_subjects: int = 0,
    contrasts: Sequence[str] | Mapping[str, tuple[float, float] | None] | None = None,
    overrides: dict | None = None,
    coil_decay_mm: float = 0.0,
) -> pd.DataFrame:
    """Segment every subject under every contrast and score it against the subject's label map.

    Args:
        dataset_dir: a folder with ``datalist.json`` whose entries have ``water``, ``fat`` and ``label`` paths
            (relative to the folder), as ``python -m scripts.phantom cohort`` writes.
        ckpt_path: the weights to test (bare state_dict of inference.json's network).
        bundle_root: the bundle folder whose ``configs/inference.json`` defines network and inference.
        datalist_key: which list of the datalist.
        max_subjects: use the first N entries only (0: all).
        contrasts: names of :data:`CONTRASTS` (or a comma-separated string), or a mapping name -> weights.
        overrides: inference.json ids to replace.
        coil_decay_mm: > 0: each contrast also shaded by a posterior coil of this e-folding depth (mm), scored
            as ``<contrast>+coil<D>mm`` (see the module docstring); 0: not.

    Returns:
        long table, one row per contrast, subject, muscle and side (and the L/R mean), with Dice, RVD and HD95 in
        mm on the subject's native grid.
    """
    from scripts.studies.evaluate_real_samples import segment

    root = Path(dataset_dir)
    datalist = root / "datalist.json"
    if not datalist.is_file():
        raise FileNotFoundError(f"{datalist}: no datalist (write one with python -m scripts.phantom cohort)")
    entries = json.loads(datalist.read_text()).get(datalist_key)
    if not entries:
        raise ValueError(f"{datalist}: no entries under {datalist_key!r}")
    entries = entries[:max_subjects] if max_subjects else entries
    mixes = _parse_contrasts(contrasts)
    if coil_decay_mm < 0 or not np.isfinite(coil_decay_mm):
        raise ValueError(f"coil_decay_mm must be 0 (off) or a positive number of mm, not {coil_decay_mm!r}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="contrast_") as tmp:
        for i, e in enumerate(entries):
            missing = [k for k in ("water", "fat", "label") if k not in e]
            if missing:
                raise KeyError(
                    f"{datalist}: entry {i} ({e.get('subject', '?')}) has no {missing} "
                    "(contrasts are synthesised from water and fat)"
                )
            sid = e.get("subject", f"case{i}")
            w_img = nib.load(str(root / e["water"]))
            water = np.asarray(w_img.dataobj, dtype=np.float32)
            fat = np.asarray(nib.load(str(root / e["fat"])).dataobj, dtype=np.float32)
            ref_img = nib.load(str(root / e["label"]))
            ref = np.asarray(ref_img.dataobj).astype(np.int32)
            images = {}
            for name, weights in mixes.items():
                images[name] = mix_contrast(water, fat, weights)
                if coil_decay_mm > 0:
                    images[f"{name}+coil{coil_decay_mm:g}mm"] = coil_shaded(images[name], w_img.affine, coil_decay_mm)
            for name, image in images.items():
                path = Path(tmp) / f"{sid}_{name}.nii.gz"
                nib.save(nib.Nifti1Image(image, w_img.affine, w_img.header), str(path))
                pred, _ = segment(path, ckpt_path, bundle_root, overrides)
                m = compute_label_metrics(pred, ref, ref_img.header.get_zooms()[:3])
                m.insert(0, "subject", sid)
                m.insert(0, "contrast", name)
                rows.append(m)
                logger.info("%s %s: mean Dice %.3f", sid, name, m[m.side == "mean"].dice.mean())
    return pd.concat(rows, ignore_index=True)


def summarise(table: pd.DataFrame) -> str:
    """Markdown: mean Dice per contrast and muscle (L/R mean), and the mean HD95, contrasts in table order."""
    mean = table[table.side == "mean"]
    lines = [
        "| contrast | " + " | ".join(f"Dice {m}" for m in MUSCLES) + " | HD95 mm (all) |",
        "|---" * (len(MUSCLES) + 2) + "|",
    ]
    for c in dict.fromkeys(mean.contrast):
        t = mean[mean.contrast == c]
        dices = [t[t.muscle == m].dice.mean() for m in MUSCLES]
        hd = t.hd95_mm.replace(np.inf, np.nan)
        n_inf = int(np.isinf(t.hd95_mm).sum())
        hd_txt = f"{hd.mean():.1f}" + (f" ({n_inf} missed)" if n_inf else "")
        lines.append(f"| {c} | " + " | ".join(f"{d:.3f}" for d in dices) + f" | {hd_txt} |")
    return "\n".join(lines)


def main(
    dataset_dir: str,
    ckpt_path: str = "models/model.pt",
    bundle_root: str = ".",
    datalist_key: str = "testing",
    max_subjects: int = 0,
    contrasts: str | None = None,
    out_csv: str | None = None,
    overrides: str | dict | None = None,
    coil_decay_mm: float = 0.0,
) -> str:
    """Command line: evaluate, print the summary and optionally write the long table (refuses to overwrite).

    ``overrides``: inference.json ids to replace, as a JSON object (e.g. ``'{"adapt_batch_norm": false}'``)."""
    if out_csv and Path(out_csv).exists():
        raise FileExistsError(f"{out_csv} exists; choose another --out_csv")
    table = evaluate_contrasts(
        dataset_dir,
        ckpt_path,
        bundle_root,
        datalist_key,
        max_subjects,
        contrasts,
        overrides_from_cli(overrides),
        coil_decay_mm,
    )
    if out_csv:
        table.to_csv(out_csv, index=False)
    return summarise(table)


if __name__ == "__main__":
    import fire

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(main))
