"""Test-time batch-norm adaptation: the network's normalisation statistics re-estimated on the scan it segments.

Why: a batch-norm layer normalises each feature with the mean and variance it saw in training. The shipped
network saw phantoms only; on a real scan (another scanner, coil, contrast, anatomy) its early features have
other means and variances, the stored statistics mis-scale every later layer, and whole muscles are lost. Re-
estimating the statistics on the scan being segmented (AdaBN: Li et al., Pattern Recognition 2018, "Adaptive
batch normalization for practical domain adaptation") needs no labels and no training and changes no learned
weight. Measured on the two real samples and on phantoms in docs/studies/real_scans.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from monai.inferers import Inferer
from scripts.configuration.values import as_bool
from scripts.pipeline.volume_statistics import (
    can_hook,
    pad_like_sliding_window,
    padded_shape,
    volume_statistics,
    window_regions,
)

__all__ = ["STATISTICS_SOURCES", "AdaptiveBatchNormInferer", "batch_norm_layers"]

logger = logging.getLogger(__name__)

#: Where the statistics come from: one forward pass of the padded scan per view (padded voxels not counted), or
#: the statistics inferer's windows (every sliding-window patch, as before 0.17.0).
STATISTICS_SOURCES = ("volume", "windows")

#: Padded working-grid voxels above which "volume" falls back to "windows": the whole scan in one pass needs
#: memory in proportion to its voxels, a sliding window only that of one batch of patches. Measured with the
#: shipped UNet on CPU (docs/studies/speed.md): 0.69 GB above the network's own at the reference geometry (224 x
#: 176 x 96 padded, 3.8 M voxels), 1.24 GB at 8.0 M; one 128 x 128 x 64 window: 0.20 GB.
DEFAULT_MAX_VOLUME_VOXELS = 8_000_000

_BATCH_NORM_NAMES = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")
_PADDING_MODES = ("replicate", "constant", "reflect", "circular")


def batch_norm_layers(network: torch.nn.Module) -> list[torch.nn.Module]:
    """The batch-norm layers of ``network`` that keep running statistics (eager or TorchScript modules)."""
    found = []
    for m in network.modules():
        # Why the name test: a TorchScript module (models/model.ts, what MONAI Deploy runs) is not an instance of
        # torch.nn.BatchNorm3d, but keeps the class name and the buffers.
        is_bn = (
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm) or getattr(m, "original_name", "") in _BATCH_NORM_NAMES
        )
        if is_bn and getattr(m, "running_mean", None) is not None and getattr(m, "running_var", None) is not None:
            found.append(m)
    return found


class AdaptiveBatchNormInferer(Inferer):
    """Wrap an inferer: first estimate the batch-norm statistics on the input, then infer with them.

    For each image of the batch separately: every batch-norm layer's running mean and variance are re-estimated
    on that image and on its left-right mirror, the two weighted equally; then ``inferer`` runs with the layers in
    evaluation mode. Per view, the statistics come from (``statistics``):

    - "volume": one forward pass of the whole image (padded as the sliding window pads it, then at the end of
      each axis to a multiple of ``pad_multiple``), each layer's mean and unbiased variance averaged over the boxes
      of ``statistics_inferer``'s patches (the whole image when it is not a sliding window), the end padding not
      counted (scripts/pipeline/volume_statistics.py). About 0.45 of a sliding-window pass at the reference
      geometry; differs from "windows" only by the features near a patch's border (the network sees the scan
      beyond it instead of zero padding) and by every layer normalising with the averaged, not the patch's own,
      statistics during the pass.
      Falls back to "windows" (logged) when the padded image has more than ``max_volume_voxels`` voxels (memory)
      or the network is a TorchScript module (no hooks).
    - "windows": the average over one ``statistics_inferer`` pass (every sliding window, the layers in training
      mode, no gradients) of the per-call batch statistics.

    Why the mirror: neither the windows (the last one is moved to the scan's end) nor a convolution's kernels are
    symmetric, so statistics of the scan alone differ from those of its mirrored copy, and a mirrored scan
    would get other numbers (measured: up to 0.87 pp FF and 2.6 % volume). The mean of the scan's and the mirror's
    statistics is the same for both (``(a + b) / 2`` equals ``(b + a) / 2`` exactly in floating point), so with the
    flip ensemble a mirrored scan gives exactly the mirrored label map. Cost: a second statistics pass. The
    network's own statistics and layer modes are restored afterwards, so the network object is unchanged
    for the next image or for anyone else holding it. Learned weights (convolutions, batch-norm scale and
    shift) are never changed.

    Args:
        inferer: the inferer that makes the prediction (e.g. the left-right flip ensemble over a sliding window),
            returning per-class outputs (B, C, X, Y, Z).
        statistics_inferer: the inferer whose pass over the image gives the statistics; None = ``inferer``.
            A single sliding-window pass is enough (the mirrored image has the same statistics) and costs half
            of the flip ensemble.
        enabled: False returns ``inferer``'s output unchanged (the training statistics).
        mirror_axis: the array axis of the patient's left-right direction (0 after ``Orientationd("RAS")``), whose
            mirror also gives statistics; None uses the scan alone.
        statistics: "volume" or "windows" (see above).
        pad_multiple: "volume": the network's total stride (16 for the UNet's four stride-2 levels).
        padding_mode: "volume": how the padded voxels are filled (``torch.nn.functional.pad`` mode; "replicate"
            as the sliding window); they pass through the network but no statistic counts them.
        max_volume_voxels: "volume": the most padded voxels (X * Y * Z) done in one pass; above, "windows".

    Raises:
        ValueError: a bad ``statistics``, ``pad_multiple``, ``padding_mode`` or ``max_volume_voxels``; at call
            time, enabled, and the network has no batch-norm layer with running statistics (nothing to adapt:
            the option would silently do nothing).
    """

    def __init__(
        self,
        inferer: Inferer,
        statistics_inferer: Inferer | None = None,
        enabled: bool | str = True,
        mirror_axis: int | None = 0,
        statistics: str = "volume",
        pad_multiple: int = 16,
        padding_mode: str = "replicate",
        max_volume_voxels: int = DEFAULT_MAX_VOLUME_VOXELS,
    ) -> None:
        if not callable(inferer):
            raise TypeError(f"inferer must be callable, not {type(inferer).__name__}")
        if statistics_inferer is not None and not callable(statistics_inferer):
            raise TypeError(f"statistics_inferer must be callable, not {type(statistics_inferer).__name__}")
        self.inferer = inferer
        self.statistics_inferer = statistics_inferer if statistics_inferer is not None else inferer
        self.enabled = as_bool(enabled, "enabled")
        if mirror_axis is not None and (isinstance(mirror_axis, bool) or mirror_axis not in (0, 1, 2)):
            raise ValueError(f"mirror_axis must be 0, 1, 2 or None, not {mirror_axis!r}")
        self.mirror_axis = mirror_axis
        if statistics not in STATISTICS_SOURCES:
            raise ValueError(
                f"adapt_statistics must be one of {', '.join(STATISTICS_SOURCES)}, not {statistics!r}: 'volume' "
                "(one pass of the whole scan per view) or 'windows' (every sliding-window patch, as before 0.17.0)"
            )
        self.statistics = statistics
        for name, value in (("pad_multiple", pad_multiple), ("max_volume_voxels", max_volume_voxels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, not {value!r}")
        self.pad_multiple = pad_multiple
        self.max_volume_voxels = max_volume_voxels
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(_PADDING_MODES)}, not {padding_mode!r}")
        self.padding_mode = padding_mode

    def __call__(
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """Segment ``inputs`` (B, C_in, X, Y, Z) with statistics of each image; returns (B, C, X, Y, Z)."""
        if not self.enabled:
            return self.inferer(inputs, network, *args, **kwargs)
        if not isinstance(network, torch.nn.Module):
            raise TypeError(f"batch-norm adaptation needs a torch module, not {type(network).__name__}")
        layers = batch_norm_layers(network)
        if not layers:
            raise ValueError(
                "adapt_batch_norm is on but the network has no batch-norm layer with running "
                "statistics; set adapt_batch_norm to false for this network"
            )
        saved = [
            (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.training) for m in layers
        ]
        try:
            outs = []
            for i in range(inputs.shape[0]):
                image = inputs[i : i + 1]
                views = [image] if self.mirror_axis is None else [image, torch.flip(image, [2 + self.mirror_axis])]
                _install(layers, self._view_statistics(views, network, layers, args, kwargs))
                outs.append(self.inferer(image, network, *args, **kwargs))
            return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
        finally:
            for m, (mean, var, count, training) in zip(layers, saved):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
                m.train(training)

    def source_for(self, image: torch.Tensor, layers: list[torch.nn.Module]) -> str:
        """The statistics source used for ``image`` (1, C_in, X, Y, Z): ``statistics``, or "windows" where
        "volume" cannot be used (too many voxels for one pass, or a TorchScript network)."""
        if self.statistics == "windows":
            return "windows"
        voxels = math.prod(padded_shape(tuple(int(n) for n in image.shape[2:]), self.pad_multiple))
        if voxels > self.max_volume_voxels:
            logger.info(
                "batch-norm statistics from sliding windows: the padded scan has %d voxels, more than "
                "max_volume_voxels %d for one pass",
                voxels,
                self.max_volume_voxels,
            )
            return "windows"
        if not can_hook(layers):
            logger.info("batch-norm statistics from sliding windows: a TorchScript network takes no hooks")
            return "windows"
        return "volume"

    def _windows(self, spatial_shape: tuple[int, ...]) -> tuple[tuple[int, ...], Any] | None:
        """The statistics inferer's window size for an image of ``spatial_shape`` and its overlap (None when it is
        not a sliding window); a window fitted to the image (``fitted_window.py``) says its own size."""
        roi, overlap = (
            getattr(self.statistics_inferer, "roi_size", None),
            getattr(self.statistics_inferer, "overlap", None),
        )
        if roi is None or overlap is None:
            return None
        roi_for = getattr(self.statistics_inferer, "roi_for", None)
        if callable(roi_for):
            roi = roi_for(spatial_shape)
        return (tuple(roi) if isinstance(roi, (list, tuple)) else (int(roi),) * 3), overlap

    def _view_statistics(
        self,
        views: list[torch.Tensor],
        network: torch.nn.Module,
        layers: list[torch.nn.Module],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Per view, per layer, the (mean, var) of the chosen source; the layers are left in evaluation mode."""
        if self.source_for(views[0], layers) == "volume":
            # a MONAI UNet says its strides: a padding multiple they do not divide fails in a skip connection
            total = math.prod(int(np.prod(s)) for s in getattr(network, "strides", ()) or ())
            if total and self.pad_multiple % total:
                raise ValueError(
                    f"pad_multiple {self.pad_multiple} is not a multiple of the network's total stride {total}; "
                    f"set it to {total} or use adapt_statistics 'windows'"
                )
            windows = self._windows(tuple(int(n) for n in views[0].shape[2:]))
            if windows is None:  # the statistics inferer sees the whole image: so does the volume pass
                padded_views, regions = views, None
            else:  # the sliding window's patches, as boxes of the image padded as the sliding window pads it
                padded_views = [pad_like_sliding_window(v, windows[0], self.padding_mode) for v in views]
                regions = window_regions(padded_views[0].shape[2:], *windows)
            return [
                volume_statistics(network, layers, view, self.pad_multiple, self.padding_mode, args, kwargs, regions)
                for view in padded_views
            ]
        collectors = [_StatisticsCollector(network, layers) for _ in views]
        for m in layers:
            m.train()
        try:
            with torch.no_grad():
                for view, collector in zip(views, collectors):
                    self.statistics_inferer(view, collector, *args, **kwargs)
        finally:
            for m in layers:
                m.eval()
        return [c.averages() for c in collectors]


