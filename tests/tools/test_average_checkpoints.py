"""Interpolating two checkpoints: known values, the end points, counters kept, mismatches and overwrites refused."""

from __future__ import annotations

import pytest
import torch
from scripts.tools.average_checkpoints import interpolate_checkpoints, interpolate_state_dicts


def _pair():
    base = {
        "conv.weight": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
        "bn.running_var": torch.tensor([1.0, 1.0]),
        "bn.num_batches_tracked": torch.tensor(10),
    }
    tuned = {
        "conv.weight": torch.tensor([[3.0, 2.0], [-1.0, 0.0]]),
        "bn.running_var": torch.tensor([3.0, 0.0]),
        "bn.num_batches_tracked": torch.tensor(25),
    }
    return base, tuned


def test_interpolation_gives_the_weighted_mean_and_the_end_points():
    base, tuned = _pair()
    soup = interpolate_state_dicts(base, tuned, 0.25)
    # 0.75 * base + 0.25 * tuned, by hand
    assert torch.equal(soup["conv.weight"], torch.tensor([[1.5, 2.0], [2.0, 3.0]]))
    assert torch.equal(soup["bn.running_var"], torch.tensor([1.5, 0.75]))
    assert soup["bn.num_batches_tracked"].item() == 25 and soup["bn.num_batches_tracked"].dtype == torch.int64
    for w, ref in ((0.0, base), (1.0, tuned)):
        ends = interpolate_state_dicts(base, tuned, w)
        assert all(torch.equal(ends[k], ref[k]) for k in ref if ref[k].is_floating_point())


def test_mismatched_checkpoints_and_bad_weights_are_refused():
    base, tuned = _pair()
    with pytest.raises(ValueError, match="weight must lie in"):
        interpolate_state_dicts(base, tuned, 1.5)
    with pytest.raises(ValueError, match="different tensors"):
        interpolate_state_dicts(base, {k: v for k, v in tuned.items() if k != "bn.running_var"}, 0.5)
    with pytest.raises(ValueError, match="conv.weight"):
        interpolate_state_dicts(base, {**tuned, "conv.weight": torch.zeros(3, 2)}, 0.5)


def test_files_are_written_once_and_not_overwritten(tmp_path):
    base, tuned = _pair()
    torch.save(base, tmp_path / "a.pt")
    torch.save(tuned, tmp_path / "b.pt")
    out = interpolate_checkpoints(tmp_path / "a.pt", tmp_path / "b.pt", 0.5, tmp_path / "soup.pt")
    soup = torch.load(out, weights_only=True)
    assert torch.equal(soup["conv.weight"], torch.tensor([[2.0, 2.0], [1.0, 2.0]]))
    before = (tmp_path / "soup.pt").read_bytes()
    with pytest.raises(FileExistsError, match="soup.pt exists"):
        interpolate_checkpoints(tmp_path / "a.pt", tmp_path / "b.pt", 0.9, tmp_path / "soup.pt")
    assert (tmp_path / "soup.pt").read_bytes() == before
    with pytest.raises(FileNotFoundError, match="missing.pt: file not found"):
        interpolate_checkpoints(tmp_path / "missing.pt", tmp_path / "b.pt", 0.5, tmp_path / "x.pt")
