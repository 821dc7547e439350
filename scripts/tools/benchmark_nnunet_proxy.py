"""Side-by-side speed of the bundle and an nnU-Net-class network on the same subject, in one process.

Usage, from the bundle root::

    python -m scripts.tools.benchmark_nnunet_proxy --dataset_dir /tmp/speed_sample --datalist_key testing

What is compared (issue #24): the bundle's whole ``inference.json`` on one subject, from reading the files to the
finished report (default settings: batch-norm adaptation and mirroring on), against only the network part of an
nnU-Net-class pipeline on the same image at its native grid: MONAI ``DynUNet`` shaped as nnU-Net v2's 3d_fullres plan
would be for this geometry, random weights (speed does not depend on them), sliding window with 50 % overlap and
Gaussian weighting, with nnU-Net's test-time mirroring off (one pass) and on (all 2^k flips over ``mirror_axes``).
The proxy leaves out nnU-Net's reading, resampling, export and everything after, so the ratio understates the gap.

The plan (see :func:`nnunet_like_plan`): nnU-Net v2 keeps the median spacing as the working grid (here the native
1.09x1.09x2.6 mm, no resampling), starts the features at 32 doubling to at most 320, two 3x3x3 convolutions per
stage with instance norm and leaky ReLU, and pools an axis while its patch size stays >= 8 (4 at the bottom) and its
spacing is not more than twice the finest; an axis coarser than that gets in-plane-only kernels (3x3x1) until
pooling the others has caught up. The patch is about 2 M voxels (what nnU-Net's memory target gives for a 2-channel
3D U-Net of this depth), shaped like the median image in millimetres.
"""

from __future__ import annotations

import itertools
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

__all__ = ["nnunet_like_plan", "run"]


def nnunet_like_plan(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    patch_voxels: int = 2_000_000,
    base_features: int = 32,
    max_features: int = 320,
) -> dict:
    """A 3d_fullres-style plan (patch, kernels, strides, features) for images of ``shape`` voxels at ``spacing`` mm.

    Args:
        shape: the median image shape (X, Y, Z) in voxels.
        spacing: the voxel size (X, Y, Z) in mm.
        patch_voxels: the patch's voxel budget.
        base_features, max_features: features of the first stage and the cap.

    Returns:
        ``{"patch": [X, Y, Z], "kernels": [[kx, ky, kz], ...], "strides": [[sx, sy, sz], ...], "features": [...]}``,
        one kernel/stride/feature entry per stage (the first stride is 1).
    """
    shape_a, spacing_a = np.asarray(shape, float), np.asarray(spacing, float)
    # patch shaped like the image, scaled to the voxel budget, no larger than the image
    patch = np.minimum(shape_a * (patch_voxels / np.prod(shape_a)) ** (1 / 3), shape_a)
    kernels, strides = [], [[1, 1, 1]]
    current_spacing, size = spacing_a.copy(), patch.copy()
    while True:
        anisotropic = current_spacing > 2 * current_spacing.min()
        kernels.append([1 if a else 3 for a in anisotropic])
        can_pool = (size / 2 >= 4) & ~anisotropic
        if not can_pool.any() or len(kernels) >= 6:
            break
        step = [2 if c else 1 for c in can_pool]
        strides.append(step)
        size, current_spacing = size / np.asarray(step), current_spacing * np.asarray(step)
    # each axis a multiple of its total downsampling, so that the skip connections match
    total = np.prod(np.asarray(strides), axis=0)
    patch = np.maximum(total, np.floor(patch / total) * total).astype(int)
    n = len(kernels)
    features = [min(base_features * 2**i, max_features) for i in range(n)]
    return {"patch": patch.tolist(), "kernels": kernels, "strides": strides, "features": features}


def _proxy_network(plan: dict, in_channels: int, out_channels: int) -> torch.nn.Module:
    from monai.networks.nets import DynUNet

    return DynUNet(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=plan["kernels"],
        strides=plan["strides"],
        upsample_kernel_size=plan["strides"][1:],
        filters=plan["features"],
        norm_name=("instance", {"affine": True}),
        act_name=("leakyrelu", {"negative_slope": 0.01, "inplace": True}),
        deep_supervision=False,
        res_block=False,
    ).eval()


