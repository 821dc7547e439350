"""What the 2 mm working grid alone costs the FF and Dice, with a perfect network (issue #21).

The network decides on the working grid (2 x 2 x 4 mm) and its probabilities come back to the input grid by
trilinear interpolation and an argmax (:mod:`scripts.pipeline.inverted_argmax`). Even a network that reproduced
its training target exactly would then miss a native voxel here and there at every border. This study measures
that floor: for each phantom subject it builds the label map such a perfect network would give, measures each side's
mean FF on the run's own FF map with the FF step's default border trim, and compares it with a reference over the
true label: ``reference="image"`` (default) the plain mean of the same FF map over the true label, which is what
``scripts.evaluation.evaluate_phantom`` calls the truth (the phantom's ``ff_mean_pct``: the images' own FF); or
``reference="exact"`` the phantom's exact tissue FF (``ff_true``), which adds the FF map's own error (noise, partial
volume), as :mod:`scripts.studies.border_trim_variants` measures. The labels:

- ``truth_plain``: the true label on the input grid, the plain mean (zero against the image reference; the FF
  map's own error against the exact one);
- ``truth``: the true label on the input grid with the trim (adds the trim's error, still no resampling);
- ``target``: the training target (the true label resampled to the working grid by nearest neighbour, as
  ``configs/train.json`` does), one-hot, brought back as the inference brings probabilities back;
- ``soft``: the true label's one-hot smoothed over a working voxel (a Gaussian of the box's standard deviation,
  ``(working - native) / sqrt(12)`` per axis) and resampled linearly, the best a calibrated network could give;
- ``network``: the run's own label map, for comparison on the same FF map and sides.

::

    python -m scripts.studies.working_grid_ceiling --dataset_dir phantom_train_crest \
        --run_dir <run>/phantom_train_crest/predict/out --key validation --out_csv ceiling.csv [--reference exact]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, Spacing, SpatialResample
from nibabel.affines import voxel_sizes
from scipy import ndimage
from scripts.evaluation.segmentation_metrics import dice
from scripts.labels import MUSCLE_VALUES
from scripts.studies.border_trim_variants import finished_subjects, side_errors

__all__ = ["WORKING_SPACING", "LABELS", "to_working_and_back", "soft_working_and_back", "subject_rows", "run_rows"]

WORKING_SPACING: tuple[float, ...] = tuple(
    json.loads((Path(__file__).resolve().parents[2] / "configs" / "inference.json").read_text())["working_spacing"]
)
"""The inference's working grid in mm (RAS axes), read from ``configs/inference.json`` so that the two never differ."""

LABELS: tuple[str, ...] = ("truth_plain", "truth", "target", "soft", "network")

_CLASSES = 1 + len(MUSCLE_VALUES)


def _ras(array: np.ndarray, affine: np.ndarray) -> MetaTensor:
    return Orientation(axcodes="RAS")(MetaTensor(torch.as_tensor(array)[None], affine=torch.as_tensor(affine)))


def _one_hot(labels: torch.Tensor) -> torch.Tensor:
    """(1, X, Y, Z) labels -> (9, X, Y, Z) float32 one-hot of background and muscles 1-8 (other values background)."""
    lab = labels[0].long()
    lab = torch.where((lab >= 1) & (lab <= 8), lab, torch.zeros_like(lab))
    return torch.nn.functional.one_hot(lab, _CLASSES).permute(3, 0, 1, 2).float()


def _back(channels: MetaTensor, reference: MetaTensor) -> np.ndarray:
    """Channels on the working grid -> argmax labels on ``reference``'s grid, by trilinear interpolation."""
    back = SpatialResample(mode="bilinear", padding_mode="border", dtype=torch.float32)(
        channels, dst_affine=reference.affine, spatial_size=reference.shape[1:]
    )
    return torch.argmax(back, dim=0).numpy().astype(np.uint8)


def to_working_and_back(labels: MetaTensor, spacing: Sequence[float] = WORKING_SPACING) -> np.ndarray:
    """A perfect network's labels: nearest-neighbour target on the working grid, interpolated back and argmaxed.

    Args:
        labels: (1, X, Y, Z) RAS label map with its affine (mm).
        spacing: working grid spacing, mm.

    Returns:
        (X, Y, Z) uint8 labels on ``labels``' grid (muscles 1-8, 0 elsewhere).
    """
    target = Spacing(pixdim=tuple(spacing), mode="nearest")(labels)
    onehot = MetaTensor(_one_hot(target), affine=target.affine)
    return _back(onehot, labels)