class _StatisticsCollector:
    """A stand-in for the network that, on each call (one batch of windows), runs it with the batch-norm layers
    in training mode and adds the batch's mean and variance of every layer to a sum.

    Why not ``momentum = None`` (PyTorch's cumulative average): a TorchScript module holds momentum as a constant
    that cannot be changed. Instead the running buffers are zeroed before each call, so after it they hold
    ``factor * batch statistic`` with ``factor`` the layer's momentum (1 for momentum None on the first batch).
    """

    def __init__(self, network: Callable[..., torch.Tensor], layers: list[torch.nn.Module]) -> None:
        self.network = network
        self.layers = layers
        self.sums = [(torch.zeros_like(m.running_mean), torch.zeros_like(m.running_var)) for m in layers]
        self.calls = 0

    def __call__(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        for m in self.layers:
            m.running_mean.zero_()
            m.running_var.zero_()
            m.num_batches_tracked.zero_()
        out = self.network(x, *args, **kwargs)
        for m, (mean_sum, var_sum) in zip(self.layers, self.sums):
            factor = 1.0 if m.momentum is None else float(m.momentum)
            mean_sum += m.running_mean / factor
            var_sum += m.running_var / factor
        self.calls += 1
        return out

    def averages(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the mean over all calls of the batch mean and variance."""
        if self.calls == 0:
            raise RuntimeError("the statistics inferer never called the network; no statistics to adapt to")
        return [(mean_sum / self.calls, var_sum / self.calls) for mean_sum, var_sum in self.sums]

    def install(self) -> None:
        """Write the averages over all calls into the layers' running statistics."""
        _install(self.layers, [self.averages()])


def _install(layers: list[torch.nn.Module], views: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> None:
    """Write the per-layer statistics of one view, or the equal-weight mean of two, into the running buffers.

    Two views are added as ``(a + b) / 2``, which floating point evaluates identically for ``(b, a)``: a scan and
    its mirror get bit-identical statistics.
    """
    for j, m in enumerate(layers):
        if len(views) == 1:
            mean, var = views[0][j]
        else:
            (mean_a, var_a), (mean_b, var_b) = views[0][j], views[1][j]
            mean, var = (mean_a + mean_b) / 2, (var_a + var_b) / 2
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
