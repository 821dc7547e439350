"""The vertebral bodies and the sacrum from a second, small network run on the muscle network's input.

Why a second network: one network that keeps the shipped muscles and also learns the spine was tried three times
(docs/studies/training_history.md); the vertebral outputs need features of their own, and every weight that gives them
costs muscle Dice. A small network trained for the spine alone (``configs/spine_train.json``: 0 background,
1 vertebral body of any level, 2 sacrum) leaves the muscle network untouched; the names L1-L5 come from counting up
from the sacrum (:func:`scripts.quantification.vertebra_naming.count_bodies_from_sacrum`), not from the look of a body.

The steps, in ``configs/inference.json``'s post-processing:

1. :class:`SpineSegmentd` runs the network on the image key (the preprocessed network input on the working grid,
   ``(1, X, Y, Z)``) and writes the softmax probabilities ``(3, X, Y, Z)`` under ``spine_key``, with the image's
   metadata and applied operations, so that the probabilities go back to the input grid the way the muscles'
   do (``InvertedArgmaxd`` on both keys);
2. :class:`MergeSpineLabelsd` (``scripts/pipeline/spine_labels.py``) names the bodies and writes 9-14 into the
   label map where it is background.

:func:`load_spine_network` decides, once per run, whether there is a spine network (``vertebral_outputs``: ``auto``
uses ``models/spine_model.pt`` when it is there, ``true`` requires it, ``false`` never runs it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scripts.pipeline.keys import SPINE_KEY
from scripts.pipeline.run_record import file_fingerprint

__all__ = ["VERTEBRAL_OUTPUTS", "SPINE_CHANNELS", "load_spine_network", "SpineSegmentd"]

logger = logging.getLogger(__name__)

#: values of the ``vertebral_outputs`` setting
VERTEBRAL_OUTPUTS: tuple[str, ...] = ("auto", "true", "false")
#: output channels of a spine network (scripts.transforms.label_maps.spine_target.SPINE_CLASSES)
SPINE_CHANNELS = 3


def _mode(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in VERTEBRAL_OUTPUTS:
        raise ValueError(f"vertebral_outputs must be one of {', '.join(VERTEBRAL_OUTPUTS)}, not {value!r}")
    return text


def load_spine_network(
    network: torch.nn.Module,
    ckpt_path: str | Path | None,
    mode: Any = "auto",
    device: torch.device | str = "cpu",
    num_classes: int = 9,
    channels: str = "inphase",
) -> torch.nn.Module | None:
    """The spine network with its weights, in eval mode on ``device``; None when none is to run.

    Args:
        network: the architecture (``spine_network_def``), 1 input channel, :data:`SPINE_CHANNELS` outputs.
        ckpt_path: its state_dict (``models/spine_model.pt``).
        mode: ``vertebral_outputs``: ``"auto"`` (run it when the file exists and the muscle model has no vertebral
            outputs of its own), ``"true"`` (required), ``"false"``.
        device: where to run it (the muscle network's device).
        num_classes: the muscle model's outputs; a 15-output model segments the spine itself, so none runs.
        channels: the muscle network's ``network_channels``; the spine network reads the in-phase image only.

    Returns:
        the loaded network (its ``fingerprint``: the weights file's name, size and SHA-256, for the run record), or
        None (the reason is logged at info level).

    Raises:
        FileNotFoundError: ``mode`` is true and the weights are not there (message: the path and the way forward).
        ValueError: ``mode`` is true but the run cannot use a spine network (15-output muscle model, two-channel
            input), or the weights do not fit the architecture (message: the file and both shapes).
    """
    mode = _mode(mode)
    if mode == "false":
        return None
    reason = None
    if int(num_classes) != 9:
        reason = f"the muscle model has {num_classes} outputs and segments the vertebral bodies itself"
    elif channels != "inphase":
        reason = f"network_channels is {channels}; the spine network reads the in-phase image only"
    if reason:
        if mode == "true":
            raise ValueError(f"vertebral_outputs true: {reason}; run with --vertebral_outputs auto or false")
        logger.info("no spine network: %s", reason)
        return None
    path = Path(ckpt_path) if ckpt_path else None
    if path is None or not path.is_file():
        where = path.resolve() if path else "(no spine_ckpt_path)"
        if mode == "true":
            raise FileNotFoundError(
                f"{where}: spine network weights not found (vertebral_outputs true). Train one with "
                "configs/spine_train.json (docs/README.md), pass --spine_ckpt_path <weights>, or run with "
                "--vertebral_outputs auto to go on without vertebral outputs"
            )
        logger.info("no spine network at %s: no vertebral bodies and no per-level tables", where)
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]  # a training checkpoint that holds the model beside other states
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"{path}: these weights do not fit the spine network of configs/inference.json (spine_network_def): "
            f"{str(err).splitlines()[0]} ... Give weights trained with configs/spine_train.json"
        ) from None
    logger.info("spine network: %s", path)
    # the run record keeps it, so that a cohort resumed with other spine weights is refused, not mixed
    network.fingerprint = file_fingerprint(path)
    return network.to(device).eval()


class SpineSegmentd(MapTransform):
    """Run the spine network on the network input; write its class probabilities.

    Args:
        keys: the image key: ``(1, X, Y, Z)`` float MetaTensor on the working grid (intensities scaled as the muscle
            network's input), with the preprocessing's applied operations.
        network: from :func:`load_spine_network`; None makes this step pass the data through.
        inferer: called as ``inferer(inputs, network)`` with ``inputs`` ``(1, 1, X, Y, Z)``, returning
            ``(1, 3, X, Y, Z)`` logits (the sliding-window inferer, optionally wrapped for CPU precision).
        spine_key: where the probabilities go: ``(3, X, Y, Z)`` float32 MetaTensor on the image's grid and device
            of the image, carrying the image's metadata and applied operations.
        allow_missing_keys: with True, a missing image key is skipped.

    Raises:
        ValueError: the image has more than one channel, or the network gives another number of outputs.
    """

    def __init__(
        self,
        keys: KeysCollection,
        network: torch.nn.Module | None,
        inferer: Callable[..., torch.Tensor],
        spine_key: str = SPINE_KEY,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if network is not None and not callable(inferer):
            raise TypeError(f"inferer must be callable, not {type(inferer).__name__}")
        self.network = network
        self.inferer = inferer
        self.spine_key = spine_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.network is None:
            return d
        for key in self.key_iterator(d):
            img = d[key]
            if img.ndim != 4 or img.shape[0] != 1:
                raise ValueError(
                    f"the spine network reads one channel (1, X, Y, Z); {key!r} has shape {tuple(img.shape)}"
                )
            device = next(self.network.parameters()).device
            with torch.no_grad():
                logits = self.inferer(torch.as_tensor(img)[None].to(device), self.network)[0]
            if logits.shape[0] != SPINE_CHANNELS:
                raise ValueError(f"the spine network gave {logits.shape[0]} outputs; expected {SPINE_CHANNELS}")
            probs = torch.softmax(logits.float(), dim=0).to(torch.as_tensor(img).device)
            if isinstance(img, MetaTensor):
                probs = MetaTensor(probs, meta=dict(img.meta), applied_operations=list(img.applied_operations))
            d[self.spine_key] = probs
        return d