def _time_proxy(image: torch.Tensor, net: torch.nn.Module, roi: list[int], mirror_axes: tuple[int, ...]) -> float:
    """Seconds for the sliding-window pass, summed over every mirror combination of ``mirror_axes`` (2^k passes)."""
    from monai.inferers import sliding_window_inference

    flips = [c for r in range(len(mirror_axes) + 1) for c in itertools.combinations(mirror_axes, r)]
    t0 = time.perf_counter()
    with torch.no_grad():
        total = None
        for axes in flips:
            dims = [2 + a for a in axes]
            x = torch.flip(image, dims) if dims else image
            out = sliding_window_inference(x, roi, 1, net, overlap=0.5, mode="gaussian")
            out = torch.flip(out, dims) if dims else out
            total = out if total is None else total + out
    return time.perf_counter() - t0


def _time_bundle(root: Path, dataset_dir: str, datalist_key: str, subject: int, out_dir: str) -> tuple[float, dict]:
    """Seconds of one ``evaluator.run()`` of inference.json over one subject (start-up excluded) and its entry."""
    from monai.bundle import ConfigParser

    p = ConfigParser()
    p.read_config(str(root / "configs" / "inference.json"))
    p.update({"bundle_root": str(root), "dataset_dir": dataset_dir, "output_dir": out_dir})
    p["datalist_key"] = datalist_key
    data = p.get_parsed_content("data")
    entry = data[subject]
    p["data"] = [entry]
    evaluator = p.get_parsed_content("evaluator")
    t0 = time.perf_counter()
    evaluator.run()
    return time.perf_counter() - t0, entry


def run(
    dataset_dir: str = "sample_data",
    datalist_key: str = "testing",
    subject: int = 0,
    mirror_axes: tuple[int, ...] = (0, 1, 2),
    mirroring: str = "off",
) -> str:
    """Time the bundle, then the nnU-Net-class proxy without and with mirroring, on one subject; Markdown report.

    Args:
        dataset_dir, datalist_key: the cohort and the datalist key to take the subject from.
        subject: index of the subject in that list.
        mirror_axes: the axes nnU-Net mirrors at test time (all three by default, 8 passes).
        mirroring: "off", "on" or "both": which proxy variants to time ("on" runs every flip: 8 times "off").
    """
    if mirroring not in ("off", "on", "both"):
        raise ValueError(f"mirroring must be 'off', 'on' or 'both', not {mirroring!r}")
    root = Path(__file__).resolve().parents[2]
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        bundle_s, entry = _time_bundle(root, dataset_dir, datalist_key, subject, tmp + "/eval")
    import nibabel as nib

    base = Path(dataset_dir)
    water = nib.load(str(base / entry["water"]))
    fat = np.asanyarray(nib.load(str(base / entry["fat"])).dataobj, dtype=np.float32)
    shape = tuple(int(s) for s in water.shape[:3])
    spacing = tuple(float(s) for s in water.header.get_zooms()[:3])
    image = torch.from_numpy(np.stack([np.asanyarray(water.dataobj, dtype=np.float32), fat]))[None]
    plan = nnunet_like_plan(shape, spacing)
    net = _proxy_network(plan, in_channels=2, out_channels=9)
    rows = [("bundle, inference.json defaults, read to report", bundle_s, 1.0)]
    if mirroring in ("off", "both"):
        s = _time_proxy(image, net, plan["patch"], ())
        rows.append(("nnU-Net-class proxy, network only, mirroring off (1 pass)", s, s / bundle_s))
    if mirroring in ("on", "both"):
        s = _time_proxy(image, net, plan["patch"], tuple(mirror_axes))
        rows.append((f"nnU-Net-class proxy, mirroring on ({2 ** len(mirror_axes)} passes)", s, s / bundle_s))
    n_params = sum(p.numel() for p in net.parameters()) / 1e6
    lines = [
        f"Subject {entry.get('subject', subject)} of `{dataset_dir}`: {shape[0]}x{shape[1]}x{shape[2]} voxels, "
        f"{spacing[0]:.2f}x{spacing[1]:.2f}x{spacing[2]:.2f} mm; machine: {os.cpu_count()} CPU cores "
        f"({platform.machine()}), torch {torch.__version__}, threads {torch.get_num_threads()}, load average "
        f"{os.getloadavg()[0]:.1f}.",
        f"Proxy plan: patch {plan['patch']}, strides {plan['strides']}, kernels {plan['kernels']}, features "
        f"{plan['features']}, {n_params:.1f} M parameters, 2 input channels (water, fat), 50 % overlap.",
        "",
        "| run | s per subject | ratio to the bundle |",
        "|---|---|---|",
        *[f"| {name} | {s:.1f} | {r:.1f}x |" for name, s, r in rows],
        "",
        f"Peak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(run))
