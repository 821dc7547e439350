"""The stored form of the anatomical-variability model: PCA modes of inter-subject displacement fields.

Kept apart from :mod:`scripts.transforms.anatomical_variability` (which builds a model by registration and needs
SimpleITK) so that training, which only samples from a model
(:class:`scripts.transforms.spatial.anatomical_deform.RandAnatomicalDeformd`), imports numpy alone.

Displacements are world RAS millimetres (component 0 along +x = patient's right, 1 along +y = anterior,
2 along +z = superior) on the model grid whose voxel -> RAS affine is stored with the model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["AnatomicalVariabilityModel"]

_FORMAT_VERSION = 1


@dataclass
class AnatomicalVariabilityModel:
    """PCA model of non-linear inter-subject displacement fields in a reference frame.

    A field is :math:`u = \\sum_k b_k \\sqrt{\\lambda_k}\\, e_k`, with :math:`b_k \\sim N(0, 1)` giving the
    training population's variability around its mean.

    Args:
        components: (K, 3, X, Y, Z) float32 orthonormal modes :math:`e_k` (unit norm over all voxels and
            components), displacement components along world RAS x, y, z.
        eigenvalues_mm2: (K,) variances :math:`\\lambda_k` in mm^2 (descending).
        affine: (4, 4) voxel -> RAS world (mm) of the model grid.
        center_mm: (3,) RAS world point (mm) of the reference's label centroid; the model is placed on an
            image by matching this point with the image's label centroid.
        mean_mm: (3, X, Y, Z) mean field (reference -> population mean), kept for inspection, not sampled.
        num_subjects: number of subjects the model was built from (including the reference).
        info: build parameters and provenance (JSON-serialisable).
    """

    components: np.ndarray
    eigenvalues_mm2: np.ndarray
    affine: np.ndarray
    center_mm: np.ndarray
    mean_mm: np.ndarray
    num_subjects: int
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.components = np.asarray(self.components, dtype=np.float32)
        self.eigenvalues_mm2 = np.asarray(self.eigenvalues_mm2, dtype=np.float64).reshape(-1)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        self.center_mm = np.asarray(self.center_mm, dtype=np.float64).reshape(-1)
        self.mean_mm = np.asarray(self.mean_mm, dtype=np.float32)
        if self.components.ndim != 5 or self.components.shape[1] != 3:
            raise ValueError(f"components must have shape (K, 3, X, Y, Z), got {self.components.shape}")
        if self.components.shape[0] < 1:
            raise ValueError("components must hold at least one mode, got 0")
        if self.eigenvalues_mm2.shape != (self.components.shape[0],):
            raise ValueError(
                f"eigenvalues_mm2 must have shape ({self.components.shape[0]},), got {self.eigenvalues_mm2.shape}"
            )
        if np.any(self.eigenvalues_mm2 < 0):
            raise ValueError(f"eigenvalues_mm2 must be >= 0, got minimum {self.eigenvalues_mm2.min()}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must have shape (4, 4), got {self.affine.shape}")
        if self.center_mm.shape != (3,):
            raise ValueError(f"center_mm must have shape (3,), got {self.center_mm.shape}")
        if self.mean_mm.shape != self.components.shape[1:]:
            raise ValueError(f"mean_mm must have shape {self.components.shape[1:]}, got {self.mean_mm.shape}")

    @property
    def num_components(self) -> int:
        """Number of modes K."""
        return int(self.components.shape[0])

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """(X, Y, Z) of the model grid."""
        return tuple(int(n) for n in self.components.shape[2:])  # type: ignore[return-value]

    @property
    def total_variance_mm2(self) -> float:
        """Sum of the eigenvalues: total variance of the field over the grid, mm^2."""
        return float(self.eigenvalues_mm2.sum())

    @property
    def rms_std_mm(self) -> float:
        """Root-mean-square over the grid voxels of the displacement's standard deviation (mm)."""
        return float(np.sqrt(self.total_variance_mm2 / np.prod(self.spatial_shape)))

    def field_mm(self, coefficients: Sequence[float]) -> np.ndarray:
        """(3, X, Y, Z) float32 field :math:`\\sum_k b_k \\sqrt{\\lambda_k} e_k` in world RAS mm.

        Args:
            coefficients: (<= K,) :math:`b_k` in standard deviations; missing trailing ones are 0.
        """
        b = np.zeros(self.num_components)
        c = np.asarray(coefficients, dtype=np.float64).reshape(-1)
        if c.size > self.num_components:
            raise ValueError(f"got {c.size} coefficients for a model with {self.num_components} modes")
        b[: c.size] = c
        weights = (b * np.sqrt(self.eigenvalues_mm2)).astype(np.float32)
        return np.tensordot(weights, self.components, axes=1)

    def save(self, path: str | Path) -> Path:
        """Write the model to a compressed ``.npz`` (no pickle); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            np.savez_compressed(
                fh,
                format_version=np.int64(_FORMAT_VERSION),
                components=self.components,
                eigenvalues_mm2=self.eigenvalues_mm2,
                affine=self.affine,
                center_mm=self.center_mm,
                mean_mm=self.mean_mm,
                num_subjects=np.int64(self.num_subjects),
                info=np.array(json.dumps(self.info)),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> AnatomicalVariabilityModel:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"anatomical variability model not found: {path}")
        with np.load(path, allow_pickle=False) as z:
            version = int(z["format_version"])
            if version != _FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported model format_version {version}, expected {_FORMAT_VERSION}")
            return cls(
                components=z["components"],
                eigenvalues_mm2=z["eigenvalues_mm2"],
                affine=z["affine"],
                center_mm=z["center_mm"],
                mean_mm=z["mean_mm"],
                num_subjects=int(z["num_subjects"]),
                info=json.loads(str(z["info"])),
            )
