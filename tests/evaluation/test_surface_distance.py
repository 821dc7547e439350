"""Tests of scripts.evaluation.surface_distance on masks with answers worked out by hand, and against MONAI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance
from scripts.evaluation.surface_distance import compute_surface_distances, hausdorff_distance, mean_surface_distance


def _box(shape: tuple[int, ...], *slices: slice) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slices)] = True
    return mask


def _sphere(shape: tuple[int, ...], centre_mm: np.ndarray, radius_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij"), axis=-1)
    return np.sum((grid - centre_mm) ** 2, axis=-1) <= radius_mm**2


def _onehot(mask: np.ndarray) -> torch.Tensor:
    m = torch.as_tensor(mask, dtype=torch.float32)
    return torch.stack([1 - m, m])[None]


# --- surface distances with anisotropic spacing ----------------------------------------------------------------------


@pytest.mark.parametrize(("axis", "expected_mm"), [(2, 3.0), (0, 1.0), (1, 1.0)])
def test_box_shift_by_one_voxel_anisotropic(axis: int, expected_mm: float) -> None:
    # spacing (1, 1, 3): one voxel in z is 3 mm, in x or y 1 mm. The moved face of the shifted box lies one voxel
    # beyond the other box's face, and no surface voxel is farther than one voxel from the other surface.
    spacing = (1.0, 1.0, 3.0)
    ref = _box((9, 9, 9), slice(2, 6), slice(2, 6), slice(2, 6))
    pred = np.roll(ref, 1, axis=axis)
    assert hausdorff_distance(pred, ref, spacing) == pytest.approx(expected_mm)
    assert hausdorff_distance(ref, pred, spacing) == pytest.approx(expected_mm)  # symmetric
    assert hausdorff_distance(pred, ref, spacing, percentile=95) <= expected_mm + 1e-9


def test_surface_distances_hand_computed_1d() -> None:
    # 1D, spacing 2 mm: pred = voxels 2..5, ref = voxels 3..8. Surfaces (ends): pred {2, 5}, ref {3, 8}.
    # pred->ref: |2-3| = 1 voxel, |5-3| = 2 voxels -> [2, 4] mm; ref->pred: |3-2| = 1, |8-5| = 3 -> [2, 6] mm.
    pred = np.zeros(12, bool)
    pred[2:6] = True
    ref = np.zeros(12, bool)
    ref[3:9] = True
    sd = compute_surface_distances(pred, ref, 2.0)
    assert sorted(sd.pred_to_ref_mm.tolist()) == [2.0, 4.0]
    assert sorted(sd.ref_to_pred_mm.tolist()) == [2.0, 6.0]
    assert hausdorff_distance(pred, ref, 2.0) == 6.0
    assert mean_surface_distance(pred, ref, 2.0) == pytest.approx((2 + 4 + 2 + 6) / 4)  # pooled mean
    assert mean_surface_distance(pred, ref, 2.0, symmetric=False) == pytest.approx(3.0)
    # MONAI HD95: max of the directed 95th percentiles (linear interpolation): max(2 + .95*2, 2 + .95*4) = 5.8
    assert hausdorff_distance(pred, ref, 2.0, percentile=95) == pytest.approx(5.8)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 0.8, 2.0)])
def test_concentric_spheres(spacing: tuple[float, float, float]) -> None:
    # concentric spheres of radii 5 and 9 mm: every surface point is r2 - r1 = 4 mm from the other surface,
    # up to the discretisation of each surface (at most about one voxel diagonal per surface)
    shape = tuple(int(round(26 / s)) for s in spacing)
    centre = np.array([13.0, 13.0, 13.0])
    small = _sphere(shape, centre, 5.0, spacing)
    large = _sphere(shape, centre, 9.0, spacing)
    tol = max(spacing)
    assert hausdorff_distance(small, large, spacing) == pytest.approx(4.0, abs=tol)
    assert mean_surface_distance(small, large, spacing) == pytest.approx(4.0, abs=tol)


def test_mask_touching_the_array_border_keeps_its_face() -> None:
    # the box fills x = 0..3: its x = 0 face is surface (outside the array counts as background), as in MONAI
    ref = _box((6, 6, 6), slice(0, 4), slice(1, 5), slice(1, 5))
    pred = _box((6, 6, 6), slice(0, 3), slice(1, 5), slice(1, 5))
    expected = compute_hausdorff_distance(_onehot(pred), _onehot(ref), spacing=(1.0, 2.0, 3.0)).item()
    assert hausdorff_distance(pred, ref, (1.0, 2.0, 3.0)) == pytest.approx(expected)
    assert hausdorff_distance(pred, ref, (1.0, 2.0, 3.0)) == pytest.approx(1.0)


# --- invalid input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, -1.0, 1.0), (1.0, float("nan"), 1.0)])
def test_bad_spacing_raises(spacing: tuple[float, ...]) -> None:
    mask = _box((4, 4, 4), slice(1, 3), slice(1, 3), slice(1, 3))
    with pytest.raises(ValueError, match="spacing_mm"):
        hausdorff_distance(mask, mask, spacing)


@pytest.mark.parametrize("percentile", [0, -5, 101])
def test_bad_percentile_raises(percentile: float) -> None:
    mask = _box((4, 4, 4), slice(1, 3), slice(1, 3), slice(1, 3))
    with pytest.raises(ValueError, match="percentile"):
        hausdorff_distance(mask, mask, 1.0, percentile=percentile)
