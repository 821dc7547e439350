"""Finish a subject: add its rows to the cohort table, swap its staged folder in, write its completion marker."""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.io.atomic import atomic_write_text, publish_folder
from scripts.pipeline.keys import DONE_SUFFIX, LEVEL_ROWS_KEY, MANIFEST_KEY, ROWS_KEY, STAGING_DIR
from scripts.quantification.tables import CohortTable

__all__ = ["MarkDoned"]


class MarkDoned(MapTransform):
    """Finish a subject once every output is written: its ``<subject>_done.json`` marker, cohort rows and folder.

    Put it last in the postprocessing, after the saver. The quantification steps (inference.json) stage the
    subject's files in ``output_dir/.staging/<subject>/``: the cohort rows are added, the folder replaces
    ``output_dir/<subject>/`` (:func:`scripts.io.atomic.publish_folder`), and the marker is written last, so a
    failed or killed run leaves the earlier results as they were. A run killed before this step leaves no marker,
    so a resumed run redoes that subject. The marker holds the run record
    (:meth:`scripts.pipeline.run_record.RunRecord.manifest`), which :func:`scripts.pipeline.cohort.pending_subjects`
    compares to skip subjects already finished by the same run. Entries without a record (segmentation only) get
    no marker.

    Args:
        keys: unused (the transform acts on the whole entry); kept for the MONAI signature.
        output_dir: the run's output folder (as given to the run record).
        cohort_table: file name of the run's table of all subjects.
        level_table: file name of the run's per-level table of all subjects (long format: one row per subject,
            level and muscle side), written only for subjects with vertebral levels.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        output_dir: str = "eval",
        cohort_table: str = "cohort_ff_table.csv",
        level_table: str = "cohort_ff_levels.csv",
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.cohort = CohortTable(self.output_dir / cohort_table)
        self.levels = CohortTable(self.output_dir / level_table)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        manifest = d.pop(MANIFEST_KEY, None)
        rows = d.pop(ROWS_KEY, None)
        level_rows = d.pop(LEVEL_ROWS_KEY, None)
        subject = str(manifest["subject"] if manifest is not None else d.get("subject", ""))
        if not subject:
            return d
        # order: cohort rows, folder, marker. A run killed between two steps leaves no marker in the results
        # folder, so the subject is redone and its rows replaced; a marker never stands beside unfinished results
        if rows is not None:
            self.cohort.add(rows, subject=subject)
        if level_rows is not None and len(level_rows):
            self.levels.add(level_rows, subject=subject)
        elif level_rows is not None:
            # levels assigned but none holds a row (e.g. only the sacrum in the map): no stale rows of an earlier run
            self.levels.remove(subject)
        staged = self.output_dir / STAGING_DIR / subject
        if staged.is_dir():
            publish_folder(staged, self.output_dir / subject)
            try:
                staged.parent.rmdir()  # only when empty: another process may be staging its own subject
            except OSError:
                pass
        if manifest is not None:
            atomic_write_text(
                self.output_dir / subject / f"{subject}{DONE_SUFFIX}",
                json.dumps(manifest, indent=2) + "\n",
                overwrite=True,
            )
        return d
