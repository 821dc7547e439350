"""What the network reads: one channel (the in-phase image) or two (water and fat).

The bundle's default model reads one channel, the in-phase image (water + fat when a scan has no in-phase image;
docs/design.md). A two-channel model reads the water and fat images side by side, so that it sees the fat signal
on its own (the paper's validation issue asks for this comparison). Training (``configs/train.json``) and inference
(``configs/inference.json``) choose with one setting, ``network_channels``: ``"inphase"`` or ``"water_fat"``; the
network's ``in_channels`` follows from it, and inference checks that the checkpoint agrees
(:func:`check_checkpoint_channels`) before it loads the model.

Both channels are scaled together afterwards (one percentile range for the pair, not one per channel), so the ratio
of fat to water, which is what fat infiltration is, survives the intensity normalisation.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from scripts.io.dixon_scan import DixonScan
from scripts.io.errors import DixonInputError
from scripts.quantification.ff_map import compute_ff
from scripts.quantification.formulas import water_fat_from_in_opposed

__all__ = [
    "NETWORK_CHANNELS",
    "num_network_channels",
    "network_input",
    "check_checkpoint_channels",
    "StackWaterFat",
    "StackWaterFatd",
]

#: ``network_channels`` setting -> number of network input channels (see :func:`network_input`)
NETWORK_CHANNELS: dict[str, int] = {"inphase": 1, "water_fat": 2}


def num_network_channels(channels: str) -> int:
    """Number of network input channels for a ``network_channels`` setting (raises on an unknown one)."""
    if channels not in NETWORK_CHANNELS:
        raise ValueError(f"network_channels must be one of {sorted(NETWORK_CHANNELS)}, got {channels!r}")
    return NETWORK_CHANNELS[channels]


def network_input(scan: DixonScan, channels: str = "inphase") -> np.ndarray:
    """The network input of a scan, float32 in the stored orientation.

    Args:
        scan: a validated scan (:func:`scripts.io.load.load_dixon`).
        channels: ``"inphase"``: one ``(I, J, K)`` image, the in-phase image, else water + fat
            (:meth:`scripts.io.dixon_scan.DixonScan.inphase_or_sum`); ``"water_fat"``: a ``(2, I, J, K)`` stack of
            water and fat, taken as stored, else derived from in-phase + opposed-phase (water-dominant assumption,
            as :func:`scripts.quantification.ff_map.compute_ff`), else from a vendor FF map and the in-phase image
            (``W = IP * (1 - FF)``, ``F = IP * FF``, excluded FF voxels 0).

    Raises:
        ValueError: an unknown ``channels``.
        DixonInputError: the scan's images give no such input (the message names what it has).
    """
    num_network_channels(channels)
    if channels == "inphase":
        return scan.inphase_or_sum()
    if scan.has("water", "fat"):
        water, fat = scan.images["water"], scan.images["fat"]
    elif scan.has("inphase", "opposed"):
        water, fat = water_fat_from_in_opposed(scan.images["inphase"], scan.images["opposed"], assume="water_dominant")
    elif scan.has("inphase", "ff"):
        ff = np.nan_to_num(np.clip(compute_ff(scan, "vendor_map").ff, 0.0, 1.0), nan=0.0)
        water, fat = scan.images["inphase"] * (1.0 - ff), scan.images["inphase"] * ff
    else:
        raise DixonInputError(
            f"subject {scan.subject!r}: a two-channel (water, fat) model needs water and fat, "
            f"in-phase and opposed-phase, or a vendor FF map and in-phase; the scan has "
            f"{', '.join(scan.available) or 'no image'}"
        )
    return np.stack([water, fat]).astype(np.float32)


def check_checkpoint_channels(ckpt_path: str | Path | None, channels: str, num_classes: int | None = None) -> None:
    """Refuse a checkpoint whose first convolution reads another number of channels than ``channels`` gives, or
    whose output layer gives another number of classes than ``num_classes``.

    Without this check a one-channel model run as two-channel (or a 15-class model run as 9-class) fails inside
    ``load_state_dict`` with a shape listing that does not say which setting to change.

    Args:
        ckpt_path: a bare state_dict (``models/model.pt``); a missing or unreadable file is left to the loader.
        channels: the ``network_channels`` setting.
        num_classes: the ``num_classes`` setting (9 muscles, 15 with the vertebral context); None skips the check.

    Raises:
        ValueError: naming the file, both channel counts and the setting that fits the model.
    """
    expected = num_network_channels(channels)
    if not ckpt_path or not Path(ckpt_path).is_file():
        return
    try:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception:  # not a state_dict (e.g. TorchScript): the loader reports it
        return
    first = (
        next((v for v in state.values() if isinstance(v, torch.Tensor) and v.ndim == 5), None)
        if isinstance(state, Mapping)
        else None
    )
    last_bias = (
        next((v for v in reversed(state.values()) if isinstance(v, torch.Tensor) and v.ndim == 1), None)
        if isinstance(state, Mapping)
        else None
    )
    if num_classes is not None and last_bias is not None and last_bias.shape[0] != int(num_classes):
        raise ValueError(
            f"{ckpt_path}: the model outputs {last_bias.shape[0]} classes, but num_classes={num_classes}; run with "
            f"--num_classes {last_bias.shape[0]} (9: muscles, 15: muscles and vertebral context)"
        )
    if first is None or first.shape[1] == expected:
        return
    fits = [name for name, n in NETWORK_CHANNELS.items() if n == first.shape[1]]
    hint = f"; run with --network_channels {fits[0]}" if fits else ""
    raise ValueError(
        f"{ckpt_path}: the model reads {first.shape[1]} input channel(s), but network_channels="
        f"{channels!r} gives {expected}{hint}"
    )


def require_checkpoint(ckpt_path: str | Path, bundle_root: str | Path = ".") -> None:
    """Refuse to run without the weights, saying where they were looked for and how to point at them.

    ``bundle_root`` is ``"."`` in the configs (the model zoo's convention), so a run started in another folder looks
    for ``models/model.pt`` there; the message says so instead of the loader's bare "No such file".

    Raises:
        FileNotFoundError: naming the absolute path looked at, the bundle root it came from and the way forward.
    """
    path = Path(ckpt_path)
    if path.is_file():
        return
    root = Path(bundle_root)
    raise FileNotFoundError(
        f"{path.resolve()}: model weights not found (bundle_root={str(bundle_root)!r}, resolved to "
        f"{root.resolve()}). Run from the bundle folder, pass --bundle_root <bundle folder>, or pass --ckpt_path "
        "<weights>; a bundle copy without weights gets them with `python -m monai.bundle download_large_files "
        "--bundle_path <bundle folder>`."
    )


class StackWaterFat(Transform):
    """Stack a water and a fat image into one two-channel image (water first).

    Args (of ``__call__``):
        water: ``(1, X, Y, Z)`` or ``(X, Y, Z)`` water image, any intensity unit.
        fat: fat image on the same grid (same shape; its affine is not checked here: the loaders resample both with
            the same transforms).

    Returns:
        ``(2, X, Y, Z)`` float32 tensor; a MetaTensor with ``water``'s metadata when ``water`` is one.
    """

    def __call__(self, water: Any, fat: Any) -> torch.Tensor:
        w = torch.as_tensor(water, dtype=torch.float32)
        f = torch.as_tensor(fat, dtype=torch.float32)
        w = w if w.ndim == 4 else w[None]
        f = f if f.ndim == 4 else f[None]
        if w.shape != f.shape or w.shape[0] != 1:
            raise ValueError(
                f"water and fat must be single-channel images of one shape, got {tuple(w.shape)} and {tuple(f.shape)}"
            )
        out = torch.cat(
            [w.as_tensor() if isinstance(w, MetaTensor) else w, f.as_tensor() if isinstance(f, MetaTensor) else f],
            dim=0,
        )
        if isinstance(water, MetaTensor):
            # the meta dict carries the affine
            return MetaTensor(out, meta=dict(water.meta), applied_operations=list(water.applied_operations))
        return out


class StackWaterFatd(MapTransform):
    """Write the network input under ``keys``: unchanged (``"inphase"``) or water and fat stacked (``"water_fat"``).

    Args:
        keys: the network-input key (``"image"``), overwritten for ``"water_fat"``.
        water_key, fat_key: keys of the water and fat images, ``(1, X, Y, Z)`` on the image's grid.
        channels: ``"inphase"`` (pass through) or ``"water_fat"``.
        allow_missing_keys: MONAI's flag for ``keys``.

    Raises:
        KeyError: ``"water_fat"`` and an entry without water or fat; the message names the entry's image file.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        water_key: str = "water",
        fat_key: str = "fat",
        channels: str = "inphase",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        num_network_channels(channels)
        self.water_key, self.fat_key, self.channels = water_key, fat_key, channels
        self.stack = StackWaterFat()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.channels == "inphase":
            return d
        missing = [k for k in (self.water_key, self.fat_key) if d.get(k) is None]
        if missing:
            where = next(
                (d[k].meta.get("filename_or_obj") for k in self.key_iterator(d) if isinstance(d.get(k), MetaTensor)),
                None,
            )
            raise KeyError(
                f"network_channels='water_fat' needs {self.water_key!r} and {self.fat_key!r} in every "
                f"datalist entry; the entry of {where or 'an image'} has no {', '.join(missing)}"
            )
        stacked = self.stack(d[self.water_key], d[self.fat_key])
        for key in self.key_iterator(d):
            d[key] = stacked
        return d
