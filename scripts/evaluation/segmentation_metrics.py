"""Segmentation metrics for the validation study: Dice, relative volume difference, surface distances in mm.

The paper (BMC Medical Imaging 2026, doi 10.1186/s12880-026-02329-9) compares the U-Net with a multi-atlas method
by Dice, relative volume difference (RVD) and Hausdorff distance per muscle and side, and reports the L/R mean.
This module gives those numbers for one case:

- pure functions on two binary masks (:func:`dice`, :func:`relative_volume_difference`, and
  :func:`compute_binary_metrics`, which adds the surface distances of :mod:`scripts.evaluation.surface_distance`:
  Hausdorff, HD95 and ASSD, all from one :func:`~scripts.evaluation.surface_distance.compute_surface_distances`);
- :func:`compute_label_metrics`, the long table for two label maps (one row per label plus the L/R mean per muscle),
  with names from :mod:`scripts.labels`;
- :func:`evaluate_label_files`, the thin NIfTI wrapper (also the ``fire`` command line);
- MONAI metric classes for ``evaluate.json`` that fill what MONAI 1.6 lacks: a signed
  :class:`RelativeVolumeDifferenceMetric` (MONAI has only the unsigned voxel-count ``AbsoluteVolumeDifferenceMetric``),
  and :class:`HausdorffDistanceMMMetric` / :class:`SurfaceDistanceMMMetric`, which take each image's spacing from
  its MetaTensor affine, because MONAI's ignite handlers call the metric without ``spacing`` (distances in voxels).

The surface and its distances are defined in :mod:`scripts.evaluation.surface_distance`.

Empty masks follow one rule, IEEE-like: a ratio ``x / 0`` with ``x != 0`` is ``+inf``, ``0 / 0`` is NaN, and the
distance to an empty set is ``+inf`` (the infimum over an empty set). Hence:

============================  ========  ============  ===============================
case                          Dice      RVD           HD, HD95, ASSD
============================  ========  ============  ===============================
both empty                    NaN       NaN           NaN
prediction empty, ref. not    0.0       -1.0          inf
reference empty, pred. not    0.0       +inf          inf
============================  ========  ============  ===============================

and the table carries the flags ``pred_empty`` and ``ref_empty`` so that none of these is mistaken for a
measurement. (MONAI agrees except for HD95 with exactly one empty mask, where it returns NaN; and MONAI's
``compute_dice`` gives 1.0 for both empty when ``ignore_empty=False``, NaN when ``True``.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.metrics import CumulativeIterationMetric, HausdorffDistanceMetric, SurfaceDistanceMetric
from monai.metrics.utils import do_metric_reduction, ignore_background
from monai.utils import MetricReduction
from scripts.evaluation.mask_checks import SpacingLike, check_pair, check_spacing
from scripts.evaluation.surface_distance import (
    compute_surface_distances,
    hausdorff_from_distances,
    mean_surface_from_distances,
)
from scripts.labels import ALL_LABELS, MUSCLES, VERTEBRAL_LABELS, label_value, muscle_and_side

__all__ = [
    "BinaryMetrics",
    "METRIC_COLUMNS",
    "dice",
    "relative_volume_difference",
    "compute_binary_metrics",
    "compute_label_metrics",
    "evaluate_label_files",
    "compute_relative_volume_difference",
    "RelativeVolumeDifferenceMetric",
    "spacing_from_meta",
    "HausdorffDistanceMMMetric",
    "SurfaceDistanceMMMetric",
]

logger = logging.getLogger(__name__)

#: Columns of :func:`compute_label_metrics`, in order.
METRIC_COLUMNS: tuple[str, ...] = (
    "label",
    "muscle",
    "side",
    "dice",
    "rvd",
    "hd_mm",
    "hd95_mm",
    "assd_mm",
    "vol_pred_ml",
    "vol_ref_ml",
    "pred_empty",
    "ref_empty",
)

#: the eight muscle label values (docs/design.md)
MUSCLE_LABELS: tuple[int, ...] = tuple(range(1, 9))


def dice(pred_mask: Any, ref_mask: Any) -> float:
    """Dice similarity coefficient ``2 |P ∩ R| / (|P| + |R|)`` (Dice 1945; Sørensen 1948).

    Returns:
        a value in [0, 1]; NaN when both masks are empty (0 / 0, undefined), 0.0 when exactly one is empty.

    Example:
        >>> dice(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]))
        0.5
    """
    p, r = check_pair(pred_mask, ref_mask)
    denom = int(p.sum()) + int(r.sum())
    if denom == 0:
        return float("nan")
    return 2.0 * int(np.logical_and(p, r).sum()) / denom


def relative_volume_difference(pred: Any, ref: Any, spacing_mm: SpacingLike | None = None) -> float:
    """Signed relative volume difference ``RVD = (V_pred - V_ref) / V_ref``, as a fraction (not percent).

    Positive means the prediction is too large (over-segmentation): 0.05 is 5 % too large, -1.0 an empty prediction.
    On a shared grid the voxel volume cancels, so ``spacing_mm`` only gets validated; it is accepted so that all
    metric functions share one signature.

    Returns:
        RVD; ``+inf`` when the reference is empty and the prediction is not, NaN when both are empty.

    Example:
        >>> relative_volume_difference(np.array([1, 1, 1, 0]), np.array([1, 1, 0, 0]))
        0.5
    """
    p, r = check_pair(pred, ref)
    if spacing_mm is not None:
        check_spacing(spacing_mm, p.ndim)
    v_p, v_r = int(p.sum()), int(r.sum())
    if v_r == 0:
        return float("nan") if v_p == 0 else float("inf")
    return (v_p - v_r) / v_r


@dataclass(frozen=True)
class BinaryMetrics:
    """All metrics of one prediction/reference mask pair (see the module docstring for empty masks).

    Attributes:
        dice: Dice coefficient in [0, 1].
        rvd: signed relative volume difference ``(V_pred - V_ref) / V_ref`` as a fraction.
        hd_mm: symmetric Hausdorff distance in mm.
        hd95_mm: 95th-percentile Hausdorff distance in mm (MONAI's definition).
        assd_mm: average symmetric surface distance in mm.
        vol_pred_ml: prediction volume in ml (number of voxels x voxel volume / 1000).
        vol_ref_ml: reference volume in ml.
        pred_empty: the prediction has no voxel.
        ref_empty: the reference has no voxel.
    """

    dice: float
    rvd: float
    hd_mm: float
    hd95_mm: float
    assd_mm: float
    vol_pred_ml: float
    vol_ref_ml: float
    pred_empty: bool
    ref_empty: bool


def compute_binary_metrics(pred: Any, ref: Any, spacing_mm: SpacingLike) -> BinaryMetrics:
    """Dice, RVD, HD, HD95, ASSD and both volumes of one mask pair, sharing one surface-distance computation."""
    p, r = check_pair(pred, ref)
    spacing = check_spacing(spacing_mm, p.ndim)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sd = compute_surface_distances(p, r, spacing)
    return BinaryMetrics(
        dice=dice(p, r),
        rvd=relative_volume_difference(p, r),
        hd_mm=hausdorff_from_distances(sd, None),
        hd95_mm=hausdorff_from_distances(sd, 95.0),
        assd_mm=mean_surface_from_distances(sd, True),
        vol_pred_ml=int(p.sum()) * voxel_ml,
        vol_ref_ml=int(r.sum()) * voxel_ml,
        pred_empty=sd.pred_empty,
        ref_empty=sd.ref_empty,
    )


# ---------------------------------------------------------------------------------------------------------------------
# label maps -> long table
# ---------------------------------------------------------------------------------------------------------------------


def _as_label_map(labels: Any, name: str) -> np.ndarray:
    arr = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        # MONAI loaders give float label maps; accept them only when every value is a whole number
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name} is a float array with non-integer values; a label map must hold whole numbers")
        return arr.astype(np.int64)
    raise TypeError(f"{name} must be an integer label map, got dtype {arr.dtype}")


def compute_label_metrics(
    pred_labels: Any,
    ref_labels: Any,
    spacing_mm: SpacingLike,
    labels: Iterable[int] = MUSCLE_LABELS,
) -> pd.DataFrame:
    """Per-label segmentation metrics of two label maps on the same grid, as a long table.

    One row per requested label (``side`` "left"/"right"), then, for every muscle whose two sides were both
    requested, one row with ``side`` "mean" and ``label`` <NA>: the arithmetic L/R mean of each numeric column (the
    paper's convention). The mean is NaN (or inf) if a side is; it never silently falls back to one side. Its
    ``pred_empty``/``ref_empty`` are True when either side's is.

    Columns (:data:`METRIC_COLUMNS`): ``label, muscle, side, dice, rvd, hd_mm, hd95_mm, assd_mm, vol_pred_ml,
    vol_ref_ml, pred_empty, ref_empty``; see :class:`BinaryMetrics`. Both empty shows as ``pred_empty`` and
    ``ref_empty`` True with NaN metrics.

    Args:
        pred_labels: predicted label map (integers; values from :mod:`scripts.labels`).
        ref_labels: reference label map, same shape and grid (compare affines before calling; see
            :func:`evaluate_label_files`).
        spacing_mm: voxel size per array axis in mm.
        labels: label values to evaluate: muscles (1-8) and, for a model with the vertebral context, 9-14 (their rows
            name the structure in ``muscle`` and have ``side`` "midline"; they get no L/R mean).

    Example:
        >>> ref = np.zeros((8, 8, 4), np.int16); ref[1:4, 1:4, 1:3] = 1; ref[5:8, 1:4, 1:3] = 2
        >>> df = compute_label_metrics(ref, ref, (1.0, 1.0, 3.0), labels=[1, 2])
        >>> df[["muscle", "side", "dice"]].to_dict("records")[-1]
        {'muscle': 'psoas', 'side': 'mean', 'dice': 1.0}
    """
    pred = _as_label_map(pred_labels, "pred_labels")
    ref = _as_label_map(ref_labels, "ref_labels")
    if pred.shape != ref.shape:
        raise ValueError(f"pred_labels and ref_labels must have the same shape, got {pred.shape} and {ref.shape}")
    spacing = check_spacing(spacing_mm, pred.ndim)
    values = [int(v) for v in labels]
    if len(set(values)) != len(values):
        raise ValueError(f"labels must not repeat, got {values}")

    rows: list[dict[str, Any]] = []
    for value in values:
        if value in VERTEBRAL_LABELS:
            muscle, side = VERTEBRAL_LABELS[value], "midline"
        else:
            muscle, side = muscle_and_side(value)  # raises ValueError for background or unknown values
        metrics = compute_binary_metrics(pred == value, ref == value, spacing)
        rows.append({"label": value, "muscle": muscle, "side": side, **asdict(metrics)})
        logger.debug("label %d (%s): %s", value, ALL_LABELS[value], metrics)

    by_label = {row["label"]: row for row in rows}
    numeric = [c for c in METRIC_COLUMNS[3:] if c not in ("pred_empty", "ref_empty")]
    for muscle in MUSCLES:
        left, right = label_value(muscle, "left"), label_value(muscle, "right")
        if left in by_label and right in by_label:
            lrow, rrow = by_label[left], by_label[right]
            mean_row: dict[str, Any] = {"label": pd.NA, "muscle": muscle, "side": "mean"}
            for col in numeric:
                # plain (l + r) / 2 so that NaN and inf propagate; nanmean would hide a missing side
                mean_row[col] = (lrow[col] + rrow[col]) / 2.0
            mean_row["pred_empty"] = lrow["pred_empty"] or rrow["pred_empty"]
            mean_row["ref_empty"] = lrow["ref_empty"] or rrow["ref_empty"]
            rows.append(mean_row)

    df = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    df["label"] = df["label"].astype("Int64")
    for col in numeric:
        df[col] = df[col].astype(float)
    df["pred_empty"] = df["pred_empty"].astype(bool)
    df["ref_empty"] = df["ref_empty"].astype(bool)
    return df


def evaluate_label_files(
    pred_path: str | Path,
    ref_path: str | Path,
    out_csv: str | Path | None = None,
    atol_mm: float = 1e-3,
) -> pd.DataFrame:
    """Read two NIfTI label maps, check they share a grid, and return (and optionally write) the metric table.

    The grids are compared by affine (within ``atol_mm``), not by shape alone: a prediction saved on another grid
    must be resampled first (nearest neighbour), which is the caller's decision. Spacing comes from the header zooms.

    Args:
        pred_path: predicted label map (``.nii``/``.nii.gz``).
        ref_path: reference label map.
        out_csv: if given, the table is written there with a header.
        atol_mm: tolerance for the affine comparison, in mm.
    """
    import nibabel as nib  # local: only this I/O wrapper needs it

    pred_img, ref_img = nib.load(str(pred_path)), nib.load(str(ref_path))
    if pred_img.shape[:3] != ref_img.shape[:3]:
        raise ValueError(f"grids differ: pred shape {pred_img.shape}, ref shape {ref_img.shape}")
    if not np.allclose(pred_img.affine, ref_img.affine, atol=atol_mm):
        raise ValueError(
            f"grids differ: affines not equal within {atol_mm} mm\npred:\n{pred_img.affine}\nref:\n{ref_img.affine}"
        )
    spacing = tuple(float(z) for z in ref_img.header.get_zooms()[:3])
    pred = np.asanyarray(pred_img.dataobj)
    ref = np.asanyarray(ref_img.dataobj)
    df = compute_label_metrics(pred, ref, spacing)
    if out_csv is not None:
        Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out_csv, index=False)
    return df


# ---------------------------------------------------------------------------------------------------------------------
# MONAI metrics for evaluate.json
# ---------------------------------------------------------------------------------------------------------------------


def compute_relative_volume_difference(
    y_pred: torch.Tensor, y: torch.Tensor, include_background: bool = False
) -> torch.Tensor:
    """Signed RVD ``(V_pred - V_ref) / V_ref`` per batch item and class of one-hot tensors.

    Same conventions as :func:`relative_volume_difference` (a fraction; ``+inf`` for an empty reference with a
    non-empty prediction; NaN when both are empty, which MONAI's reductions skip). Voxel counts suffice because the
    voxel volume cancels on a shared grid, so no spacing is needed.

    Args:
        y_pred: binarised one-hot prediction, shape ``(B, C, spatial...)``.
        y: binarised one-hot reference, same shape.
        include_background: keep channel 0.

    Returns:
        float tensor of shape ``(B, C)`` (``C - 1`` without background).
    """
    if y_pred.ndim < 3:
        raise ValueError(f"y_pred must be (B, C, spatial...), got {y_pred.ndim} dimensions")
    if not include_background:
        y_pred, y = ignore_background(y_pred=y_pred, y=y)
    if y_pred.shape != y.shape:
        raise ValueError(f"y_pred and y must have the same shape, got {tuple(y_pred.shape)} and {tuple(y.shape)}")
    axes = list(range(2, y_pred.ndim))
    # float64 counts: exact for any realistic volume, and x / 0 gives the inf / NaN of the documented convention
    v_pred = (torch.as_tensor(y_pred) > 0.5).sum(dim=axes).double()
    v_ref = (torch.as_tensor(y) > 0.5).sum(dim=axes).double()
    return ((v_pred - v_ref) / v_ref).float()


class RelativeVolumeDifferenceMetric(CumulativeIterationMetric):
    """Signed relative volume difference as a MONAI cumulative metric (like ``DiceMetric``).

    Use in ``evaluate.json`` through MONAI's ignite wrapper so that ``MetricsSaver`` writes the per-case values
    (``val_rvd_raw.csv``: one row per image file name, one column per class, plus summary statistics)::

        "validate#evaluator#additional_metrics": {
          "val_rvd": {"_target_": "IgniteMetricHandler",
                      "metric_fn": {"_target_":
                      "scripts.evaluation.segmentation_metrics.RelativeVolumeDifferenceMetric"},
                      "output_transform": "$monai.handlers.from_engine(['pred', 'label'])",
                      "save_details": true}},
        ... {"_target_": "MetricsSaver", "save_dir": "@output_dir", "metrics": "*",
             "metric_details": ["val_rvd"], "batch_transform": "$lambda x: [xx['image'].meta for xx in x]",
             "summary_ops": "*"}

    Note that ``inf`` (empty reference, non-empty prediction) is not skipped by MONAI's reductions and makes a mean
    infinite; that is intended, an invented muscle should not vanish from a summary.

    Args:
        include_background: keep channel 0 (default False).
        reduction: MONAI reduction mode, default ``"mean"`` (over non-NaN values).
        get_not_nans: also return the number of non-NaN values from :meth:`aggregate`.
    """

    def __init__(
        self,
        include_background: bool = False,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__()
        self.include_background = include_background
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        return compute_relative_volume_difference(y_pred, y, include_background=self.include_background)

    def aggregate(
        self, reduction: MetricReduction | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reduce the buffered ``(N, C)`` values with ``reduction`` (default: the instance's)."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("the data to aggregate must be a PyTorch Tensor")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


def spacing_from_meta(y: torch.Tensor) -> list[tuple[float, ...]] | None:
    """Voxel size per batch item from a MetaTensor's affine (column norms), or None for a plain tensor.

    Args:
        y: ``(B, C, spatial...)`` tensor; a batched MetaTensor has one affine per item, an unbatched one a single
            affine that then holds for every item.
    """
    pixdim = getattr(y, "pixdim", None)
    if pixdim is None:
        return None
    n_spatial = y.ndim - 2
    items = pixdim if isinstance(pixdim, list) else [pixdim] * int(y.shape[0])
    return [tuple(float(v) for v in torch.as_tensor(p).reshape(-1)[:n_spatial]) for p in items]


class _MetaSpacingMixin:
    """Pass each image's spacing (from the MetaTensor affine) to MONAI's distance metric when none is given."""

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        if kwargs.get("spacing") is None:
            spacing = spacing_from_meta(y) or spacing_from_meta(y_pred)
            if spacing is None:
                raise ValueError(
                    "no spacing: pass spacing=... or give MetaTensors with an affine; distances in voxels are refused"
                )
            kwargs["spacing"] = spacing
        return super()._compute_tensor(y_pred, y, **kwargs)  # type: ignore[misc]


class HausdorffDistanceMMMetric(_MetaSpacingMixin, HausdorffDistanceMetric):
    """MONAI ``HausdorffDistanceMetric`` whose distances are in mm, with the spacing read from the label's affine.

    MONAI's ignite handlers call metrics as ``metric(y_pred, y)`` without ``spacing``, which makes the base class
    measure in voxels; this subclass takes each item's voxel size from ``y.pixdim`` (after ``Invertd`` that is the
    original image grid). Arguments as for ``HausdorffDistanceMetric`` (e.g. ``percentile=95``).
    """


class SurfaceDistanceMMMetric(_MetaSpacingMixin, SurfaceDistanceMetric):
    """MONAI ``SurfaceDistanceMetric`` (average surface distance) in mm, spacing read from the label's affine.

    Use ``symmetric=True`` for ASSD, as :func:`mean_surface_distance`.
    """


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(evaluate_label_files))
