"""Network confidence of each label: how far the softmax probabilities of its voxels are from the next label's.

The quality verdict judges anatomy and the FF signal; this adds what the network itself says. A label whose voxels
mostly sit near the decision boundary (top-1 probability barely above the top-2) was drawn by an unsure network:
the scan differs from anything it learned (another contrast, a corrupted or swapped image), or the plain and the
left-right mirrored passes of the flip ensemble disagree (their average then has low margins).

All figures come from a few passes over the ``(C, X, Y, Z)`` probabilities: the top-2 values and the argmax per
voxel, then per-label sums by ``torch.bincount`` with weights, so no per-label copy of the volume is made (about
0.2 s on a 9 x 128 x 128 x 64 volume on 2 CPU cores, against seconds for the network itself).
"""

from __future__ import annotations

import math

import torch

__all__ = ["BOUNDARY_MARGIN", "CONFIDENCE_FIELDS", "label_confidence"]

#: a voxel whose top-1 probability exceeds its top-2 by less than this lies near the decision boundary
BOUNDARY_MARGIN = 0.2
#: the figures :func:`label_confidence` gives each label, in order
CONFIDENCE_FIELDS: tuple[str, ...] = ("n_voxels", "top1_mean", "margin_mean", "boundary_share", "entropy_mean")


#: the muscle labels (1-8) whose confidence is measured by default
FOREGROUND_LABELS = range(1, 9)


def label_confidence(
    probabilities: torch.Tensor,
    labels: range | tuple[int, ...] = FOREGROUND_LABELS,
    boundary_margin: float = BOUNDARY_MARGIN,
) -> dict[int, dict[str, float]]:
    """Confidence figures of each label of the argmax of ``probabilities``.

    Args:
        probabilities: ``(C, X, Y, Z)`` (any number of spatial dimensions) class probabilities summing to 1 over
            channels, e.g. the softmax of the network's output on its working grid (2x2x4 mm); a NumPy array or a
            (Meta)Tensor, on any device.
        labels: the label values (channel indices) to report; default the eight muscle labels 1-8.
        boundary_margin: top-1 minus top-2 probability below which a voxel counts as near the boundary.

    Returns:
        label -> ``{"n_voxels": voxels of the argmax with this label (working grid), "top1_mean": mean top-1
        probability, "margin_mean": mean top-1 minus top-2 probability, "boundary_share": share of the voxels
        with margin < ``boundary_margin``, "entropy_mean": mean entropy over channels divided by log C (0 one-hot,
        1 uniform)}``; the means are NaN for a label with no voxel. Voxels are those the argmax gives the label
        (ties go to the lower channel, as ``torch.argmax`` and ``AsDiscreted`` do).

    Raises:
        ValueError: fewer than 2 channels, or a label outside the channels.
    """
    p = torch.as_tensor(probabilities).detach()
    p = p.as_tensor() if hasattr(p, "as_tensor") else p  # a MetaTensor's metadata is not needed here
    n_channels = p.shape[0]
    if p.ndim < 2 or n_channels < 2:
        raise ValueError(f"probabilities must be (C, *spatial) with C >= 2, got shape {tuple(p.shape)}")
    if any(not 0 <= v < n_channels for v in labels):
        raise ValueError(f"labels {list(labels)} outside the {n_channels} channels")
    p = p.float().reshape(n_channels, -1)
    # max(dim) gives the values and the argmax in one pass (4x faster than argmax alone on CPU), ties to the lower
    # channel; the runner-up is the max once the winner is knocked out (faster than topk over the channel axis)
    top1, winner = p.max(dim=0)
    runner_up = p.clone().scatter_(0, winner[None], -1.0).amax(dim=0)
    margin = top1 - runner_up
    # xlogy gives 0 for p = 0 (no NaN from 0 * log 0); normalised by log C so 1 means uniform
    entropy = -torch.special.xlogy(p, p).sum(dim=0) / math.log(n_channels)
    weights = {
        "top1_mean": top1,
        "margin_mean": margin,
        "boundary_share": (margin < boundary_margin).float(),
        "entropy_mean": entropy,
    }
    counts = torch.bincount(winner, minlength=n_channels).double()
    sums = {k: torch.bincount(winner, weights=w.double(), minlength=n_channels) for k, w in weights.items()}
    out: dict[int, dict[str, float]] = {}
    for value in labels:
        n = int(counts[value])
        row: dict[str, float] = {"n_voxels": n}
        row.update({k: float(s[value]) / n if n else float("nan") for k, s in sums.items()})
        out[int(value)] = row
    return out
