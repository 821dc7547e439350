"""Synthetic 4-mm volumes for the multi-atlas tests: an asymmetric body with two 'muscles', known deformations."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the library's own spelling)
from scripts.evaluation.segmentation_metrics import dice
from scripts.studies.atlas_registration import MultiAtlasParams

SPACING = 4.0
SHAPE = (48, 40, 32)  # (x, y, z) voxels of 4 mm
# fast settings for 4 mm synthetic volumes: registration on the native grid, two affine levels, one B-spline level
FAST = MultiAtlasParams(
    working_spacing_mm=SPACING,
    sampling_percentage=0.1,
    affine_iterations=150,
    affine_shrink=(2, 1),
    affine_sigmas_mm=(4.0, 0.0),
    bspline_mesh_mm=40.0,
    bspline_iterations=30,
    bspline_shrink=(1,),
    bspline_sigmas_mm=(0.0,),
)


def ellipsoid(centre_mm: tuple[float, float, float], radii_mm: tuple[float, float, float]) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[(np.arange(n) + 0.5) * SPACING for n in SHAPE], indexing="ij"), axis=-1)
    return (((grid - np.array(centre_mm)) / np.array(radii_mm)) ** 2).sum(-1) <= 1.0


def phantom() -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric body with two 'muscles' (labels 1 and 2) and a dark 'bone'; arrays in (x, y, z) order."""
    body = ellipsoid((96, 80, 64), (80, 60, 52))
    left = ellipsoid((64, 90, 64), (18, 14, 40))
    right = ellipsoid((132, 84, 60), (24, 12, 36))
    bone = ellipsoid((96, 60, 64), (14, 12, 44))
    image = np.where(body, 100.0, 0.0) + np.where(left, 200.0, 0.0) + np.where(right, 120.0, 0.0)
    image[bone] = 30.0
    label = np.zeros(SHAPE, np.uint8)
    label[left] = 1
    label[right] = 2
    return image.astype(np.float32), label


def to_sitk(arr: np.ndarray, pixel: int = sitk.sitkFloat32) -> sitk.Image:
    img = sitk.GetImageFromArray(arr.transpose(2, 1, 0))
    img.SetSpacing((SPACING,) * 3)
    return sitk.Cast(img, pixel)


def to_numpy(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(img).transpose(2, 1, 0)


def deformed(image: sitk.Image, label: sitk.Image, transform: sitk.Transform) -> tuple[sitk.Image, sitk.Image]:
    # atlas(x) = target(transform(x)): the registration has to find the inverse
    return (
        sitk.Resample(image, image, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32),
        sitk.Resample(label, label, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8),
    )


def known_affine() -> sitk.AffineTransform:
    t = sitk.AffineTransform(3)
    t.SetCenter((96.0, 80.0, 64.0))
    angle = np.deg2rad(8.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    t.SetMatrix((rot @ np.diag([1.08, 0.95, 1.0])).ravel().tolist())
    t.SetTranslation((9.0, -6.0, 4.0))
    return t


def mean_dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([dice(a == v, b == v) for v in (1, 2)]))
