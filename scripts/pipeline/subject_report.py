"""The pictures and the one-page HTML report a user checks a subject's results with."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.configuration.values import as_bool
from scripts.pipeline.dixon_entry import scan_from_entry
from scripts.pipeline.keys import NORMATIVE_KEY, RESULTS_DIR_KEY, STATS_KEY
from scripts.pipeline.label_map import label_and_affine
from scripts.reporting.montage_panels import montage_panels
from scripts.reporting.subject_files_report import render_subject_report, save_report_inputs

__all__ = ["SubjectReportd", "report_mode"]

_LATER = "later"


def report_mode(value: bool | str) -> str:
    """``"true"``, ``"false"`` or ``"later"`` from a ``write_report`` value (booleans in any spelling, or later).

    Raises:
        ValueError: another value (names the setting and what it accepts).
    """
    if isinstance(value, str) and value.strip().lower() == _LATER:
        return _LATER
    try:
        return "true" if as_bool(value, "write_report") else "false"
    except ValueError:
        raise ValueError(f"write_report must be true, false or later, not {value!r}") from None


class SubjectReportd(MapTransform):
    """Draw ``<subject>_qc_axial.png`` (label overlay montage), ``<subject>_ff_chart.png`` (FF against the reference)
    and write ``<subject>_report.html`` into the subject's staged folder. With vertebral levels
    (:class:`scripts.pipeline.level_statistics.LevelStatisticsd`), also ``<subject>_levels_sagittal.png`` (the level
    bounds and names on the mid-sagittal plane through the vertebral bodies, to check the names against the spine),
    ``<subject>_ff_levels.png`` (FF by level and muscle side) and ``<subject>_csa_levels.png`` (cross-section area by
    level), captioned with the level status,
    shown in the page's "Per vertebral level" section with the level table and the status in words (a 9-output
    model's page says there that per-level results need the vertebral context).

    The montage is drawn on the in-phase image (water + fat without one), in its stored orientation; the charts and
    the page from the tables :class:`scripts.pipeline.write_results.WriteResultsd` wrote
    (:func:`scripts.reporting.subject_files_report.render_subject_report`), so a report drawn later is the same.
    With ``enabled`` ``"later"`` only ``<subject>_report_inputs.npz`` is written (the montage panels, about 1 MB);
    ``python -m scripts.reporting.render_reports --output_dir <run>`` draws the pictures and pages afterwards.
    Entries without statistics pass through, and so does every entry when ``enabled`` is false.

    Args:
        keys: the label-map key (``(1, X, Y, Z)`` MetaTensor on the input grid, values 0-8, or 0-14 with the
            vertebral context).
        enabled: ``true`` draws the pictures and the page; ``"later"`` keeps their inputs for
            :mod:`scripts.reporting.render_reports`; ``false`` skips both (``--write_report false``; the numbers are
            unchanged).
    """

    def __init__(self, keys: KeysCollection, enabled: bool | str = True, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        # typed here too: a pipeline built without scripts.configuration.settings must not read "false" as True
        self.mode = report_mode(enabled)
        self.enabled = self.mode != "false"

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if not self.enabled or STATS_KEY not in d:
            return d
        scan = scan_from_entry(d)
        sdir = Path(d[RESULTS_DIR_KEY])
        attrs = dict(d[NORMATIVE_KEY].attrs)
        for key in self.key_iterator(d):
            label, label_affine = label_and_affine(d[key])
            panels = montage_panels(
                scan.inphase_or_sum(), scan.affine, label, label_affine=label_affine, title=scan.subject
            )
            if self.mode == _LATER:
                save_report_inputs(sdir, scan.subject, panels, attrs)
            else:
                render_subject_report(sdir, scan.subject, panels, attrs)
        return d
