"""How typical a scan is of a pool of scans: cheap acquisition and anatomy descriptors and their information density.

Uncertainty sampling alone ranks outliers first: the scan a network doubts most is often an atypical one (a field
of view cut to another part of the anatomy, an unusual resolution) whose annotation teaches little about the rest of
the pool (``scripts/studies/annotation_loop.py``, docs/studies/annotation_loop.md). Information-density weighting
(Settles & Craven 2008, "An analysis of active learning strategies for sequence labeling tasks") multiplies the doubt
by how representative the scan is::

    score(u) = doubt(u) * density(u) ** beta
    density(u) = 1 / (N - 1) * sum over the other scans v of the pool of sim(u, v)      (1 when N = 1)
    sim(u, v) = exp(-|z(u) - z(v)|^2 / (2 * K))

with ``N`` the scans of the pool (unlabelled and labelled), ``K`` = :data:`N_FEATURES` features per scan and ``z``
the features standardised over the pool (:func:`standardise`). Dividing by ``K`` makes the kernel width one robust
standard deviation per feature whatever the number of features: two scans one robust SD apart in every feature have
similarity exp(-1/2) = 0.61, identical scans 1, and a scan 15 SD away in one feature (a field cut to half its length
in a pool whose lengths agree within 5 %) about exp(-225 / 20) = 1e-5. Density is in (0, 1]; a pool of identical
scans has density 1 everywhere.

The measurements (:class:`ScanDescriptor`, in world terms so that RAS and LPS storage of one acquisition agree): the
field of view along the world right-left, anterior-posterior and superior-inferior axes (mm), the voxel spacing along
them (mm), the fraction of the field that is body, and the body's mean cross-section (mm^2) and mean signal (image
units) in the inferior, middle and superior third of the field. The features (:data:`FEATURES`) are chosen to be
roughly independent, because a quantity measured twice would count twice: the three extents, the in-plane spacing
(the two in-plane spacings are nearly always equal) and the slice spacing, all as logs (a 10 % difference weighs the
same at 2 mm and at 5 mm); the body fraction (how large the anatomy is in the field); and the cranio-caudal profile
of the body, as logs of the inferior and superior thirds' cross-section and signal over their mean over the thirds:
where the pelvis and the fat-rich gluteal region sit in the field, i.e. which part of the anatomy the field covers.
The signal enters only as ratios within the scan, so vendor scaling and storage units do not matter. The number of
slices is left out (the extent over the spacing). Cost: the header and one read of the image sampled every ~4 mm
in-plane: 0.18-0.21 s at 394 x 315 x 143 voxels (gzipped int16 NIfTI, busy 2-core CPU, 2026-12-05).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scripts.quantification.formulas import denominator_threshold

__all__ = [
    "TYPICALITY_VERSION",
    "FEATURES",
    "N_FEATURES",
    "ScanDescriptor",
    "describe_scan",
    "feature_table",
    "standardise",
    "pool_density",
    "typical_score",
]

#: changes whenever descriptors are computed differently, so that cached descriptors of an older kind are recomputed.
TYPICALITY_VERSION = 1
#: the features compared between scans, in the order of :meth:`ScanDescriptor.vector` (module docstring).
FEATURES: tuple[str, ...] = (
    "log_extent_rl",
    "log_extent_ap",
    "log_extent_si",
    "log_spacing_in_plane",
    "log_spacing_si",
    "body_fraction",
    "log_area_inferior_to_mean",
    "log_area_superior_to_mean",
    "log_signal_inferior_to_mean",
    "log_signal_superior_to_mean",
)
N_FEATURES = len(FEATURES)
#: the smallest spread a feature is standardised by: 5 % for the log features, 0.05 for the body fraction. A pool
#: whose scans agree more closely than that (one protocol, one kind of subject) must not turn a rounding difference
#: or an ordinary difference between two people into an outlier. The body fraction's floor is of the order of its
#: spread between subjects of one protocol (1.4826 x MAD 0.067 over the 25 full-coverage scans of the 32-subject
#: reference-geometry phantom cohort; the profile ratios' 0.02-0.05 there, the extents' and spacings' far less).
_FLOOR_LOG, _FLOOR_FRACTION = math.log(1.05), 0.05
#: a third of the field with less body than 1 cm^2 counts as 1 cm^2 (log of 0 is undefined; "no body" is one value).
_MIN_AREA_MM2 = 100.0
#: in-plane sampling of the descriptor read (mm): enough for a body fraction and cross-sections, and cheap.
_SAMPLE_MM = 4.0
#: body = signal above this fraction of the robust maximum (P99 of the positive values), as in the swap check.
_BODY_RELATIVE_THRESHOLD = 0.1
#: the standard deviation of a normal distribution, as a multiple of its median absolute deviation.
_MAD_TO_SD = 1.4826
#: scans per block of the pairwise similarities (block x N x K float64: 40 MB for N = 1000).
_ROWS_PER_BLOCK = 512


@dataclass(frozen=True)
class ScanDescriptor:
    """The measurements of one scan (module docstring).

    World axes are RAS: right-left (``rl``), anterior-posterior (``ap``), superior-inferior (``si``); each voxel axis
    is attributed to the world axis it is closest to (an oblique field is described by its voxel grid).

    Attributes:
        extent_mm: field of view (number of voxels x spacing) along rl, ap, si, in mm.
        spacing_mm: voxel spacing along rl, ap, si, in mm.
        body_fraction: fraction of the field's voxels that are body (signal above 10 % of the robust maximum).
        body_area_mm2: mean body cross-section of the slices in the inferior, middle and superior third of the
            field, in mm^2.
        body_signal: mean signal of the body voxels in the same thirds, in the image's units (a third without body:
            the body threshold).
    """

    extent_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    body_fraction: float
    body_area_mm2: tuple[float, float, float]
    body_signal: tuple[float, float, float]

    def as_dict(self) -> dict[str, object]:
        """The measurements, JSON-ready (the strategy caches them)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> ScanDescriptor:
        """The descriptor of :meth:`as_dict`'s output."""
        triple = {k: tuple(float(x) for x in values[k]) for k in ("extent_mm", "spacing_mm", "body_area_mm2")}
        return cls(
            body_fraction=float(values["body_fraction"]),
            body_signal=tuple(float(x) for x in values["body_signal"]),
            **triple,
        )

    def vector(self) -> np.ndarray:
        """``(N_FEATURES,)`` float64, the features of :data:`FEATURES` (sizes as natural logs)."""
        area = np.maximum(np.asarray(self.body_area_mm2, dtype=np.float64), _MIN_AREA_MM2)
        signal = np.asarray(self.body_signal, dtype=np.float64)
        if not (signal > 0).all():
            raise ValueError(f"body signal must be positive in every third, got {self.body_signal}")
        sx, sy, sz = self.spacing_mm
        return np.asarray(
            [
                *np.log(self.extent_mm),
                math.log(math.sqrt(sx * sy)),
                math.log(sz),
                self.body_fraction,
                math.log(area[0] / area.mean()),
                math.log(area[2] / area.mean()),
                math.log(signal[0] / signal.mean()),
                math.log(signal[2] / signal.mean()),
            ],
            dtype=np.float64,
        )


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], tuple[int, ...]]:
    """``(sampled |signal|, orientation (voxel axis -> world axis, flip), spacing (mm), sampling steps, shape)``."""
    try:
        img = nib.load(str(path))
    except Exception as e:
        raise ValueError(f"{path}: not readable as a NIfTI image ({e}); check the file") from e
    shape = img.shape
    if len(shape) < 3 or any(n != 1 for n in shape[3:]):
        raise ValueError(f"{path}: expected one 3D volume, got shape {shape}; give the scan one volume at a time")
    affine = np.asarray(img.affine, dtype=np.float64)
    ornt = nib.orientations.io_orientation(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if np.isnan(ornt).any() or not np.all(spacing > 0):
        raise ValueError(f"{path}: the affine {affine[:3, :3].tolist()} gives no world axis per voxel axis; fix it")
    si = int(np.argsort(ornt[:, 0])[2])
    if shape[si] < 3:
        raise ValueError(f"{path}: {shape[si]} slice(s) along superior-inferior; a 3D scan is expected")
    # every slice is kept (the profile needs them); in-plane one voxel every ~4 mm
    steps = [1 if j == si else max(1, int(_SAMPLE_MM // spacing[j])) for j in range(3)]
    index = tuple(slice(None, None, s) for s in steps) + (0,) * (len(shape) - 3)
    signal = np.abs(np.asarray(img.dataobj[index], dtype=np.float32))
    return signal, ornt, spacing, steps, tuple(shape[:3])


def describe_scan(path: str | Path) -> ScanDescriptor:
    """The measurements of the NIfTI image ``path`` (one 3D volume; 4D with one volume is accepted), from its
    header and one read sampled every ~4 mm in-plane.

    Raises:
        ValueError: the file cannot be read as a 3D image, its affine has no clear world axis per voxel axis, it has
            fewer than 3 slices along the superior-inferior axis, or no signal; the message names the file.
    """
    path = Path(path)
    signal, ornt, spacing, steps, shape = _read(path)
    if not (np.isfinite(signal) & (signal > 0)).any():
        raise ValueError(f"{path}: no signal above zero; an empty image cannot be described")
    threshold = denominator_threshold(signal, None, _BODY_RELATIVE_THRESHOLD)
    body = np.isfinite(signal) & (signal >= threshold)
    voxel_axis = np.argsort(ornt[:, 0])  # voxel axis of each world axis
    si = int(voxel_axis[2])
    in_plane = tuple(j for j in range(3) if j != si)
    pixel_mm2 = float(np.prod([spacing[j] * steps[j] for j in in_plane]))
    count = body.sum(axis=in_plane).astype(np.float64)
    total = np.where(body, signal, 0.0).sum(axis=in_plane, dtype=np.float64)
    if ornt[si, 1] < 0:  # slices stored superior first: inferior first, as the thirds are named
        count, total = count[::-1], total[::-1]
    area, mean_signal = [], []
    for n, s in zip(np.array_split(count, 3), np.array_split(total, 3)):
        area.append(float(n.mean() * pixel_mm2))
        mean_signal.append(float(s.sum() / n.sum()) if n.sum() else float(threshold))
    return ScanDescriptor(
        extent_mm=tuple(float(spacing[j] * shape[j]) for j in voxel_axis),
        spacing_mm=tuple(float(spacing[j]) for j in voxel_axis),
        body_fraction=float(body.mean()),
        body_area_mm2=tuple(area),
        body_signal=tuple(mean_signal),
    )


def feature_table(descriptors: Mapping[str, ScanDescriptor]) -> tuple[list[str], np.ndarray]:
    """``(scan ids sorted, (N, N_FEATURES) feature vectors)`` of the pool."""
    ids = sorted(descriptors)
    return ids, np.stack([descriptors[i].vector() for i in ids]) if ids else np.zeros((0, N_FEATURES))


def _floors() -> np.ndarray:
    return np.asarray([_FLOOR_FRACTION if f == "body_fraction" else _FLOOR_LOG for f in FEATURES])


def standardise(table: np.ndarray, floors: np.ndarray | None = None) -> np.ndarray:
    """Robust z-scores of each column of ``table`` over its rows: ``(x - median) / scale``.

    ``scale`` is 1.4826 x the median absolute deviation (MAD; the SD of normal data), but never less than the
    column's floor: by default 5 % for the log features and 0.05 for the body fraction. The floor guards a zero MAD
    (more than half the scans agree exactly: one protocol and a few exceptions): a column with no spread gives 0 for
    every scan, and an exception is measured against the smallest difference that matters. (The modified z-score's
    fallback, 1.2533 x the mean absolute deviation, is not used: it is set by the exceptions themselves and bounds a
    lone exception's z-score at N / 1.2533 however far it lies, e.g. 3.2 for a field cut to half in a pool of 4.)

    Args:
        table: ``(N, K)`` feature vectors.
        floors: ``(K,)`` smallest scales; default the floors of :data:`FEATURES` (``K`` must then be N_FEATURES).

    Returns:
        ``(N, K)`` float64 z-scores.
    """
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or not np.isfinite(table).all():
        raise ValueError(f"expected a finite (N, K) table, got shape {table.shape}")
    floors = _floors() if floors is None else np.asarray(floors, dtype=np.float64)
    if floors.shape != (table.shape[1],) or not (floors > 0).all():
        raise ValueError(f"floors must be {table.shape[1]} positive values, got {floors}")
    if len(table) == 0:
        return table.copy()
    centre = np.median(table, axis=0)
    deviation = np.abs(table - centre)
    return (table - centre) / np.maximum(_MAD_TO_SD * np.median(deviation, axis=0), floors)


def pool_density(descriptors: Mapping[str, ScanDescriptor]) -> dict[str, float]:
    """Information density of every scan of a pool (module docstring): its mean similarity to the other scans.

    Args:
        descriptors: scan id -> descriptor, for every scan of the pool (unlabelled and labelled).

    Returns:
        scan id -> density in (0, 1]; 1 for a pool of one scan (nothing to be atypical of).
    """
    ids, table = feature_table(descriptors)
    if len(ids) < 2:
        return dict.fromkeys(ids, 1.0)
    z = standardise(table)
    total = np.empty(len(ids))
    # rows in blocks: a datastore of thousands of studies needs no (N, N, K) array
    for start in range(0, len(ids), _ROWS_PER_BLOCK):
        block = z[start : start + _ROWS_PER_BLOCK]
        d2 = ((block[:, None, :] - z[None, :, :]) ** 2).sum(-1)
        total[start : start + len(block)] = np.exp(-d2 / (2 * z.shape[1])).sum(1)
    density = (total - 1.0) / (len(ids) - 1)  # leave the scan's similarity to itself (1) out
    return {i: float(d) for i, d in zip(ids, density)}


def typical_score(doubt: float, density: float, beta: float = 1.0) -> float:
    """``doubt * density ** beta``: the doubt, discounted by how atypical the scan is (``beta`` 0: doubt alone).

    Raises:
        ValueError: ``beta`` < 0 (it would favour atypical scans) or ``density`` outside [0, 1].
    """
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite value >= 0, got {beta!r}")
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density!r}")
    return float(doubt) * float(density) ** beta
