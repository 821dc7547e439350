"""Start a network from earlier weights whose output layer has another number of classes.

Why: the vertebral context (docs/design.md) adds six output channels (9 -> 15). Training the wider network from
scratch would throw away the muscle segmentation that the 9-class weights already hold; instead every weight is
copied where the shapes agree, and where they differ only in their channel counts (the output block's convolutions,
normalisation and bias) the overlapping channels are copied, the new output channels keep their fresh
initialisation and the weights that read new input channels start at zero, so that the old classes' outputs are
exactly those of the checkpoint at the start of training. The same rule narrows a 15-class checkpoint to a
9-class network (a fine-tune on muscle-only labels).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

__all__ = ["load_pretrained", "adapt_state_dict"]

logger = logging.getLogger(__name__)


def adapt_state_dict(
    target: dict[str, torch.Tensor], source: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``target``'s state with ``source``'s values copied in where they fit.

    Args:
        target: the new network's ``state_dict()`` (its initialisation).
        source: the checkpoint's state dict.

    Returns:
        ``(state, adapted)``: the state to load (every key of ``target``) and the names of the tensors that were
        copied only in part (their overlapping channels).

    Raises:
        ValueError: a key of one is missing from the other, or two tensors differ in their number of dimensions or
            in a dimension other than the channel counts (then the checkpoint is of another architecture).
    """
    missing, unexpected = sorted(set(target) - set(source)), sorted(set(source) - set(target))
    if missing or unexpected:
        raise ValueError(
            f"the checkpoint does not fit this network: missing {missing[:5]}, unexpected {unexpected[:5]} "
            "(another architecture or channel list than network_def)"
        )
    state, adapted = {}, []
    for name, new in target.items():
        old = source[name]
        if old.shape == new.shape:
            state[name] = old.to(new.dtype)
            continue
        if old.ndim != new.ndim or old.shape[2:] != new.shape[2:]:
            raise ValueError(f"{name}: checkpoint shape {tuple(old.shape)} cannot be adapted to {tuple(new.shape)}")
        part = new.clone()
        region = tuple(slice(0, min(a, b)) for a, b in zip(old.shape, new.shape))
        part[region] = old[region].to(new.dtype)
        for dim in range(1, new.ndim):  # new input channels start at zero: the old outputs stay what they were
            if new.shape[dim] > old.shape[dim]:
                part[(slice(None),) * dim + (slice(old.shape[dim], None),)] = 0
        state[name] = part
        adapted.append(name)
    return state, adapted


def load_pretrained(network: torch.nn.Module, path: str | Path, skip: bool = False) -> list[str]:
    """Load the weights in ``path`` (a state dict, or ``{"model": state_dict}``) into ``network`` in place.

    ``skip`` (or an empty ``path``) leaves the network as it is: train.json skips the pretrained weights when no
    file is named or when a run resumes from its own checkpoint.

    Returns:
        the names of the tensors whose channel counts differed and were copied in part (logged as well).
    """
    if skip or not path:
        return []
    source = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(source.get("model"), dict):
        source = source["model"]
    state, adapted = adapt_state_dict(network.state_dict(), source)
    network.load_state_dict(state)
    if adapted:
        logger.info(
            "pretrained weights %s: %d tensors adapted to this network's channel counts (new channels keep their "
            "initialisation): %s",
            path,
            len(adapted),
            ", ".join(adapted),
        )
    return adapted
