"""Linear interpolation of two checkpoints of the same network ("model soup" of a model and its fine-tune).

Why: fine-tuning the shipped model on fat-streaked (septa) phantoms teaches it real-looking muscle but also a rim of
the fat around each muscle (labels widen, FF biased high); the model before fine-tuning misses fat-streaked muscle
(FF biased low). Both start from the same weights, so the weights in between are a usable model too, and the
weight of the fine-tune sets where it lies between the two errors. The shipped model since 0.12.0 is
``interpolate(0.11.0, septa fine-tune, weight=0.3)`` (docs/studies/real_scans.md, "A realistic texture").

Command line::

    python -m scripts.tools.average_checkpoints --base models/model.pt --tuned tuned.pt --weight 0.3 --out soup.pt
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from scripts.io.atomic import atomic_write

__all__ = ["interpolate_state_dicts", "interpolate_checkpoints"]


def interpolate_state_dicts(
    base: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor], weight: float
) -> dict[str, torch.Tensor]:
    """``(1 - weight) * base + weight * tuned`` for every floating-point tensor.

    Integer tensors (batch-norm ``num_batches_tracked``) are counters, not weights: they are taken from ``tuned``.

    Args:
        base: state_dict of the starting model.
        tuned: state_dict of the same network after fine-tuning from ``base``.
        weight: share of ``tuned``, in [0, 1]; 0 returns ``base``, 1 returns ``tuned``.

    Raises:
        ValueError: ``weight`` outside [0, 1], or the two state_dicts differ in keys, shapes or dtypes (the key
            is named).
    """
    if not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight}")
    if base.keys() != tuned.keys():
        only = sorted(set(base) ^ set(tuned))
        raise ValueError(f"the checkpoints hold different tensors (e.g. {only[:3]}): not the same network")
    out: dict[str, torch.Tensor] = {}
    for key, a in base.items():
        b = tuned[key]
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(f"{key}: {tuple(a.shape)} {a.dtype} against {tuple(b.shape)} {b.dtype}")
        if a.is_floating_point():
            out[key] = a * (1.0 - float(weight)) + b * float(weight)
        else:
            out[key] = b.clone()
    return out


def interpolate_checkpoints(
    base: str | Path, tuned: str | Path, weight: float, out: str | Path, overwrite: bool = False
) -> str:
    """Write the interpolation of two bare state_dict files (as ``models/model.pt``) to ``out``; returns its path.

    Args:
        base: the starting model's file.
        tuned: the fine-tuned model's file.
        weight: share of ``tuned``, in [0, 1].
        out: file to write; an existing one is refused unless ``overwrite``.
        overwrite: replace ``out``.
    """
    dst = Path(out)
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} exists: choose another --out or pass --overwrite true")
    states = []
    for path in (Path(base), Path(tuned)):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        states.append(torch.load(path, map_location="cpu", weights_only=True))
    soup = interpolate_state_dicts(states[0], states[1], weight)
    return str(atomic_write(dst, lambda tmp: torch.save(soup, tmp), suffix=".pt"))


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(interpolate_checkpoints))
