"""The pictures and the one-page HTML report a user checks a subject's results with."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform
from scripts.configuration.values import as_bool
from scripts.pipeline.dixon_entry import scan_from_entry
from scripts.pipeline.keys import FF_KEY, LEVELS_KEY, NORMATIVE_KEY, RESULTS_DIR_KEY, STATS_KEY
from scripts.pipeline.label_map import label_and_affine
from scripts.reporting.ff_chart import ff_chart
from scripts.reporting.html_report import html_report
from scripts.reporting.level_charts import level_csa_chart, level_heatmap
from scripts.reporting.montage import qc_montage

__all__ = ["SubjectReportd"]


class SubjectReportd(MapTransform):
    """Draw ``<subject>_qc_axial.png`` (label overlay montage), ``<subject>_ff_chart.png`` (FF against the reference)
    and write ``<subject>_report.html`` into the subject's staged folder. With vertebral levels
    (:class:`scripts.pipeline.level_statistics.LevelStatisticsd`), also ``<subject>_ff_levels.png`` (FF by level and
    muscle side) and ``<subject>_csa_levels.png`` (cross-section area by level), captioned with the level status,
    shown in the page's "Per vertebral level" section with the level table and the status in words (a 9-output
    model's page says there that per-level results need the vertebral context).

    The montage is drawn on the in-phase image (water + fat without one), in its stored orientation. Entries
    without statistics pass through, and so does every entry when ``enabled`` is false.

    Args:
        keys: the label-map key (``(1, X, Y, Z)`` MetaTensor on the input grid, values 0-8).
        enabled: draw the pictures and the page (``--write_report false`` skips them; the numbers are unchanged).
    """

    def __init__(self, keys: KeysCollection, enabled: bool = True, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        # typed here too: a pipeline built without scripts.configuration.settings must not read "false" as True
        self.enabled = as_bool(enabled, "write_report")

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if not self.enabled or STATS_KEY not in d:
            return d
        scan = scan_from_entry(d)
        sdir = Path(d[RESULTS_DIR_KEY])
        table, comparison = d[STATS_KEY].table, d[NORMATIVE_KEY]
        base = scan.inphase_or_sum()
        for key in self.key_iterator(d):
            label, label_affine = label_and_affine(d[key])
            montage = qc_montage(
                base,
                scan.affine,
                label,
                sdir / f"{scan.subject}_qc_axial.png",
                label_affine=label_affine,
                title=scan.subject,
            )
            images = {
                "QC montage": montage,
                "FF against reference": ff_chart(table, comparison, sdir / f"{scan.subject}_ff_chart.png"),
            }
            levels = d.get(LEVELS_KEY)
            level_images = _level_images(levels, sdir, scan.subject) if levels is not None and len(levels) else {}
            provenance = dict(d[FF_KEY].provenance)
            html_report(
                scan.subject,
                table,
                comparison,
                images,
                sdir / f"{scan.subject}_report.html",
                provenance,
                levels=levels,
                level_info=d[STATS_KEY].meta.get("levels"),
                level_images=level_images,
            )
        return d


def _level_images(levels: Any, sdir: Path, subject: str) -> dict[str, Path]:
    """The per-level pictures, captioned with the level status and, when uncertain, its reasons."""
    status = str(levels["level_status"].iloc[0])
    reasons = str(levels["level_reasons"].iloc[0] or "") if status != "ok" else ""
    note = "levels ok" if status == "ok" else f"levels UNCERTAIN: {reasons}"
    return {
        f"FF by vertebral level and muscle side ({note})": level_heatmap(levels, sdir / f"{subject}_ff_levels.png"),
        f"Cross-section area by vertebral level ({note})": level_csa_chart(levels, sdir / f"{subject}_csa_levels.png"),
    }
