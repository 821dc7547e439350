"""Test-time left-right flip ensembling: the network's output averaged with its output on the mirrored image.

Why: the lumbar muscles are nearly mirror-symmetric, and the network was trained with left-right flips (label
pairs swapped), so the mirrored image is an equally valid input. Averaging the two predictions removes part of
the network's orientation-dependent error at muscle borders, as nnU-Net's mirroring does, for the cost of a
second sliding-window pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from monai.inferers import Inferer
from scripts.configuration.values import as_bool
from scripts.labels import LEFT_RIGHT_SWAP

__all__ = ["LeftRightFlipInferer"]


class LeftRightFlipInferer(Inferer):
    """Wrap an inferer: ``(f(x) + S(M(f(M(x))))) / 2``, with ``M`` the mirror and ``S`` the left/right channel swap.

    Args:
        inferer: the inner inferer (e.g. ``SlidingWindowInferer``), returning per-class outputs (B, C, X, Y, Z).
        spatial_axis: the array axis of the patient's left-right direction (0 after ``Orientationd("RAS")``).
        label_swap: class index -> its mirror class (left <-> right); classes not listed keep their index.
        num_classes: number of output channels the swap applies to; None (default) takes the network's output
            channels (9 for the muscles, 15 with the vertebral context, whose classes mirror onto themselves).
        enabled: False returns the inner inferer's output unchanged (one pass).

    The outputs are averaged as they come from the network (logits here); channels are permuted so that the
    mirrored pass's "left psoas" lands on the right psoas channel.
    """

    def __init__(
        self,
        inferer: Inferer,
        spatial_axis: int = 0,
        label_swap: Mapping[int, int] | None = None,
        num_classes: int | None = None,
        enabled: bool = True,
    ) -> None:
        if not callable(inferer):
            raise TypeError(f"inferer must be callable, not {type(inferer).__name__}")
        if spatial_axis not in (0, 1, 2) or isinstance(spatial_axis, bool):
            raise ValueError(f"spatial_axis must be 0, 1 or 2, not {spatial_axis!r}")
        self.swap = dict(LEFT_RIGHT_SWAP if label_swap is None else label_swap)
        self.order = None if num_classes is None else self._order(num_classes)
        self.inferer = inferer
        self.spatial_axis = spatial_axis
        self.enabled = as_bool(enabled, "enabled")

    def __call__(
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """Run ``network`` on ``inputs`` (B, C_in, X, Y, Z) and on its mirror; return the averaged (B, C, X, Y, Z)."""
        out = _finite(self.inferer(inputs, network, *args, **kwargs))
        if not self.enabled:
            return out
        dim = 2 + self.spatial_axis
        mirrored = _finite(self.inferer(torch.flip(inputs, dims=[dim]), network, *args, **kwargs))
        order = self.order if self.order is not None else self._order(mirrored.shape[1])
        if mirrored.shape[1] != len(order):
            raise ValueError(f"the network returned {mirrored.shape[1]} channels; the swap is for {len(order)}")
        mirrored = torch.flip(mirrored, dims=[dim])[:, order]
        return (out + mirrored) / 2

    def _order(self, num_classes: int) -> list[int]:
        """The channel permutation of ``num_classes`` outputs (each class's mirror class)."""
        order = [self.swap.get(c, c) for c in range(num_classes)]
        if sorted(order) != list(range(num_classes)):
            raise ValueError(f"label_swap must permute the classes 0..{num_classes - 1}, got {order}")
        return order


def _finite(out: torch.Tensor) -> torch.Tensor:
    """Refuse a network output with NaN or infinite values instead of turning it into a wrong label map.

    Why: softmax and argmax turn NaN logits into background without complaint, so the subject would be reported
    with missing or shrunken muscles. The shipped network's deepest activations reach about 4e4 on the sample,
    near float16's limit of 65504; under float16 autocast they overflow on a GPU (seen on an H200: every muscle
    lost). inference.json therefore runs in float32 and, when asked to autocast, uses bfloat16 (float32's range).
    """
    bad = ~torch.isfinite(out)
    if bool(bad.any()):
        raise FloatingPointError(
            f"the network output holds {int(bad.sum())} non-finite values (NaN or inf) of {out.numel()}; no "
            "label map is made from it. Under float16 autocast this network's activations overflow: run with "
            "--amp false, or keep the config's bfloat16 amp_kwargs."
        )
    return out
