"""Tests of scripts.reporting.orientation: radiological display whatever the stored orientation."""

from __future__ import annotations

import numpy as np
import pytest
from scripts.reporting.orientation import coronal_slice, display_slice

# A 20 x 16 x 6 world grid of 1 mm voxels centred on x = y = 0: RAS voxel (i, j, k) is at (i - 9.5, j - 7.5, k).
NX, NY, NZ = 20, 16, 6


def _ras_affine() -> np.ndarray:
    aff = np.eye(4)
    aff[:3, 3] = (-9.5, -7.5, 0.0)
    return aff


def _marker_volume() -> np.ndarray:
    """RAS array: a bright voxel on the patient's left (x = -6.5) and anterior (y = +5.5) at slice 3."""
    vol = np.zeros((NX, NY, NZ), np.float32)
    vol[3, 13, 3] = 100.0  # x = 3 - 9.5 = -6.5 (left), y = 13 - 7.5 = 5.5 (anterior)
    vol[10, 2, 5] = 50.0  # superior slice, posterior (for the coronal test)
    return vol


def _storages() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The same world stored as RAS, LPS and with permuted axes (z, x, y) and reversed slices."""
    ras = _marker_volume()
    out = [("RAS", ras, _ras_affine())]
    lps = ras[::-1, ::-1, :].copy()
    lps_aff = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps_aff[:3, 3] = (NX - 1 - 9.5, NY - 1 - 7.5, 0.0)
    out.append(("LPS", lps, lps_aff))
    perm = np.transpose(ras, (2, 0, 1))[::-1].copy()  # array (z reversed, x, y)
    perm_aff = np.zeros((4, 4))
    perm_aff[2, 0] = -1.0  # array axis 0 -> world z, decreasing
    perm_aff[0, 1] = 1.0
    perm_aff[1, 2] = 1.0
    perm_aff[:3, 3] = (-9.5, -7.5, NZ - 1)
    perm_aff[3, 3] = 1.0
    out.append(("ISR-permuted", perm, perm_aff))
    return out


@pytest.mark.parametrize("name, volume, affine", _storages(), ids=lambda v: v if isinstance(v, str) else "")
def test_display_slice_is_radiological(name, volume, affine):
    view = display_slice(volume, affine, 3)
    assert view.shape == (NY, NX)  # rows anterior-posterior, columns right-left
    row, col = np.unravel_index(int(np.argmax(view)), view.shape)
    assert col >= NX / 2, f"{name}: patient-left marker must be on the image's right half"
    assert row < NY / 2, f"{name}: anterior marker must be in the top half"
    np.testing.assert_array_equal(view, display_slice(*_storages()[0][1:], 3))


def test_coronal_slice_superior_on_top_right_on_left():
    volume, affine = _storages()[1][1:]  # LPS storage
    view = coronal_slice(volume, affine, 2)  # RAS j = 2 holds the superior, posterior marker
    assert view.shape == (NZ, NX)
    row, col = np.unravel_index(int(np.argmax(view)), view.shape)
    assert row == 0  # slice 5 is the most superior
    assert col == NX - 1 - 10  # RAS i = 10 (x = +0.5, patient right of centre) -> column 9, left half


def test_display_slice_rejects_bad_index():
    with pytest.raises(ValueError, match="slice index"):
        display_slice(_marker_volume(), _ras_affine(), NZ)
