"""Measure a finished run again with other FF settings, from its saved label maps and FF maps (no network).

Each ``<run_dir>/<subject>/`` of an inference run holds ``<subject>_seg.nii.gz`` (labels on the input grid) and
``<subject>_ff.nii.gz`` (FF in percent on the Dixon grid). This recomputes every subject's table with
:func:`scripts.quantification.statistics.quantify_muscles` under the given settings and writes one cohort table::

    python -m scripts.pipeline.requantify --run_dir eval_cohort --output eval_cohort_trim/cohort_ff_table.csv \\
        --border_trim_ff 0.7

The swap check needs the water and fat images, which a run does not keep, so the swap columns stay empty (NA);
truncation, volumes, statuses and provenance (from each subject's earlier table) are recomputed or carried over.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.io.atomic import atomic_write_text
from scripts.quantification.columns import PROVENANCE_KEYS
from scripts.quantification.statistics import quantify_muscles

__all__ = ["requantify_subject", "run"]


def requantify_subject(
    subject_dir: str | Path,
    border_trim_ff: float | None = 0.7,
    min_volume_ml: float = 1.0,
    erosion_mm: float | None = None,
) -> pd.DataFrame:
    """The FF table of one subject of a finished run, recomputed with the given settings.

    Args:
        subject_dir: ``<run_dir>/<subject>`` holding ``<subject>_seg.nii.gz``, ``<subject>_ff.nii.gz`` (percent) and
            ``<subject>_ff_table.csv`` (for the provenance columns).
        border_trim_ff: see :func:`scripts.quantification.statistics.trim_fat_border` (None: every label voxel counts).
        min_volume_ml: label sides below this volume get status ``too_small``.
        erosion_mm: in-plane erosion of the core mean (None: 1 voxel).

    Raises:
        FileNotFoundError: a file of the subject is missing (the message names it).
    """
    sdir = Path(subject_dir)
    subject = sdir.name
    paths = {k: sdir / f"{subject}_{k}" for k in ("seg.nii.gz", "ff.nii.gz", "ff_table.csv")}
    for p in paths.values():
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing; requantify needs the label map, FF map and table of a finished run")
    seg, ffi = nib.load(str(paths["seg.nii.gz"])), nib.load(str(paths["ff.nii.gz"]))
    old = pd.read_csv(paths["ff_table.csv"])
    provenance = {k: str(old[k].iloc[0]) for k in PROVENANCE_KEYS}
    ff = np.asarray(ffi.dataobj, dtype=np.float32) / 100.0  # the run writes FF in percent
    return quantify_muscles(
        np.asarray(seg.dataobj),
        seg.affine,
        ff,
        ffi.affine,
        provenance,
        erosion_mm=erosion_mm,
        subject=subject,
        min_volume_ml=min_volume_ml,
        border_trim_ff=border_trim_ff,
    ).table


def run(
    run_dir: str,
    output: str,
    border_trim_ff: float | None = 0.7,
    min_volume_ml: float = 1.0,
    erosion_mm: float | None = None,
    overwrite: bool = False,
) -> str:
    """Recompute the cohort table of a finished run; returns a one-line summary.

    Args:
        run_dir: the inference run's output folder.
        output: the new cohort CSV (an existing file with other content is refused unless ``overwrite``).
        border_trim_ff: see :func:`requantify_subject`.
        min_volume_ml: see :func:`requantify_subject`.
        erosion_mm: see :func:`requantify_subject`.
        overwrite: replace an existing, different output.
    """
    subjects = sorted(p for p in Path(run_dir).iterdir() if p.is_dir() and (p / f"{p.name}_done.json").is_file())
    if not subjects:
        raise FileNotFoundError(f"{run_dir}: no finished subject (no <subject>/<subject>_done.json)")
    table = pd.concat(
        [requantify_subject(s, border_trim_ff, min_volume_ml, erosion_mm) for s in subjects], ignore_index=True
    )
    atomic_write_text(output, table.to_csv(index=False), overwrite=overwrite)
    return f"wrote {output}: {len(subjects)} subjects, border_trim_ff={border_trim_ff}, min_volume_ml={min_volume_ml}"


if __name__ == "__main__":
    import fire
    from scripts.configuration.settings import typed_cli

    fire.Fire(typed_cli(run))
