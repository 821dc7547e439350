"""Training curve from a ``monai.bundle run`` training log: loss per iteration and validation mean Dice per epoch.

Usage: ``python -m scripts.tools.plot_training_log --log train.log --out_png docs/images/training_curve.png``; returns
a one-line summary (iterations, seconds per iteration, best validation Dice and its epoch).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["parse_log", "plot"]

_TS = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
_LOSS = re.compile(_TS + r".*Epoch: (\d+)/\d+, Iter: (\d+)/(\d+) -- train_loss: ([0-9.]+)")
_VAL = re.compile(_TS + r".*Epoch\[(\d+)\] Metrics -- val_mean_dice: ([0-9.]+)")


def parse_log(path: str | Path) -> dict[str, np.ndarray]:
    """Iteration losses (with wall-clock seconds) and validation Dice per epoch from the log text."""
    t0 = None
    it, loss, secs, ve, vd = [], [], [], [], []
    for line in Path(path).read_text(errors="replace").splitlines():
        m = _LOSS.search(line)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
            t0 = t0 or t
            epoch, i, n = int(m.group(2)), int(m.group(3)), int(m.group(4))
            it.append((epoch - 1) * n + i)
            loss.append(float(m.group(5)))
            secs.append((t - t0).total_seconds())
            continue
        m = _VAL.search(line)
        if m:
            ve.append(int(m.group(2)))
            vd.append(float(m.group(3)))
    return {
        "iteration": np.array(it),
        "loss": np.array(loss),
        "seconds": np.array(secs),
        "val_epoch": np.array(ve),
        "val_dice": np.array(vd),
    }


def plot(log: str, out_png: str, scored: str = "8 muscles") -> str:
    """Draw the curve and return the summary line; ``scored`` names what the validation Dice averages (e.g. "8
    muscles, 5 vertebral bodies, sacrum" for a model with the vertebral context)."""
    d = parse_log(log)
    if d["iteration"].size == 0:
        raise ValueError(f"{log}: no 'train_loss' lines found")
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    k = max(1, d["loss"].size // 100)
    smooth = np.convolve(d["loss"], np.ones(k) / k, mode="valid")
    ax1.plot(d["iteration"], d["loss"], lw=0.4, alpha=0.4, color="tab:blue")
    ax1.plot(d["iteration"][k - 1 :], smooth, color="tab:blue")
    ax1.set(xlabel="iteration", ylabel="DiceCE loss", title="training loss")
    ax2.plot(d["val_epoch"], d["val_dice"], "o-", color="tab:green")
    ax2.set(
        xlabel="epoch", ylabel=f"mean Dice ({scored})", title="validation (sliding window, working grid)", ylim=(0, 1)
    )
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    n = int(d["iteration"][-1])
    sec_it = d["seconds"][-1] / max(n - 1, 1)
    best = int(np.argmax(d["val_dice"])) if d["val_dice"].size else -1
    best_txt = (
        f"best validation mean Dice {d['val_dice'][best]:.4f} at epoch {d['val_epoch'][best]}" if best >= 0 else ""
    )
    return (
        f"{n} iterations in {d['seconds'][-1] / 60:.1f} min ({sec_it:.2f} s per iteration, validation included); "
        + best_txt
    )


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(plot))
