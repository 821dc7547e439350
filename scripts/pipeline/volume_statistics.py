"""Batch-norm statistics of a whole scan in one forward pass, padded voxels left out.

Why: test-time batch-norm adaptation (scripts/pipeline/batchnorm_adaptation.py) needs each batch-norm layer's
feature mean and variance on the scan. Estimated over a sliding window's patches (4 patches of 128x128x64 on a
160x128x75 working grid: about 2.7 times the scan's voxels), the estimate costs as much as a prediction pass; one
forward pass of the scan itself, padded to a size the network accepts, costs about 0.4 of it (issue #24,
docs/studies/speed.md "Batch-norm adaptation at a fraction of the cost").

How: the scan is padded at the end of each axis to a multiple of the network's total stride (replicate, as the
sliding window pads), and every batch-norm layer stays in evaluation mode; a forward pre-hook on each computes the
mean and the unbiased variance of its input over the voxels that come from the scan (the first ``ceil(n / f)``
along an axis of ``n`` scan voxels at a layer that sees the grid ``f`` times coarser), writes them into the
layer's running buffers, so that the layer normalises with exactly them, and keeps them. The padded voxels still
pass through the network (as the network's own zero padding would), but no statistic counts them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["can_hook", "padded_shape", "volume_statistics"]


def padded_shape(spatial_shape: tuple[int, ...], multiple: int) -> tuple[int, ...]:
    """Each of ``spatial_shape`` (voxels) rounded up to a multiple of ``multiple`` (the network's total stride)."""
    return tuple(int(math.ceil(n / multiple) * multiple) for n in spatial_shape)


def can_hook(layers: list[torch.nn.Module]) -> bool:
    """Whether forward pre-hooks can be put on ``layers`` (eager modules can; TorchScript modules cannot)."""
    return not any(isinstance(m, torch.jit.ScriptModule) for m in layers)


def volume_statistics(
    network: torch.nn.Module,
    layers: list[torch.nn.Module],
    image: torch.Tensor,
    multiple: int,
    padding_mode: str = "replicate",
    network_args: tuple[Any, ...] = (),
    network_kwargs: dict[str, Any] | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per batch-norm layer, the mean and unbiased variance of its input over ``image``'s own voxels.

    Args:
        network: the network, an eager ``torch.nn.Module`` (hooks are put on ``layers``), called with the
            layers in evaluation mode; its running statistics are overwritten (the caller restores them).
        layers: the batch-norm layers of ``network`` (``batch_norm_layers``).
        image: one image (1, C_in, X, Y, Z), the working grid; it is padded at the end of each axis to a multiple
            of ``multiple``.
        multiple: the network's total stride (16 for four stride-2 levels); every layer's grid must divide the
            padded grid by a whole factor.
        padding_mode: ``torch.nn.functional.pad`` mode for the padded voxels ("replicate", "constant", "reflect",
            "circular").
        network_args, network_kwargs: further arguments of ``network`` (as an inferer passes them on).

    Returns:
        per layer, ``(mean, var)``, each of shape (C,) for the layer's C features.

    Raises:
        ValueError: ``image`` is not one 5-d image, or a layer sees a grid that does not divide the padded grid
            (a network whose strides do not multiply to ``multiple``).
    """
    if image.ndim != 5 or image.shape[0] != 1:
        raise ValueError(f"volume statistics need one image of shape (1, C, X, Y, Z), not {tuple(image.shape)}")
    scan = tuple(int(n) for n in image.shape[2:])
    padded = padded_shape(scan, multiple)
    pad = [p for n, full in zip(reversed(scan), reversed(padded)) for p in (0, full - n)]
    x = F.pad(image, pad, mode=padding_mode) if any(pad) else image
    found: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(layers)

    def hook_for(j: int):
        def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            features = inputs[0]
            sizes = features.shape[2:]
            crop = tuple(slice(0, _scan_extent(n, full, int(s))) for n, full, s in zip(scan, padded, sizes))
            dims = (0, *range(2, features.ndim))
            var, mean = torch.var_mean(features[(slice(None), slice(None), *crop)], dim=dims, correction=1)
            module.running_mean.copy_(mean)
            module.running_var.copy_(var)
            found[j] = (mean, var)

        return hook

    handles = [m.register_forward_pre_hook(hook_for(j)) for j, m in enumerate(layers)]
    try:
        for m in layers:
            m.eval()
        with torch.no_grad():
            network(x, *network_args, **(network_kwargs or {}))
    finally:
        for h in handles:
            h.remove()
    missing = [j for j, s in enumerate(found) if s is None]
    if missing:
        raise RuntimeError(f"{len(missing)} batch-norm layer(s) were not run by the network's forward pass")
    return found  # type: ignore[return-value]


def _scan_extent(n: int, full: int, size: int) -> int:
    """Voxels from the scan along an axis a layer sees at ``size`` of the padded ``full`` (``n`` scan voxels).

    A stride-2 convolution (kernel 3, padding 1) centres output voxel ``j`` on input voxel ``2 j``, so at a grid
    ``f`` times coarser the first ``ceil(n / f)`` voxels are centred on the scan, as are the transposed
    convolution's outputs on the way back up.
    """
    if size <= 0 or full % size:
        raise ValueError(
            f"a batch-norm layer sees {size} voxels along an axis padded to {full}: not a whole factor; set the "
            "padding multiple to the network's total stride or use adapt_statistics 'windows'"
        )
    return int(math.ceil(n / (full // size)))
