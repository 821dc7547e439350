"""How much the bundle's network doubts its own segmentation of one image (MONAI Label's ``uncertainty`` strategy).

An image is run through the bundle's own preprocessing (``configs/inference.json``: load and check, RAS, working
grid, intensity scaling) and its sliding-window network, once as it is and once mirrored left-right, with the
batch-norm statistics adapted to the image as ``/infer`` does. Two figures come out of the two passes:

- ``entropy``: the mean normalised entropy (0 = certain, 1 = uniform over the 9 classes) of the average of the two
  passes' softmax probabilities, over the voxels that average labels as a muscle;
- ``flip_disagreement``: 1 - the mean Dice, over the muscles either pass finds, between the plain pass's label map
  and the mirrored pass's label map mirrored back (left and right labels swapped back). The lumbar muscles are
  nearly mirror-symmetric and the network was trained with flips, so a network that knows the image gives the same
  answer both ways.

The doubt is their mean. An image in which neither pass finds any muscle gets 1 for both (the network recognises
nothing it was trained on). Cost per image: four sliding-window passes on the working grid (two to estimate the
batch-norm statistics, two to predict), the network work of one ``/infer`` call without its resampling and
quantification.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.inferers import Inferer
from scripts.labels import LEFT_RIGHT_SWAP
from scripts.pipeline.batchnorm_adaptation import AdaptiveBatchNormInferer

__all__ = ["DOUBT_VERSION", "Doubt", "PlainAndMirroredInferer", "doubt_from_outputs", "DoubtScorer"]

#: changes whenever the figures are computed differently, so that cached doubts of an older kind are recomputed.
DOUBT_VERSION = 1


@dataclass(frozen=True)
class Doubt:
    """The network's doubt about one image (see the module docstring).

    Attributes:
        entropy: mean normalised entropy of the flip-averaged probabilities inside the predicted muscles, in [0, 1].
        flip_disagreement: 1 - mean Dice between the plain and the mirrored pass's label maps, in [0, 1].
        muscle_voxels: voxels of the working grid the flip-averaged probabilities label as a muscle.
    """

    entropy: float
    flip_disagreement: float
    muscle_voxels: int

    @property
    def score(self) -> float:
        """The figure images are ranked by: the mean of ``entropy`` and ``flip_disagreement``, in [0, 1]."""
        return (self.entropy + self.flip_disagreement) / 2

    def as_dict(self) -> dict[str, Any]:
        """The figures and the score, JSON-ready (MONAI Label returns them with the chosen image)."""
        return {**asdict(self), "score": self.score}


class PlainAndMirroredInferer(Inferer):
    """Wrap an inferer: its output on the input and, mirrored back with left and right channels swapped, its output
    on the mirrored input, concatenated along the channels ``(B, 2C, X, Y, Z)``.

    Unlike :class:`scripts.pipeline.flip_ensemble.LeftRightFlipInferer`, which averages the two, both are kept so
    that their disagreement can be measured.

    Args:
        inferer: the inner inferer (the bundle's sliding window), returning ``(B, C, X, Y, Z)``.
        spatial_axis: the array axis of the patient's left-right direction (0 after ``Orientationd("RAS")``).
    """

    def __init__(self, inferer: Inferer, spatial_axis: int = 0) -> None:
        if spatial_axis not in (0, 1, 2) or isinstance(spatial_axis, bool):
            raise ValueError(f"spatial_axis must be 0, 1 or 2, not {spatial_axis!r}")
        self.inferer = inferer
        self.spatial_axis = spatial_axis

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        dim = 2 + self.spatial_axis
        plain = self.inferer(inputs, network, *args, **kwargs)
        mirrored = self.inferer(torch.flip(inputs, dims=[dim]), network, *args, **kwargs)
        order = [LEFT_RIGHT_SWAP.get(c, c) for c in range(mirrored.shape[1])]  # 9 or 15 classes
        return torch.cat([plain, torch.flip(mirrored, dims=[dim])[:, order]], dim=1)


def doubt_from_outputs(plain: torch.Tensor, mirrored: torch.Tensor) -> Doubt:
    """The doubt figures from the two passes' network outputs (logits) of one image.

    Args:
        plain: ``(C, X, Y, Z)`` logits of the image.
        mirrored: ``(C, X, Y, Z)`` logits of the mirrored image, already mirrored back and with left and right
            channels swapped (so that both describe the image as it is).
    """
    if plain.shape != mirrored.shape or plain.ndim != 4 or plain.shape[0] < 2:
        raise ValueError(f"expected two (C, X, Y, Z) outputs of one shape, got {plain.shape} and {mirrored.shape}")
    probs = (torch.softmax(plain.float(), 0) + torch.softmax(mirrored.float(), 0)) / 2
    muscles = probs.argmax(0) > 0
    n = int(muscles.sum())
    a, b = plain.argmax(0), mirrored.argmax(0)
    dice = []
    for label in range(1, plain.shape[0]):
        in_a, in_b = a == label, b == label
        size = int(in_a.sum()) + int(in_b.sum())
        if size:
            dice.append(2 * int((in_a & in_b).sum()) / size)
    if n == 0 or not dice:
        return Doubt(entropy=1.0, flip_disagreement=1.0, muscle_voxels=n)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(0) / math.log(plain.shape[0])
    return Doubt(
        entropy=float(entropy[muscles].mean().clamp(0, 1)),
        flip_disagreement=1.0 - sum(dice) / len(dice),
        muscle_voxels=n,
    )


class DoubtScorer:
    """Score images with a bundle's network as ``configs/inference.json`` prepares and runs it.

    The preprocessing, the sliding-window inferer, the network and the settings (working grid, batch-norm
    adaptation) are read from the bundle's inference config; the weights from ``models/model.pt``, read again
    whenever that file changes (a MONAI Label training round rewrites it). The bundle root must be importable
    (``scripts`` on ``sys.path``) while the scorer is built and called.

    Args:
        bundle_dir: the bundle root (MONAI Label's copy, ``<app>/model/<name>``).
        config_file: the inference config, relative to ``bundle_dir``.
    """

    def __init__(self, bundle_dir: str | Path, config_file: str = "configs/inference.json") -> None:
        self.bundle_dir = Path(bundle_dir).resolve()
        parser = ConfigParser()
        parser.read_config(str(self.bundle_dir / config_file))
        parser["bundle_root"] = str(self.bundle_dir)
        self.settings = parser.get_parsed_content("settings")
        self.preprocessing = parser.get_parsed_content("preprocessing")
        self.device = torch.device(parser.get_parsed_content("device"))
        self.network = parser.get_parsed_content("network_def").to(self.device).eval()
        sliding_window = parser.get_parsed_content("sliding_window_inferer")
        self.inferer = AdaptiveBatchNormInferer(
            inferer=PlainAndMirroredInferer(sliding_window),
            statistics_inferer=sliding_window,
            enabled=self.settings["adapt_batch_norm"],
        )
        self._weights_stamp: int | None = None

    @property
    def model_file(self) -> Path:
        """The weights the scorer uses (MONAI Label trains this file)."""
        return self.bundle_dir / "models" / "model.pt"

    def model_stamp(self) -> int:
        """The weights file's modification time (ns): a new value means new weights and stale doubts."""
        return self.model_file.stat().st_mtime_ns

    def _load_weights(self) -> None:
        stamp = self.model_stamp()
        if stamp != self._weights_stamp:
            state = torch.load(self.model_file, map_location=self.device, weights_only=True)
            # a checkpoint saved as {"model": state_dict} (MONAI's CheckpointSaver) or as the bare state_dict
            state = state["model"] if isinstance(state.get("model"), dict) else state
            self.network.load_state_dict(state)
            self._weights_stamp = stamp

    def __call__(self, image_file: str | Path) -> Doubt:
        """The doubt of the network about the in-phase image ``image_file`` (a NIfTI file)."""
        self._load_weights()
        data = self.preprocessing({"image": str(image_file)})
        image = data["image"]
        image = (image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(image)).float()
        image = image.unsqueeze(0).to(self.device)
        with torch.no_grad():
            out = self.inferer(image, self.network)[0]
        half = out.shape[0] // 2
        return doubt_from_outputs(out[:half], out[half:])

    def describe(self) -> str:
        """One line naming the grid and options the scorer runs with (for the server log)."""
        keys = ("working_spacing", "roi_size", "adapt_batch_norm")
        return json.dumps({k: self.settings[k] for k in keys}, default=str)
