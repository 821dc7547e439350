"""Open a subject's results: refuse another run's folder, then stage a fresh folder holding the run record."""

from __future__ import annotations

import json
import shutil
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.io.atomic import atomic_write_text
from scripts.pipeline.dixon_entry import has_scan
from scripts.pipeline.keys import MANIFEST_KEY, RESULTS_DIR_KEY, SCAN_INFO_KEY, STAGING_DIR
from scripts.pipeline.run_record import RunRecord

__all__ = ["PrepareResultsd"]


class PrepareResultsd(MapTransform):
    """Check that ``output_dir/<subject>/`` may receive this run's results and stage a folder for them.

    The first quantification step, before anything is computed: a folder holding another run's results (other
    inputs, model or settings) raises :class:`scripts.pipeline.run_record.RunConflictError` unless the run
    overwrites. The subject's files are then written into ``output_dir/.staging/<subject>/`` (emptied first: a
    killed run's leftovers are never mixed in), starting with ``<subject>_run.json``;
    :class:`scripts.pipeline.mark_done.MarkDoned` swaps the finished folder in. Adds ``run_manifest`` and
    ``results_dir`` to the entry. Entries without a Dixon scan (segmentation only) pass through untouched.

    Args:
        keys: the label-map key (unused here; kept for the MONAI signature and the order of the steps).
        run_record: the run's record (:class:`scripts.pipeline.run_record.RunRecord`).
    """

    def __init__(self, keys: KeysCollection, run_record: RunRecord, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.run_record = run_record

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if not has_scan(d):
            return d
        info = json.loads(d[SCAN_INFO_KEY])
        subject = info["subject"]
        manifest = self.run_record.manifest(subject, info["files"])
        self.run_record.check(manifest)
        sdir = self.run_record.output_dir / STAGING_DIR / subject
        shutil.rmtree(sdir, ignore_errors=True)
        sdir.mkdir(parents=True)
        atomic_write_text(Path(sdir) / f"{subject}_run.json", json.dumps(manifest, indent=2) + "\n", overwrite=True)
        d[MANIFEST_KEY] = manifest
        d[RESULTS_DIR_KEY] = str(sdir)
        return d
