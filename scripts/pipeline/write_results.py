"""Write a subject's measurements: FF map, FF tables, per-slice profiles and normative comparison."""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.transforms import MapTransform
from scripts.io.atomic import atomic_write_text
from scripts.io.parallel_gzip import gzip_compress
from scripts.pipeline.keys import (
    FF_KEY,
    LEVEL_ROWS_KEY,
    LEVELS_KEY,
    NORMATIVE_KEY,
    RESULTS_DIR_KEY,
    ROWS_KEY,
    SCAN_INFO_KEY,
    STATS_KEY,
)
from scripts.pipeline.level_statistics import with_side_verdicts
from scripts.quantification.tables import write_tables

__all__ = ["WriteResultsd"]

logger = logging.getLogger(__name__)


class WriteResultsd(MapTransform):
    """Write the subject's results into its staged folder (``results_dir``) and prepare its cohort-table rows.

    Files: ``<subject>_ff.nii.gz`` (FF in percent, float32, native Dixon grid; NaN = excluded voxel),
    ``<subject>_ff_table.csv`` / ``.json`` (one row per muscle and side plus L/R means), ``<subject>_ff_slices.csv``
    and ``<subject>_normative.csv``; with vertebral levels (:class:`LevelStatisticsd`) ``<subject>_ff_levels.csv``
    with each row's muscle-side verdict (``qc_status``). Adds ``cohort_rows`` (the FF table with the normative band,
    percentile and z-score of each row) and, with levels, ``cohort_level_rows`` (the per-level file's rows), which
    :class:`scripts.pipeline.mark_done.MarkDoned` adds to the run's cohort tables when the subject is finished.
    Entries without statistics pass through.

    Args:
        keys: the label-map key (unused here; kept for the MONAI signature and the order of the steps).
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if STATS_KEY not in d:
            return d
        subject = json.loads(d[SCAN_INFO_KEY])["subject"]
        sdir = Path(d[RESULTS_DIR_KEY])
        result, ffr, comparison = d[STATS_KEY], d[FF_KEY], d[NORMATIVE_KEY]
        levels = d.get(LEVELS_KEY)
        if levels is not None:
            levels = d[LEVELS_KEY] = d[LEVEL_ROWS_KEY] = with_side_verdicts(levels, result.table)
        write_tables(result, sdir, subject, overwrite=True, levels=levels)
        ff_img = nib.Nifti1Image((ffr.ff * 100.0).astype(np.float32), ffr.affine)
        ff_img.header["descrip"] = b"fat fraction, percent; NaN = excluded voxel"
        # the bytes nib.save writes, gzip-compressed in parallel chunks (one core took ~1 s at the reference geometry)
        (sdir / f"{subject}_ff.nii.gz").write_bytes(gzip_compress(ff_img.to_bytes()))
        atomic_write_text(sdir / f"{subject}_normative.csv", comparison.to_csv(index=False), overwrite=True)
        # the normative module calls the paper's L/R mean "lr_mean"; the tables call it "mean"
        comp = comparison.replace({"side": {"lr_mean": "mean"}}) if "side" in comparison.columns else comparison
        keys = [c for c in ("muscle", "side") if c in comp.columns]
        d[ROWS_KEY] = result.table.merge(
            comp[keys + ["band", "percentile_approx", "z_score_approx", "distribution"]], how="left", on=keys
        )
        logger.info("%s: FF map and tables written to %s", subject, sdir)
        return d
