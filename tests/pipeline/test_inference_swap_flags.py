"""QuantifyDixond's swap check measures its skin and shell depths in millimetres, on coarse anisotropic scans too."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.data import MetaTensor
from scripts.pipeline.inference import LoadDixond, QuantifyDixond


def _lean_body(tmp_path, spacing=(2.0, 2.0, 4.4)):
    """A cylinder body: 10 mm of subcutaneous fat (FF 0.9) over 20 mm of muscle (FF 0.1) around fatty viscera (0.7).

    Read in 2 mm voxels instead of mm, the shell 3-9 "mm" below the surface would lie at 6-18 mm, mostly in the
    muscle (FF 0.1, below the interior's 0.7): a false global swap.
    """
    shape = (120, 120, 12)
    x, y = np.meshgrid(
        (np.arange(shape[0]) - 59.5) * spacing[0], (np.arange(shape[1]) - 59.5) * spacing[1], indexing="ij"
    )
    r = np.hypot(x, y)[..., None].repeat(shape[2], axis=2)
    ff = np.select([r < 80, r < 100, r < 110], [0.7, 0.1, 0.9], default=np.nan)
    body = np.isfinite(ff)
    water = np.where(body, 1000 * (1 - np.nan_to_num(ff)), 0).astype(np.float32)
    fat = np.where(body, 1000 * np.nan_to_num(ff), 0).astype(np.float32)
    affine = np.diag([*spacing, 1.0])
    files = {}
    for role, data in (("water", water), ("fat", fat), ("inphase", water + fat)):
        files[role] = str(tmp_path / f"lean_{role}.nii.gz")
        nib.save(nib.Nifti1Image(data, affine), files[role])
    # two "muscles" in the muscle ring: label 7 left (x > 0 in RAS), 8 right
    label = np.zeros(shape, np.uint8)
    ring = (r > 82) & (r < 98) & (np.abs(y[..., None]) < 20)
    label[ring & (x[..., None] > 0)] = 7
    label[ring & (x[..., None] < 0)] = 8
    return files, label, affine


def test_a_lean_coarse_scan_is_not_flagged_as_swapped(tmp_path):
    files, label, affine = _lean_body(tmp_path)
    d = LoadDixond(keys="image")({**files, "subject": "lean"})
    d["pred"] = MetaTensor(torch.as_tensor(label[None]), affine=torch.as_tensor(affine))
    QuantifyDixond(keys="pred", output_dir=str(tmp_path / "eval"), report=False)(d)
    table = pd.read_csv(tmp_path / "eval" / "lean" / "lean_ff_table.csv")
    rows = table[table.label.isin([7, 8])]
    assert len(rows) == 2
    assert not rows.swap_suspected.any(), rows[["swap_global", "swap_region", "swap_slices"]]
    np.testing.assert_allclose(rows.ff_mean_pct, 10.0, atol=1e-3)
