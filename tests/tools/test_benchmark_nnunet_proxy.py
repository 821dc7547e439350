"""The nnU-Net-class proxy's plan: nnU-Net v2's topology rules on known geometries, and a network that runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scripts.tools.benchmark_nnunet_proxy import _proxy_network, _time_proxy, nnunet_like_plan


def test_reference_geometry_plan() -> None:
    plan = nnunet_like_plan((400, 320, 145), (1.09, 1.09, 2.6))
    # z (2.6 mm) is more than twice the in-plane 1.09 mm: in-plane-only kernel and no z pooling at the first step,
    # then isotropic once the in-plane spacing (2.18 mm) has caught up
    assert plan["kernels"][0] == [3, 3, 1]
    assert plan["strides"][1] == [2, 2, 1]
    assert all(k == [3, 3, 3] for k in plan["kernels"][1:])
    assert plan["features"] == [32, 64, 128, 256, 320, 320]
    total = np.prod(plan["strides"], axis=0)
    assert all(p % t == 0 for p, t in zip(plan["patch"], total))
    assert np.prod(plan["patch"]) <= 2_000_000
    assert all(p <= s for p, s in zip(plan["patch"], (400, 320, 145)))


def test_isotropic_small_image_plan() -> None:
    plan = nnunet_like_plan((64, 64, 64), (1.0, 1.0, 1.0))
    assert plan["patch"] == [64, 64, 64]  # the whole image fits the budget
    assert all(k == [3, 3, 3] for k in plan["kernels"])
    # pooled while the feature map stays >= 4 voxels: 64 -> 32 -> 16 -> 8 -> 4
    assert plan["strides"] == [[1, 1, 1]] + [[2, 2, 2]] * 4


def test_proxy_network_runs_with_mirroring() -> None:
    plan = nnunet_like_plan((32, 32, 16), (1.0, 1.0, 2.5), base_features=4, max_features=8)
    net = _proxy_network(plan, in_channels=2, out_channels=3)
    image = torch.rand(1, 2, 32, 32, 16)
    with torch.no_grad():
        assert net(image[..., : plan["patch"][2]][:, :, : plan["patch"][0], : plan["patch"][1]]).shape[1] == 3
    assert _time_proxy(image, net, plan["patch"], (0, 1)) > 0


def test_bad_mirroring_choice() -> None:
    from scripts.tools.benchmark_nnunet_proxy import run

    with pytest.raises(ValueError, match="mirroring"):
        run(mirroring="sometimes")
