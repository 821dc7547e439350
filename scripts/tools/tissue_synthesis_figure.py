"""Figure of the randomised synthesis (docs/guides/phantom.md, "Randomised synthesis for training").

One anatomy-complete phantom subject: its in-phase image at a lumbar slice beside ``n`` random syntheses of the same
slice drawn by :class:`scripts.transforms.tissue_synthesis.RandTissueSynthesis` from the subject's 3D tissue-id map (the
synthesis blurs through-plane, so it runs on the volume, not on the slice). Axial slices in radiological view
(patient right on the left, anterior up), each scaled to its own 1st-99th percentile as the network input is.

Usage::

    .venv/bin/python -m scripts.tools.tissue_synthesis_figure --out docs/images/tissue_synthesis.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from monai.data import MetaTensor  # noqa: E402
from scripts.phantom import Acquisition, generate_subject  # noqa: E402
from scripts.transforms.tissue_synthesis import RandTissueSynthesis  # noqa: E402

__all__ = ["lumbar_slice", "main"]


def lumbar_slice(label: np.ndarray) -> int:
    """Index (array axis 2) of the axial slice with the most psoas, QL and ES+MF voxels together: mid lumbar."""
    counts = np.isin(label, (1, 2, 5, 6, 7, 8)).sum(axis=(0, 1))
    return int(np.argmax(counts))


def _show(ax, img2d: np.ndarray, spacing: np.ndarray, title: str) -> None:
    lo, hi = np.percentile(img2d, (1, 99))
    # RAS array (x to patient right, y anterior) -> radiological view: x reversed, y up
    ax.imshow(
        img2d.T[::-1, ::-1],
        cmap="gray",
        vmin=lo,
        vmax=max(hi, lo + 1e-6),
        interpolation="nearest",
        aspect=float(spacing[1] / spacing[0]),
    )
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def main(
    out: str = "docs/images/tissue_synthesis.png",
    subject_seed: int = 3,
    n: int = 5,
    seed: int = 0,
    geometry: str = "low",
) -> str:
    """Write the figure; returns its path.

    Args:
        out: PNG path.
        subject_seed: phantom subject seed (anatomy-complete, ``geometry`` preset).
        n: number of random syntheses shown.
        seed: random state of the synthesis (draw ``k`` uses ``seed + k``).
        geometry: phantom geometry preset (``low``: 2 x 2 x 5 mm, a few seconds).
    """
    subj = generate_subject(subject_seed, Acquisition.preset(geometry), anatomy="complete")
    affine = torch.as_tensor(subj.affine, dtype=torch.float64)
    spacing = np.sqrt((np.asarray(subj.affine)[:3, :3] ** 2).sum(0))
    tissue = MetaTensor(torch.as_tensor(subj.images["tissue"][None].astype(np.int16)), affine=affine)
    z = lumbar_slice(subj.images["label"])
    fig, axes = plt.subplots(1, n + 1, figsize=(2.6 * (n + 1), 2.6), constrained_layout=True)
    _show(axes[0], subj.images["inphase"][..., z].astype(np.float32), spacing, "phantom in-phase")
    for k in range(n):
        synth = RandTissueSynthesis(prob=1.0).set_random_state(seed + k)
        img = synth(tissue)[0, ..., z].numpy()
        extra = ", inverted" if synth.inverted else ""
        _show(axes[k + 1], img, spacing, f"synthesis {k + 1} (slice {synth.slice_fwhm:.0f} mm{extra})")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    import fire

    fire.Fire(main)