def soft_working_and_back(labels: MetaTensor, spacing: Sequence[float] = WORKING_SPACING) -> np.ndarray:
    """A calibrated network's labels: each class's share of the working voxel, interpolated back and argmaxed.

    The share is approximated by a Gaussian of the working box's standard deviation over the native voxels
    (``sqrt(max(working^2 - native^2, 0) / 12)`` mm per axis), then linear resampling to the working grid.
    """
    native = voxel_sizes(np.asarray(labels.affine, dtype=np.float64))
    sigma = [math.sqrt(max(w * w - n * n, 0.0) / 12.0) / n for w, n in zip(spacing, native)]
    onehot = _one_hot(labels).numpy()
    smooth = np.stack([ndimage.gaussian_filter(c, sigma=sigma, mode="nearest") for c in onehot])
    shares = MetaTensor(torch.as_tensor(smooth), affine=labels.affine)
    working = Spacing(pixdim=tuple(spacing), mode="bilinear", padding_mode="border")(shares)
    return _back(working, labels)


def subject_rows(
    truth: np.ndarray,
    network: np.ndarray,
    ff_pct: np.ndarray,
    ff_true: np.ndarray,
    affine: np.ndarray,
    reference: str = "image",
) -> list[dict]:
    """Per side and label kind: FF error (pp, default trim, against the reference over the true label) and Dice.

    Args:
        truth: the phantom's true label map on the input grid.
        network: the run's label map on the same grid.
        ff_pct: the run's FF map in percent; ff_true: the exact voxel FF (fraction); affine: the grid's affine.
        reference: ``"image"`` (the FF map's plain mean over the true label) or ``"exact"`` (``ff_true``'s).
    """
    if reference not in ("image", "exact"):
        raise ValueError(f"reference must be 'image' or 'exact', got {reference!r}")
    if reference == "image":
        ff_true = np.asarray(ff_pct, dtype=np.float64) / 100.0
    t_ras = _ras(truth, affine)
    ras = [t_ras.numpy()[0]]
    for array in (network, ff_pct, ff_true):
        ras.append(_ras(array, affine).numpy()[0])
    truth_r, net_r, ff_r, ff_true_r = ras
    ras_affine = np.asarray(t_ras.affine, dtype=np.float64)
    muscles = np.where((truth_r >= 1) & (truth_r <= 8), truth_r, 0).astype(np.uint8)
    labels = {
        "truth_plain": muscles,
        "truth": muscles,
        "target": to_working_and_back(t_ras),
        "soft": soft_working_and_back(t_ras),
        "network": net_r.astype(np.uint8),
    }
    rows = []
    for kind, pred in labels.items():
        variant = None if kind == "truth_plain" else (0.7, 0.8)
        for row in side_errors(pred, truth_r, ff_r, ff_true_r, ras_affine, variants=[variant]):
            kept = {k: row[k] for k in ("label", "muscle", "side")}
            dsc = dice(pred == row["label"], truth_r == row["label"])
            rows.append({"label_kind": kind, **kept, "dice": dsc, "ff_error_pp": row["ff_error_pp"]})
    return rows


def run_rows(dataset_dir: str, run_dir: str, key: str = "testing", reference: str = "image") -> pd.DataFrame:
    """:func:`subject_rows` for every subject of the datalist's ``key`` with a finished result in ``run_dir``."""
    rows = []
    for subject, pred, truth, ff_pct, ff_true, affine in finished_subjects(dataset_dir, run_dir, key):
        rows += [{"subject": subject, **row} for row in subject_rows(truth, pred, ff_pct, ff_true, affine, reference)]
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per label kind and muscle (sides pooled): mean Dice, median and P95 |FF error|, mean FF error (pp)."""
    table = rows.assign(abs_error=rows.ff_error_pp.abs()).groupby(["label_kind", "muscle"], sort=False)
    out = table.agg(
        dice=("dice", "mean"),
        median_abs_pp=("abs_error", "median"),
        p95_abs_pp=("abs_error", lambda x: x.quantile(0.95)),
        bias_pp=("ff_error_pp", "mean"),
        sides=("ff_error_pp", "size"),
    ).reset_index()
    out["label_kind"] = pd.Categorical(out["label_kind"], list(LABELS), ordered=True)
    return out.sort_values(["label_kind", "muscle"]).reset_index(drop=True)


def main(
    dataset_dir: str, run_dir: str, out_csv: str | None = None, key: str = "testing", reference: str = "image"
) -> None:
    """Print the summary; with ``out_csv`` also write the per-side rows there."""
    rows = run_rows(dataset_dir, run_dir, key, reference)
    if out_csv:
        rows.to_csv(out_csv, index=False, float_format="%.4f")
    print(summary(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    import fire

    fire.Fire(main)
