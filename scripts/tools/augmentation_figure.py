"""Documentation figure: every training augmentation applied to one image/label pair.

Each row is one augmentation (seeded, applied with probability 1); the columns are an axial and a coronal slice
through the label's centroid, before and after, with the label contours drawn on top. Slices are shown in the
radiological convention (patient's right on the left of the picture), in millimetres.

Command line (``fire``)::

    python -m scripts.tools.augmentation_figure --image=phantom_inphase.nii.gz --label=phantom_label.nii.gz \\
        --output=docs/images/augmentations.png [--model=models/anatomical_variability.npz] [--seed=0]
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from monai.data import MetaTensor
from monai.transforms import (
    LoadImage,
    Orientation,
    RandAdjustContrastd,
    RandBiasFieldd,
    RandGaussianSmoothd,
    RandRicianNoised,
)
from scripts.labels import NUM_CLASSES
from scripts.transforms.acquisition.dixon_contrast import RandDixonContrastd
from scripts.transforms.acquisition.field_of_view import RandFieldOfViewd
from scripts.transforms.acquisition.surface_coil import RandSurfaceCoild
from scripts.transforms.geometry import spacing_from_affine
from scripts.transforms.intensity.intensity_remap import RandIntensityRemapd
from scripts.transforms.intensity.low_resolution import RandLowResolutionAxisd
from scripts.transforms.spatial.anatomical_deform import RandAnatomicalDeformd
from scripts.transforms.spatial.bspline_deform import RandBSplineDeformd
from scripts.transforms.spatial.left_right_flip import RandLeftRightFlipd
from scripts.transforms.spatial.rigid import RandRigidd
from scripts.transforms.variability_model import AnatomicalVariabilityModel

__all__ = ["augmentation_examples", "save_augmentation_figure", "main"]

logger = logging.getLogger(__name__)

Example = tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]


def augmentation_examples(
    model: AnatomicalVariabilityModel | str | Path | None = None, dixon: bool = False
) -> list[Example]:
    """The augmentations shown in the figure, each set to always apply, as ``(title, dict transform)`` pairs.

    Spatial rows use the training defaults (rigid: up to 5/5/10 degrees, 5 % scale, 5 mm; B-spline: 7 x 7 x 5
    control points, up to 6/6/3 mm); intensity rows use visible settings: gamma 0.7-1.5, bias field of degree 3,
    a posterior surface coil (gain e-folding over 80 mm of depth), slices 3 times thicker along z, blur of 1 voxel,
    Rician noise of 10 % of the image std.

    Args:
        model: anatomical variability model (or its ``.npz`` path); without it that row is left out.
        dixon: add the contrasts synthesised from water and fat (the input dictionary must hold ``"water"`` and
            ``"fat"``): fat image, fat-bright (T1-like), water image, opposed phase.
    """
    keys = ["image", "label"]
    examples: list[Example] = [
        ("rigid", RandRigidd(keys, prob=1.0)),
        ("B-spline", RandBSplineDeformd(keys, prob=1.0)),
    ]
    if model is not None:
        examples.append(("anatomical (PCA)", RandAnatomicalDeformd(keys, model, prob=1.0)))
    examples += [
        ("left-right flip", RandLeftRightFlipd(keys, label_keys="label", prob=1.0)),
        (
            "short field of view (z)",
            RandFieldOfViewd(keys, label_keys="label", prob=1.0, world_axes=(2,), extent_range=(0.4, 0.4)),
        ),
    ]
    if dixon:
        examples += [
            (f"Dixon contrast: {name}", RandDixonContrastd("image", prob=1.0, kinds=[kind]))
            for name, kind in (
                ("fat image", "fat"),
                ("fat-bright", "fat_bright"),
                ("water image", "water"),
                ("opposed phase", "opposed"),
            )
        ]
    examples += [
        ("histogram remap", RandIntensityRemapd("image", prob=1.0, invert_prob=0.0, non_monotonic_prob=0.0)),
        ("contrast inversion", RandIntensityRemapd("image", prob=1.0, invert_prob=1.0, non_monotonic_prob=0.0)),
        ("gamma", RandAdjustContrastd("image", prob=1.0, gamma=(0.7, 1.5))),
        ("bias field", RandBiasFieldd("image", prob=1.0, degree=3, coeff_range=(-0.1, 0.1))),
        (
            "surface coil",
            RandSurfaceCoild(
                "image", prob=1.0, decay_range_mm=(80.0, 80.0), floor_range=(0.05, 0.05), anterior_prob=0.0
            ),
        ),
        ("thick slices (z x3)", RandLowResolutionAxisd("image", prob=1.0, factor_range=(3.0, 3.0), world_axes=(2,))),
        ("blur", RandGaussianSmoothd("image", prob=1.0, sigma_x=(1.0, 1.0), sigma_y=(1.0, 1.0), sigma_z=(1.0, 1.0))),
        (
            "Rician noise",
            RandRicianNoised("image", prob=1.0, std=0.1, relative=True, channel_wise=True, sample_std=False),
        ),
    ]
    return examples


def _load(item: Any, name: str) -> MetaTensor:
    if isinstance(item, (str, Path)):
        item = LoadImage(image_only=True, ensure_channel_first=True)(str(item))
    if not isinstance(item, MetaTensor):
        raise TypeError(f"{name} must be a path or a MetaTensor with an affine, not {type(item).__name__}")
    if item.ndim == 3:
        item = item.unsqueeze(0)
    return Orientation(axcodes="RAS")(item)


def _slices(vol: np.ndarray, spacing: np.ndarray, centre: np.ndarray) -> dict[str, tuple[np.ndarray, list[float]]]:
    """Axial (fixed z) and coronal (fixed y) slices of a RAS-oriented (X, Y, Z) array, with mm extents."""
    x_mm, y_mm, z_mm = (np.asarray(vol.shape) * spacing).tolist()
    return {
        "axial": (vol[:, :, int(centre[2])].T, [0.0, x_mm, 0.0, y_mm]),
        "coronal": (vol[:, int(centre[1]), :].T, [0.0, x_mm, 0.0, z_mm]),
    }


def _draw(ax: Any, image: np.ndarray, label: np.ndarray, extent: list[float], title: str = "") -> None:
    lo, hi = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    ax.imshow(
        image,
        cmap="gray",
        origin="lower",
        extent=extent,
        vmin=lo,
        vmax=hi if hi > lo else lo + 1,
        interpolation="nearest",
    )
    colours = [f"C{k % 10}" for k in range(NUM_CLASSES)]
    # contour needs pixel-centre coordinates matching the image extent
    ny, nx = label.shape
    xs = np.linspace(extent[0], extent[1], nx, endpoint=False) + (extent[1] - extent[0]) / (2 * nx)
    ys = np.linspace(extent[2], extent[3], ny, endpoint=False) + (extent[3] - extent[2]) / (2 * ny)
    for value in np.unique(label):
        if value <= 0:
            continue
        ax.contour(
            xs,
            ys,
            (label == value).astype(float),
            levels=[0.5],
            colors=[colours[int(value) % NUM_CLASSES]],
            linewidths=0.8,
        )
    ax.invert_xaxis()  # radiological convention: the patient's right (+x) on the left of the picture
    if title:
        ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=5)
    ax.text(0.02, 0.95, "R", color="yellow", fontsize=6, transform=ax.transAxes, va="top")
    ax.text(0.98, 0.95, "L", color="yellow", fontsize=6, transform=ax.transAxes, va="top", ha="right")


def save_augmentation_figure(
    image: Any,
    label: Any,
    output: str = "augmentations.png",
    model: str | None = None,
    water: Any = None,
    fat: Any = None,
    seed: int = 0,
    dpi: int = 120,
) -> str:
    """Save a PNG with one row per augmentation: axial and coronal slices before/after, with label contours.

    Args:
        image: NIfTI path or MetaTensor (C, X, Y, Z) or (X, Y, Z) with an affine; the first channel is shown.
        label: NIfTI path or MetaTensor, same grid as ``image``.
        output: PNG path to write (folders are created).
        model: optional ``.npz`` of an anatomical variability model (adds that row).
        water, fat: optional Dixon water and fat images on the image's grid (add the synthesised contrasts).
        seed: random seed of every augmentation (same seed, same figure).
        dpi: resolution of the PNG.

    Returns:
        The path of the written PNG.
    """
    img = _load(image, "image").to(torch.float32)
    lab = _load(label, "label")
    if img.shape[1:] != lab.shape[1:]:
        raise ValueError(f"image and label must share a grid, got shapes {tuple(img.shape)} and {tuple(lab.shape)}")
    spacing = spacing_from_affine(img.affine)
    fg = np.argwhere(lab[0].numpy() > 0)
    centre = fg.mean(0).round() if fg.size else (np.asarray(img.shape[1:]) - 1) // 2
    before = _slices(img[0].numpy(), spacing, centre)
    before_lab = _slices(lab[0].numpy(), spacing, centre)

    extra = {}
    if water is not None and fat is not None:
        extra = {"water": _load(water, "water").to(torch.float32), "fat": _load(fat, "fat").to(torch.float32)}
        if any(v.shape[1:] != img.shape[1:] for v in extra.values()):
            raise ValueError(f"water and fat must share the image's grid {tuple(img.shape[1:])}")
    examples = augmentation_examples(model, dixon=bool(extra))
    fig = Figure(figsize=(8.0, 1.9 * len(examples)), dpi=dpi)
    axes = fig.subplots(len(examples), 4, squeeze=False)
    for row, (title, transform) in enumerate(examples):
        transform.set_random_state(seed)
        with warnings.catch_warnings():
            # Why: a small input triggers the B-spline folding warning; the figure is for looking, not training.
            warnings.simplefilter("ignore", RuntimeWarning)
            out: Mapping[str, Any] = transform({"image": img.clone(), "label": lab.clone(), **extra})
        after = _slices(torch.as_tensor(out["image"])[0].float().numpy(), spacing, centre)
        after_lab = _slices(torch.as_tensor(out["label"])[0].numpy(), spacing, centre)
        for col, view in enumerate(("axial", "coronal")):
            head = row == 0
            _draw(
                axes[row, 2 * col],
                before[view][0],
                before_lab[view][0],
                before[view][1],
                f"{view}, before" if head else "",
            )
            _draw(
                axes[row, 2 * col + 1],
                after[view][0],
                after_lab[view][0],
                after[view][1],
                f"{view}, after" if head else "",
            )
        axes[row, 0].set_ylabel(title, fontsize=8)
    fig.tight_layout()
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    logger.info("wrote %s (%d augmentations)", path, len(examples))
    return str(path)


def main() -> None:
    """``fire`` entry point: ``python -m scripts.tools.augmentation_figure --image=... --label=... --output=...``."""
    import fire

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(save_augmentation_figure))


if __name__ == "__main__":
    main()
