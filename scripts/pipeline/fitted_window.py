"""A sliding window whose cranio-caudal extent is no longer than the scan it slides over.

Why: the window is 128x128x64 voxels of the 2x2x4 mm working grid, 256 mm cranio-caudally, while clinical axial
lumbar stacks are often 60-120 mm (15-30 working slices). MONAI's sliding window pads a scan shorter than the
window up to the window's length (the bundle repeats the end slices, ``sw_padding_mode`` "replicate"), so the
network sees a window that is mostly invented image, which it never met in training; the padded slices also enter
the batch-norm statistics that inference re-estimates from the scan (``batchnorm_adaptation.py``). On phantoms a
short stack alone costs QL and ES+MF Dice (docs/studies/real_scans.md, "What the real sample's geometry does");
fitting the window to the scan leaves at most ``multiple - 1`` padded slices. Scans at least as long as the window,
and every in-plane axis, keep the configured window to the voxel. inference.json slides it for both networks and the
batch-norm statistics; train.json's validation (and so evaluate.json) slides it too, so that a checkpoint chosen on
short annotated stacks is chosen on what inference will show it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.inferers import Inferer, SlidingWindowInferer
from scripts.configuration.values import as_bool

__all__ = ["fitted_roi", "FittedSlidingWindowInferer"]


def fitted_roi(
    spatial_shape: Sequence[int], roi_size: Sequence[int], fit_axes: Sequence[int] = (2,), multiple: int = 16
) -> tuple[int, ...]:
    """The window for an image of ``spatial_shape`` voxels: on each of ``fit_axes``, ``roi_size`` shortened to the
    image's length rounded up to a multiple of ``multiple``; every other axis keeps ``roi_size``.

    Args:
        spatial_shape: the image's spatial shape (X, Y, Z), voxels of the working grid.
        roi_size: the largest window (X, Y, Z), voxels (kept where the image is at least as long).
        fit_axes: array axes that may be shortened (2: cranio-caudal after ``Orientationd("RAS")``).
        multiple: the network's total stride (16 for four stride-2 levels), so a shortened window stays a valid
            input; a window the configuration gives is used as given.

    Returns:
        the window (X, Y, Z), voxels; e.g. ``(128, 128, 32)`` for a 22-slice scan and ``roi_size`` (128, 128, 64).
    """
    shape = [int(n) for n in spatial_shape]
    roi = [int(r) for r in roi_size]
    if len(shape) != len(roi):
        raise ValueError(f"spatial_shape {tuple(shape)} and roi_size {tuple(roi)} differ in length")
    if multiple < 1 or any(r < 1 for r in roi):
        raise ValueError(f"roi_size {tuple(roi)} and multiple {multiple} must be positive")
    axes = [int(a) for a in fit_axes]
    if any(a < 0 or a >= len(roi) for a in axes):
        raise ValueError(f"fit_axes {tuple(axes)} must be axes of a {len(roi)}-D image")
    if any(n < 1 for n in shape):
        raise ValueError(f"spatial_shape {tuple(shape)} has an empty axis")
    for a in axes:
        roi[a] = min(roi[a], multiple * math.ceil(shape[a] / multiple))
    return tuple(roi)


class FittedSlidingWindowInferer(Inferer):
    """``SlidingWindowInferer`` with the window of :func:`fitted_roi` for each input.

    Args:
        roi_size: the largest window (X, Y, Z), voxels of the working grid.
        sw_batch_size, overlap, mode, padding_mode: as ``monai.inferers.SlidingWindowInferer``.
        fit: False keeps ``roi_size`` for every input (MONAI's fixed window).
        fit_axes: array axes that may be shortened (default: the cranio-caudal axis of a RAS working grid).
        multiple: the network's total stride.

    ``roi_size``, ``overlap`` and ``padding_mode`` are attributes, as on MONAI's inferer; :meth:`roi_for` gives the
    window an input of a given shape gets (the batch-norm adaptation pads and cuts its statistics windows with it).
    """

    def __init__(
        self,
        roi_size: Sequence[int],
        sw_batch_size: int = 1,
        overlap: float = 0.25,
        mode: str = "gaussian",
        padding_mode: str = "replicate",
        fit: bool = True,
        fit_axes: Sequence[int] = (2,),
        multiple: int = 16,
    ) -> None:
        self.roi_size = tuple(int(r) for r in roi_size)
        self.fit = as_bool(fit, "fit")
        self.fit_axes = tuple(int(a) for a in fit_axes)
        self.multiple = int(multiple)
        fitted_roi(self.roi_size, self.roi_size, self.fit_axes, self.multiple)  # validates the arguments
        self.overlap = overlap
        self.padding_mode = padding_mode
        self._options = dict(sw_batch_size=sw_batch_size, overlap=overlap, mode=mode, padding_mode=padding_mode)
        # one MONAI inferer per window size: each caches its own importance map for its window
        self._inferers: dict[tuple[int, ...], SlidingWindowInferer] = {}
        self._inferer(self.roi_size)  # a bad option fails here, when the config is parsed

    def roi_for(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        """The window for an input of ``spatial_shape`` (X, Y, Z)."""
        if not self.fit:
            return self.roi_size
        return fitted_roi(spatial_shape, self.roi_size, self.fit_axes, self.multiple)

    def _inferer(self, roi: tuple[int, ...]) -> SlidingWindowInferer:
        if roi not in self._inferers:
            self._inferers[roi] = SlidingWindowInferer(roi_size=roi, **self._options)
        return self._inferers[roi]

    def __call__(
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """Slide ``network`` over ``inputs`` (B, C_in, X, Y, Z) with the fitted window; returns (B, C, X, Y, Z)."""
        return self._inferer(self.roi_for(inputs.shape[2:]))(inputs, network, *args, **kwargs)
