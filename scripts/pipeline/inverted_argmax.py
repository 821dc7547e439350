"""Softmax probabilities on the working grid -> label map on the input grid, slab by slab.

Why: ``Invertd`` followed by ``AsDiscreted(argmax=True)`` first resamples all 9 probability channels to the input
grid (float64 during the resampling, float32 after it: about 1.3 GB and 0.7 GB at the reference geometry of
400x320x145 voxels) and only then takes the argmax; on the 2-core CPU the two steps took 1.9 s and 3.3 s per
subject (docs/studies/speed.md). This step gives the same label map without that tensor: it resamples the
probabilities for a slab of output planes at a time, with the very interpolation ``Invertd`` uses (MONAI's
``spatial_resample``: the same voxel-to-voxel affine, ``torch.nn.functional.affine_grid`` coordinates and
``grid_sample`` in the resampling's dtype, float32 before the argmax), takes the argmax of the slab and writes
``uint8`` labels. Output voxels whose 8 interpolation neighbours on the working grid all carry the same label by a
probability margin above ``interior_margin`` skip the interpolation: a trilinear interpolation is a convex
combination with the same weights in every channel, so that label stays the largest there (see
:func:`interior_labels`); only the voxels near a label boundary are interpolated. The label map equals
``Invertd`` + argmax voxel for voxel (tests/pipeline/test_inverted_argmax.py).

Geometry: the last operation applied to the image must be the working-grid resampling (``Spacingd``); it is
undone here, and the operations before it (``Orientationd``: axis flips and permutations) are undone by their own
MONAI inverses on the ``uint8`` labels, so the output's affine and meta are those ``Invertd`` gives. Anything
else (another last operation, spline orders, MONAI's compiled resampler) falls back to ``Invertd``'s own path and
an argmax, which is exact but materialises the full-resolution channels.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from copy import deepcopy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai import config as monai_config
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import AFFINE_TOL, to_affine_nd
from monai.networks.utils import to_norm_affine
from monai.transforms import Compose, InvertibleTransform, MapTransform, SpatialResample
from monai.transforms.inverse import TraceableTransform
from monai.transforms.utils import resolves_modes
from monai.utils import TraceKeys
from monai.utils.type_conversion import get_torch_dtype_from_string

__all__ = ["SLAB_BYTES", "slab_planes", "interior_labels", "resample_argmax", "InvertedArgmax", "InvertedArgmaxd"]

SLAB_BYTES = 64 * 2**20
"""Default memory budget of one slab's temporaries (coordinates, resampled channels, argmax), in bytes."""

UNDECIDED = 255
"""Marker, in :func:`interior_labels`, of working voxels whose neighbourhood needs the interpolation."""


