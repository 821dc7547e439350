"""CPU cost of the U-Net at three widths: parameters, training step and inference window times, peak memory.

Usage: ``python -m scripts.tools.benchmark_network_size [--repeats 3] [--threads 2]``. Prints a Markdown table.

The widths are the bundle's network (channels 16-32-64-128-256, strides 2, two residual units, batch norm) and
half and double that; the training step is one forward/backward/AdamW step of DiceCE on a batch of two
96x96x48 patches (train.json), the inference time one sliding-window pass over a 160x128x75 working-grid volume
(the reference geometry 400x320x145 at 1.09x1.09x2.6 mm resampled to 2x2x4 mm) with 128x128x64 windows.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from monai.inferers import SlidingWindowInferer
from monai.losses import DiceCELoss
from monai.networks.nets import UNet

WIDTHS = {
    "half (8-128)": (8, 16, 32, 64, 128),
    "bundle (16-256)": (16, 32, 64, 128, 256),
    "double (32-512)": (32, 64, 128, 256, 512),
}


def _net(channels: tuple[int, ...]) -> UNet:
    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=9,
        channels=channels,
        strides=(2, 2, 2, 2),
        num_res_units=2,
        norm="batch",
    )


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, squared_pred=True, batch=True)
    x = torch.rand(2, 1, 96, 96, 48)
    y = torch.randint(0, 9, (2, 1, 96, 96, 48))
    volume = torch.rand(1, 1, 160, 128, 75)
    inferer = SlidingWindowInferer(roi_size=(128, 128, 64), sw_batch_size=1, overlap=0.25, mode="gaussian")
    print("| network | parameters (M) | training step, 2 patches (s) | sliding-window inference (s) |")
    print("|---|---|---|---|")
    for name, channels in WIDTHS.items():
        net = _net(channels)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

        def step() -> None:
            opt.zero_grad()
            loss_fn(net(x), y).backward()
            opt.step()

        net.train()
        step()  # warm-up
        t_train = _median_seconds(step, args.repeats)
        net.eval()
        with torch.no_grad():
            inferer(volume, net)
            t_infer = _median_seconds(lambda: inferer(volume, net), args.repeats)
        n_params = sum(p.numel() for p in net.parameters()) / 1e6
        print(f"| {name} | {n_params:.2f} | {t_train:.2f} | {t_infer:.2f} |")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"\npeak resident memory of the whole benchmark: {peak_gb:.2f} GB; torch threads: {args.threads}")


if __name__ == "__main__":
    main()
