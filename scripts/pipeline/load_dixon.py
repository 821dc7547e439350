"""Read one subject for inference: its Dixon images validated, the network input under ``image``, the scan kept."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scripts.io.errors import DixonInputError
from scripts.io.load import load_dixon
from scripts.pipeline.dixon_entry import scan_to_entry
from scripts.pipeline.keys import DIXON_ROLES
from scripts.pipeline.network_input import network_input, num_network_channels

__all__ = ["LoadDixond"]


class LoadDixond(MapTransform):
    """Load and validate one subject's Dixon images; write the network input as a (1, X, Y, Z) MetaTensor.

    Three kinds of entry are accepted:

    - an item of :func:`scripts.io.discover.discover_subjects` (roles ``water``, ``fat``, ``inphase``,
      ``opposed``, ``ff`` -> paths, and ``subject``): the bundle's own runs. The network reads the in-phase image,
      or water + fat when there is no in-phase image (docs/design.md);
    - ``{key: "<path to a NIfTI>"}`` with no Dixon roles: the file is the in-phase image (MONAI Label sends its
      datastore image this way); validated like any in-phase image, subject = the file name without extension;
    - ``{key: array}`` (MetaTensor, tensor or ndarray; ``(X, Y, Z)`` or ``(1, X, Y, Z)``): an image already in
      memory (MONAI Deploy's bundle operator drops loaders and passes the series this way); used as the in-phase
      image with the MetaTensor's affine.

    In the first case the scan itself is added to the entry (:func:`scripts.pipeline.dixon_entry.scan_to_entry`) for
    the quantification steps after the network; in the last two there is no FF source, and those steps pass the
    entry through untouched.
    Bad input raises :class:`scripts.io.errors.DixonInputError` naming the file and the problem, before
    anything is written.

    Args:
        keys: the key receiving the network input (default ``"image"``).
        min_fov_mm: smallest field of view accepted per axis (mm), e.g. the network patch in mm.
        channels: the network's input, ``"inphase"`` (one channel, ``(1, X, Y, Z)``) or ``"water_fat"`` (two,
            ``(2, X, Y, Z)``; see :func:`scripts.pipeline.network_input.network_input`). A two-channel model cannot
            read a bare image (MONAI Label, MONAI Deploy): that raises a clear error.
        trust_voxel_grid: a Dixon role whose header the other images of a subject adopt when they have the same
            shape and spacing but another origin or direction (see :func:`scripts.io.load.load_dixon`).
        allow_missing_keys: MONAI's flag (unused: the key is always written).
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        min_fov_mm: Any = None,
        channels: str = "inphase",
        trust_voxel_grid: str | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        num_network_channels(channels)
        self.min_fov_mm = min_fov_mm
        self.channels = channels
        self.trust_voxel_grid = trust_voxel_grid

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        entry = {k: v for k, v in d.items() if k in DIXON_ROLES or k in ("subject", "label")}
        if not any(k in DIXON_ROLES for k in entry):
            given = d.get(self.keys[0])
            if given is None:
                raise DixonInputError(
                    f"the data entry has no Dixon image (keys: {sorted(map(str, d))}); expected "
                    f"roles {', '.join(DIXON_ROLES)} or an image under {self.keys[0]!r}"
                )
            if self.channels != "inphase":
                raise DixonInputError(
                    f"a two-channel (water, fat) model needs a Dixon entry with water and fat; got "
                    f"a single image under {self.keys[0]!r} ({_describe(given)})"
                )
            if not isinstance(given, (str, Path)):
                return self._from_memory(d, given)
            entry = {"inphase": str(given), "subject": d.get("subject") or _stem(given)}
        try:
            scan = load_dixon(
                entry, min_shape_mm=self.min_fov_mm, segmentation_only=True, trust_voxel_grid=self.trust_voxel_grid
            )
        except DixonInputError as err:
            # named for the cohort's failures table and log, also when the error comes back from a loader worker
            # as text
            err.subject = str(entry.get("subject") or "")
            if err.subject and err.args and not str(err.args[0]).startswith("subject "):
                err.args = (f"subject {err.subject!r}: {err.args[0]}", *err.args[1:])
            raise
        d["subject"] = scan.subject
        if scan.dixon_set != "inphase_only":
            # the quantification after the network reads the images from here, not from the files again
            d.update(scan_to_entry(scan))
        return self._write(d, network_input(scan, self.channels), scan.affine, scan.subject)

    def _from_memory(self, d: dict[Hashable, Any], image: Any) -> dict[Hashable, Any]:
        arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        elif arr.ndim == 4 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim != 3:
            raise DixonInputError(
                f"in-memory image under {self.keys[0]!r} has shape {arr.shape}; expected one 3D "
                "volume (X, Y, Z), optionally with a leading or trailing channel of 1"
            )
        if not np.isfinite(arr).all():
            raise DixonInputError(f"in-memory image under {self.keys[0]!r} contains NaN or Inf")
        if isinstance(image, MetaTensor):
            affine = np.asarray(image.affine.detach().cpu().numpy(), dtype=np.float64)
            name = image.meta.get("subject") or _stem(str(image.meta.get("filename_or_obj") or "image"))
        else:
            raise DixonInputError(
                f"in-memory image under {self.keys[0]!r} is a {type(image).__name__} without an "
                "affine; pass a MetaTensor so that orientation and voxel size are known"
            )
        subject = str(d.get("subject") or name)
        d["subject"] = subject
        return self._write(d, arr.astype(np.float32), affine, subject)

    def _write(
        self, d: dict[Hashable, Any], image: np.ndarray, affine: np.ndarray, subject: str
    ) -> dict[Hashable, Any]:
        meta = {
            # a virtual file name so that SaveImaged writes <output_dir>/<subject>/<subject>_seg.nii.gz; without a
            # NIfTI extension because Spacingd (monai 1.6) then treats every "image_*" key as a meta dict, and MONAI
            # Label puts a string "image_path" beside "image"
            "filename_or_obj": subject,
            "original_affine": torch.as_tensor(affine, dtype=torch.float64),
            "spatial_shape": np.asarray(image.shape[-3:]),
            "original_channel_dim": float("nan"),
            "space": "RAS",
        }
        img = MetaTensor(
            torch.as_tensor(image[None] if image.ndim == 3 else image, dtype=torch.float32),
            affine=torch.as_tensor(affine, dtype=torch.float64),
            meta=meta,
        )
        for key in self.keys:
            d[key] = img
        return d


def _describe(given: Any) -> str:
    return f"file {given}" if isinstance(given, (str, Path)) else f"an in-memory {type(given).__name__}"


def _stem(path: str | Path) -> str:
    name = Path(str(path)).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
