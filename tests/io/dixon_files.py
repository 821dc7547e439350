"""Small NIfTI Dixon inputs written on the fly, shared by the io and FF-map tests (``tests.io.dixon_files``)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scripts.phantom import generate_cohort

SHAPE = (12, 10, 6)
SPACING = (2.0, 2.0, 5.0)  # thick slices along array axis 2: a 2D axial acquisition


def affine(spacing: tuple[float, float, float] = SPACING) -> np.ndarray:
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = (-10.0, -20.0, 30.0)
    return aff


def write(path: Path, data: np.ndarray, aff: np.ndarray | None = None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine() if aff is None else aff), str(path))
    return str(path)


def water_fat(tmp_path: Path, water=80.0, fat=20.0) -> dict:
    """A water/fat entry; each of ``water``/``fat`` is a constant, an array, or ``(array, affine)``."""
    entry: dict = {"subject": "S1"}
    for role, value in (("water", water), ("fat", fat)):
        data, aff = value if isinstance(value, tuple) else (value, None)
        if np.isscalar(data):
            data = np.full(SHAPE, data, np.float32)
        entry[role] = write(tmp_path / f"S1_{role}.nii.gz", data, aff)
    return entry


def write_json(path: Path, obj: dict) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def phantom_cohort(out: Path) -> Path:
    """Two tiny phantom subjects (one in "testing") written by the phantom's own cohort writer."""
    generate_cohort(out, n=2, geometry="tiny", variety=False, n_testing=1, progress=False)
    return out