def slab_planes(plane_voxels: int, channels: int, budget_bytes: int = SLAB_BYTES) -> int:
    """Number of output planes per slab so that one slab's temporaries stay within ``budget_bytes``.

    Per output voxel a slab holds the homogeneous base coordinates (4 float64), the sampling coordinates
    (3 float64), the resampled channels (``channels`` float64 and their float32 copy), the argmax (int64) and the
    label (uint8): ``68 + 12 * channels`` bytes, 176 for 9 channels.

    Args:
        plane_voxels: voxels in one output plane (the product of the other two output dimensions).
        channels: probability channels.
        budget_bytes: memory budget of a slab.

    Returns:
        at least 1 (a single plane larger than the budget is still processed).
    """
    if plane_voxels < 1 or channels < 1 or budget_bytes < 1:
        raise ValueError(
            f"plane_voxels, channels and budget_bytes must be positive, got {plane_voxels, channels, budget_bytes}"
        )
    per_voxel = 4 * 8 + 3 * 8 + channels * (8 + 4) + 8 + 1
    return max(1, int(budget_bytes // (plane_voxels * per_voxel)))


def _axis_coordinates(n: int, align_corners: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised coordinates of ``n`` voxel centres, computed as ``affine_grid``'s base grid does (ATen)."""
    if n <= 1:
        return torch.zeros(1, dtype=dtype, device=device)
    r = torch.linspace(-1, 1, n, dtype=dtype, device=device)
    return r if align_corners else r * (n - 1) / n


def _slab_base(axes: Sequence[torch.Tensor], d0: int, d1: int) -> torch.Tensor:
    """Homogeneous normalised coordinates ``(d1 - d0, H, W, 4)`` of output planes ``d0:d1`` (x = W, y = H, z = D)."""
    ld, lh, lw = axes
    base = torch.empty(d1 - d0, len(lh), len(lw), 4, dtype=ld.dtype, device=ld.device)
    base[..., 0].copy_(lw)
    base[..., 1].copy_(lh[:, None])
    base[..., 2].copy_(ld[d0:d1, None, None])
    base[..., 3] = 1
    return base


def _first_argmax(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Largest channel of ``values`` ``(C, ...)``, the first one on ties as ``torch.argmax``: (label uint8, the
    largest value, the second largest value), by one elementwise pass per channel (``torch.argmax`` and
    ``torch.topk`` over the leading axis were 5-10 times slower on the 2-core CPU)."""
    best = values[0].clone()
    second = torch.full_like(best, -torch.inf)
    label = torch.zeros(best.shape, dtype=torch.uint8, device=best.device)
    for c in range(1, values.shape[0]):
        v = values[c]
        above = v > best  # strict: an equal later channel loses, as in torch.argmax
        torch.where(above, best, torch.maximum(second, v), out=second)
        torch.maximum(best, v, out=best)
        label.masked_fill_(above, c)
    return label, best, second


def _sample_argmax(probs: torch.Tensor, grid: torch.Tensor, mode: str, padding_mode: str, ac: bool) -> torch.Tensor:
    """``grid_sample`` of ``probs`` ``(1, C, X, Y, Z)`` at ``grid`` ``(1, a, b, c, 3)``, cast to float32, argmax
    over the channels: ``(a, b, c)`` uint8."""
    values = F.grid_sample(probs, grid, mode=mode, padding_mode=padding_mode, align_corners=ac)
    return _first_argmax(values[0].to(torch.float32))[0]


def interior_labels(probs: torch.Tensor, margin: float) -> torch.Tensor:
    """Label of each working voxel's 2x2x2 block ``[i:i+2, j:j+2, k:k+2]`` where the block is decided, else 255.

    A block is decided when its 8 voxels share one argmax label ``L`` and in each of them ``L``'s probability
    exceeds every other channel's by more than ``margin``. A trilinear sample whose 8 neighbours are such a block
    is a convex combination (weights >= 0, summing to 1, the same in every channel), so ``L`` exceeds every other
    channel there by more than ``margin`` too; with ``margin`` above float32 rounding (1e-6 for probabilities) the
    float32 argmax of the interpolated channels is ``L``. The block of the last voxel along an axis repeats that
    voxel, which is what ``grid_sample``'s border padding samples there.

    Args:
        probs: ``(C, X, Y, Z)`` probabilities on the working grid (any float dtype).
        margin: the decided margin, a probability (e.g. 1e-4).

    Returns:
        ``(X, Y, Z)`` uint8: the block's label, or 255 where the voxels near it must be interpolated.
    """
    if probs.shape[0] > UNDECIDED:
        raise ValueError(f"at most {UNDECIDED} channels, got {probs.shape[0]}")
    label, best, second = _first_argmax(probs.to(torch.float32))
    label[(best - second) <= margin] = UNDECIDED
    padded = F.pad(label[None, None].float(), (0, 1, 0, 1, 0, 1), mode="replicate")[0, 0].to(torch.uint8)
    x, y, z = label.shape
    out = label.clone()
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                out[padded[dx : dx + x, dy : dy + y, dz : dz + z] != label] = UNDECIDED
    return out


def _voxel_index(g: torch.Tensor, size: int, ac: bool) -> torch.Tensor:
    """Lower interpolation neighbour (``grid_sample``'s unnormalisation, border-clipped) of normalised ``g``."""
    c = (g + 1) / 2 * (size - 1) if ac else ((g + 1) * size - 1) / 2
    return c.clamp_(0, size - 1).floor_().long()


def _decided_slab(
    decided: torch.Tensor, axes: Sequence[torch.Tensor], d0: int, d1: int, theta_t: torch.Tensor, ac: bool
) -> torch.Tensor:
    """``decided``'s label at each output voxel of planes ``d0:d1`` (its lower interpolation neighbour).

    The neighbour only has to be right up to coordinates within float rounding of a working voxel's centre (there
    the other neighbour's weight is ~1e-13, far below the margin), so for an axis-aligned mapping (Orientationd +
    Spacingd never rotate) each axis's indices come from its own 1-D coordinates: one gather per slab.
    """
    t = theta_t[0]
    sx, sy, sz = decided.shape
    ld, lh, lw = axes
    if bool((t[:3, :3] - torch.diag(torch.diagonal(t[:3, :3]))).abs().max() == 0):
        # grid_sample's (x, y, z) are the working array's (Z, Y, X) axes
        iz = _voxel_index(lw * t[0, 0] + t[3, 0], sz, ac)
        iy = _voxel_index(lh * t[1, 1] + t[3, 1], sy, ac)
        ix = _voxel_index(ld[d0:d1] * t[2, 2] + t[3, 2], sx, ac)
        return decided[ix[:, None, None], iy[None, :, None], iz[None, None, :]]
    grid = _slab_base(axes, d0, d1).view(1, -1, 4).bmm(theta_t).view(d1 - d0, len(lh), len(lw), 3)
    return decided[
        _voxel_index(grid[..., 2], sx, ac), _voxel_index(grid[..., 1], sy, ac), _voxel_index(grid[..., 0], sz, ac)
    ]


def _interpolated_slab(
    probs: torch.Tensor,
    axes: Sequence[torch.Tensor],
    d0: int,
    d1: int,
    theta_t: torch.Tensor,
    decided: torch.Tensor | None,
    mode: str,
    pad: str,
    ac: bool,
) -> torch.Tensor:
    """Labels ``(d1 - d0, H, W)`` of output planes ``d0:d1``: every voxel interpolated, or only those that
    ``decided`` leaves undecided."""
    ld, lh, lw = axes
    if decided is None:
        grid = _slab_base(axes, d0, d1).view(1, -1, 4).bmm(theta_t).view(1, d1 - d0, len(lh), len(lw), 3)
        return _sample_argmax(probs, grid, mode, pad, ac)
    out = _decided_slab(decided, axes, d0, d1, theta_t, ac)
    todo = (out == UNDECIDED).nonzero()
    if len(todo):
        # the rows of affine_grid's base grid for these voxels, bit for bit; each row of the product depends on
        # its own row only, so the coordinates equal affine_grid's (tests/pipeline/test_inverted_argmax.py)
        i, j, k = todo.unbind(1)
        rows = torch.stack([lw[k], lh[j], ld[d0 + i], torch.ones_like(lw[k])], dim=1)
        points = rows[None].bmm(theta_t).view(1, 1, 1, -1, 3)
        out[i, j, k] = _sample_argmax(probs, points, mode, pad, ac).view(-1)
    return out


def resample_argmax(
    probs: torch.Tensor,
    xform: torch.Tensor,
    spatial_size: Sequence[int],
    mode: str = "bilinear",
    padding_mode: str = "border",
    align_corners: bool = False,
    dtype: torch.dtype = torch.float64,
    slab_bytes: int = SLAB_BYTES,
    interior_margin: float | None = 1e-4,
) -> torch.Tensor:
    """Argmax of ``probs`` resampled as MONAI's ``spatial_resample`` does, one slab of output planes at a time.

    Args:
        probs: ``(C, X, Y, Z)`` probabilities on the source grid.
        xform: 4x4 output-voxel -> source-voxel affine (MONAI's ``solve(src_affine, dst_affine)``).
        spatial_size: output shape ``(X', Y', Z')``.
        mode: ``grid_sample`` mode (``"bilinear"`` is trilinear in 3-D, or ``"nearest"``).
        padding_mode: ``grid_sample`` padding.
        align_corners: ``grid_sample``'s convention; MONAI's resampling uses False.
        dtype: the resampling's dtype (MONAI's ``Spacingd`` default: float64); the channels are cast to float32
            before the argmax, as ``Invertd``'s output is.
        slab_bytes: memory budget of one slab (:func:`slab_planes`).
        interior_margin: margin of :func:`interior_labels`; None interpolates every voxel (only possible shortcut
            for trilinear interpolation with border padding; other modes always interpolate every voxel).

    Returns:
        ``(X', Y', Z')`` uint8 labels on ``probs``' device; ties go to the lower channel, as ``torch.argmax`` does.
    """
    sizes = tuple(int(s) for s in spatial_size)
    src = probs.detach().to(dtype)[None].contiguous()
    theta = to_norm_affine(
        xform.to(device=probs.device, dtype=dtype)[None].clone(),  # on the device, as spatial_resample does
        src_size=tuple(src.shape[2:]),
        dst_size=sizes,
        align_corners=align_corners,
        zero_centered=False,
    )
    rev = [2, 1, 0]  # MONAI's reverse_indexing: grid_sample reads coordinates as (x = last axis, y, z)
    theta[:, :3] = theta[:, rev]
    theta[:, :, :3] = theta[:, :, rev]
    theta_t = theta[:, :3].transpose(1, 2)
    axes = [_axis_coordinates(s, align_corners, dtype, src.device) for s in sizes]
    shortcut = interior_margin is not None and mode == "bilinear" and padding_mode == "border"
    decided = interior_labels(probs, float(interior_margin)) if shortcut else None
    out = torch.empty(sizes, dtype=torch.uint8, device=src.device)
    step = slab_planes(sizes[1] * sizes[2], src.shape[1], slab_bytes)
    for d0 in range(0, sizes[0], step):
        d1 = min(sizes[0], d0 + step)
        out[d0:d1] = _interpolated_slab(src, axes, d0, d1, theta_t, decided, mode, padding_mode, align_corners)
    return out


def _traced_owner(transform: Any, op_id: int) -> TraceableTransform | None:
    """The transform object inside ``transform`` (a Compose of dictionary transforms) that recorded ``op_id``."""
    stack = list(transform.flatten().transforms) if isinstance(transform, Compose) else [transform]
    for _ in range(3):  # Spacingd -> Spacing -> SpatialResample
        found = [t for t in stack if isinstance(t, TraceableTransform) and id(t) == op_id]
        if found:
            return found[0]
        stack = [v for t in stack for v in vars(t).values() if isinstance(v, TraceableTransform)]
    return None


def _argmax_labels(probs: MetaTensor) -> MetaTensor:
    """``(1, X, Y, Z)`` uint8 argmax of float32 probabilities, with ``probs``' meta (AsDiscreted's tie rule)."""
    labels = torch.argmax(probs.as_tensor().to(torch.float32), dim=0, keepdim=True).to(torch.uint8)
    out = MetaTensor(labels)
    out.copy_meta_from(probs)
    return out


class InvertedArgmax:
    """Array version: ``(C, X, Y, Z)`` probabilities on the working grid + the preprocessed image -> label map.

    Gives what ``Invertd(nearest_interp=False)`` followed by ``AsDiscreted(argmax=True)`` gives (same labels, same
    affine and meta; ``uint8`` instead of float32), without the full-resolution probability channels.

    Args:
        transform: the preprocessing ``Compose`` whose operations the image carries (as ``Invertd``'s
            ``transform``).
        slab_bytes: memory budget of one slab of output planes (:func:`slab_planes`), bytes.
        interior_margin: see :func:`interior_labels`; None interpolates every output voxel.
    """

    def __init__(self, transform: Any, slab_bytes: int = SLAB_BYTES, interior_margin: float | None = 1e-4) -> None:
        if not isinstance(transform, InvertibleTransform) and not isinstance(transform, Compose):
            raise TypeError(f"transform must be the preprocessing Compose, not {type(transform).__name__}")
        if interior_margin is not None and not 1e-6 <= interior_margin < 1:
            raise ValueError(f"interior_margin must be in [1e-6, 1) (above float32 rounding), got {interior_margin}")
        self.transform = transform
        self.slab_bytes = int(slab_bytes)
        self.interior_margin = interior_margin

    def _chunked_ops(self, ops: list[dict]) -> int | None:
        """Index of the resampling to undo slab by slab, or None when the ops need the full-resolution path."""
        index = [i for i, op in enumerate(ops) if op[TraceKeys.CLASS_NAME] == "SpatialResample"]
        if len(index) != 1 or monai_config.USE_COMPILED:
            return None
        extra = ops[index[0]][TraceKeys.EXTRA_INFO]
        if isinstance(extra.get("mode"), int) or len(ops[index[0]][TraceKeys.ORIG_SIZE]) != 3:
            return None
        if any(op[TraceKeys.CLASS_NAME] != "Orientation" for op in ops[: index[0]]):
            return None  # argmax commutes with flips and permutations, not with every operation
        return index[0]

    def _undo_resampling(self, probs: MetaTensor, owner: SpatialResample) -> MetaTensor:
        """``owner``'s inverse (``SpatialResample.inverse`` -> ``spatial_resample``) fused with the argmax."""
        op = owner.pop_transform(probs)
        kw = op[TraceKeys.EXTRA_INFO]
        dtype = get_torch_dtype_from_string(kw["dtype"])
        align_corners = False if kw.get("align_corners") == TraceKeys.NONE else bool(kw.get("align_corners"))
        spatial_size = torch.tensor([int(s) for s in op[TraceKeys.ORIG_SIZE]])
        in_size = torch.tensor([int(s) for s in probs.peek_pending_shape()])
        src_affine = to_affine_nd(3, probs.peek_pending_affine()).to(torch.float64)
        dst_affine = torch.as_tensor(to_affine_nd(3, kw["src_affine"]), dtype=torch.float64)
        xform = torch.as_tensor(
            to_affine_nd(3, np.linalg.solve(src_affine.numpy(), dst_affine.numpy())), dtype=torch.float64
        )
        same_size = bool(torch.equal(spatial_size, in_size))
        unchanged = same_size and (
            bool(torch.allclose(src_affine, dst_affine, atol=AFFINE_TOL))
            or bool(torch.allclose(xform, torch.eye(4, dtype=torch.float64), atol=AFFINE_TOL))
        )
        with owner.trace_transform(False):
            meta = TraceableTransform.track_transform_meta(
                probs,
                sp_size=spatial_size,
                affine=None if unchanged else xform,
                extra_info=dict(kw),
                orig_size=tuple(in_size.tolist()),
                transform_info=owner.get_transform_info(),
                lazy=False,
            )
        if unchanged:  # spatial_resample returns the image as it is
            labels = torch.argmax(probs.as_tensor().to(torch.float32), dim=0).to(torch.uint8)
        else:
            _, mode, padding_mode, _ = resolves_modes(kw["mode"], kw["padding_mode"])
            labels = resample_argmax(
                probs.as_tensor(),
                xform,
                spatial_size.tolist(),
                mode,
                padding_mode,
                align_corners,
                dtype,
                self.slab_bytes,
                self.interior_margin,
            )
        out = MetaTensor(labels[None])
        out.copy_meta_from(meta)
        return out

    def __call__(self, probabilities: torch.Tensor, image: MetaTensor) -> MetaTensor:
        """``probabilities`` ``(C, X, Y, Z)`` (working grid), ``image`` (the preprocessed input, its meta and
        applied operations) -> ``(1, X0, Y0, Z0)`` uint8 labels on the input grid, with the input's affine."""
        if probabilities.ndim != 4:
            raise ValueError(
                f"probabilities must be (C, X, Y, Z) of one subject, got shape {tuple(probabilities.shape)}"
            )
        if not isinstance(image, MetaTensor):
            raise TypeError("image must be the preprocessed MetaTensor, which carries the operations to undo")
        data = MetaTensor(
            probabilities.detach().as_tensor() if isinstance(probabilities, MetaTensor) else probabilities.detach()
        )
        data.meta = deepcopy(image.meta)
        data.applied_operations = deepcopy(image.applied_operations)
        chunked = self._chunked_ops(data.applied_operations)
        is_labels = False
        while data.applied_operations:
            op = data.applied_operations[-1]
            owner = _traced_owner(self.transform, op[TraceKeys.ID])
            if owner is None or not isinstance(owner, InvertibleTransform):
                raise ValueError(f"the image's operation {op[TraceKeys.CLASS_NAME]} was not applied by `transform`")
            if chunked is not None and len(data.applied_operations) - 1 == chunked:
                data = self._undo_resampling(data, owner)
                chunked, is_labels = None, True
            else:
                data = owner.inverse(data)
        return data if is_labels else _argmax_labels(data)


class InvertedArgmaxd(MapTransform):
    """Dictionary version of :class:`InvertedArgmax`: replaces ``Invertd`` + ``AsDiscreted(argmax=True)``.

    Args:
        keys: the prediction key(s), holding ``(C, X, Y, Z)`` probabilities (after ``Activationsd`` softmax).
        transform: the preprocessing ``Compose``.
        orig_keys: the image key(s) whose applied operations and meta describe the grids (one for all keys, or
            one per key).
        slab_bytes: see :class:`InvertedArgmax`.
        interior_margin: see :class:`InvertedArgmax`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        transform: Any,
        orig_keys: KeysCollection,
        slab_bytes: int = SLAB_BYTES,
        interior_margin: float | None = 1e-4,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        origs = [orig_keys] if isinstance(orig_keys, str) else list(orig_keys)
        self.orig_keys = origs * len(self.keys) if len(origs) == 1 else origs
        if len(self.orig_keys) != len(self.keys):
            raise ValueError(f"orig_keys must name one key or one per key, got {orig_keys!r} for {self.keys!r}")
        self.t = InvertedArgmax(transform, slab_bytes, interior_margin)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, orig_key in self.key_iterator(d, self.orig_keys):
            d[key] = self.t(d[key], d[orig_key])
        return d
