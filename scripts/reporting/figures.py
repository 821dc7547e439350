"""Headless matplotlib figures written atomically as PNG.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never through ``pyplot``: no global backend
switch, safe in headless workers (as in :mod:`scripts.evaluation.agreement_plots`). Every file is written atomically
(temporary file in the target folder, then ``os.replace``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scripts.io.atomic import atomic_write_bytes

__all__ = ["new_figure", "save_png"]


def new_figure(figsize: tuple[float, float], layout: str | None = "constrained", dpi: float = 100.0) -> Figure:
    """A figure of ``figsize`` inches on its own Agg canvas, laid out by ``layout`` (None: placed by hand)."""
    fig = Figure(figsize=figsize, layout=layout, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, out_png: str | os.PathLike[str], dpi: int, compress_level: int = 6) -> Path:
    """Render ``fig`` as PNG at ``dpi`` and write it atomically; returns the written path.

    ``compress_level`` is zlib's (0-9; 6 is PIL's default): lower is faster and larger, the pixels the same.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": compress_level})
    return atomic_write_bytes(Path(out_png), buffer.getvalue())
