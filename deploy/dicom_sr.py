"""DICOM SR (TID 1500 Measurement Report, Comprehensive 3D SR) of the per-muscle fat fraction and volume, with each
side's quality verdict, and of the per-level values when the label map has named vertebral bodies.

Per muscle side, one volumetric measurement group (TID 1501 via TID 1411) per segment of the SEG written by
:mod:`deploy.dicom_seg` (label 1-8): the mean FF over the label (``DCM 129100 Fat fraction``, derivation
``SCT 373098007 Mean``, unit ``%``), the median FF (derivation ``SCT 373099004 Median``), the label volume
(``SCT 118565006 Volume``, unit ``cm3`` = mL) and the quality score (``SCT 246262008 Score``, unit ``1``, 0-1), with
the muscle as finding type and finding site (laterality Left/Right). The numbers are those of the FF table; a muscle
without a finite FF (absent from the label map) gets its group without that measurement.

Per vertebral level and muscle side (the per-level table), one measurement group without an image region (TID 1501):
tracking id ``psoas_left_L3``, finding sites the muscle with its laterality and the vertebra (``SCT 36470004 L3
vertebra``, ...), the level side's mean and median FF, volume and mean cross-section (``SCT 42798000 Area``,
``cm2``).

The verdict, in every group, is the coded quality assessment of DICOM's quality-control concepts
(``DCM 111050 Quality Assessment``): ``pass`` -> ``DCM 111237 Usable - Meets the quality control standard``,
``review`` -> ``DCM 111236 Usable - Does not meet the quality control standard``, ``fail`` -> ``DCM 111235 Unusable``;
the reasons in words follow as a ``DCM 121106 Comment`` (TEXT). A level group takes its side's verdict, lowered from
pass to review when the level's bounds are uncertain (the comment says why), so a viewer that shows only the SR still
shows which numbers not to trust; the comment of a level named from the user's stated lowest body says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["QC_ASSESSMENT", "write_sr"]

#: verdict -> (code value, meaning) of DICOM's quality assessment values (DCM 111235-111237)
QC_ASSESSMENT: dict[str, tuple[str, str]] = {
    "pass": ("111237", "Usable - Meets the quality control standard"),
    "review": ("111236", "Usable - Does not meet the quality control standard"),
    "fail": ("111235", "Unusable - Quality renders image unusable"),
}


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _verdict_items(status: str, reasons: str) -> tuple[list, list]:
    """(qualitative evaluations, TEXT comment items) of one group's verdict; nothing for an unknown status."""
    import highdicom as hd
    from highdicom.sr.coding import CodedConcept
    from pydicom.sr.codedict import codes

    if status not in QC_ASSESSMENT:
        return [], []
    value, meaning = QC_ASSESSMENT[status]
    evaluation = hd.sr.QualitativeEvaluation(
        name=codes.DCM.QualityAssessment, value=CodedConcept(value, "DCM", meaning)
    )
    comments = []
    if reasons:
        comments.append(
            hd.sr.TextContentItem(
                name=codes.DCM.Comment, value=reasons[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
            )
        )
    return [evaluation], comments


def _measurements(row: Any, columns: Sequence[tuple[str, Any, Any, Any]], algorithm: Any) -> list:
    """One NUM item per (column, name, unit, derivation) whose value in ``row`` is finite."""
    import highdicom as hd

    out = []
    for column, name, unit, derivation in columns:
        value = _finite(row.get(column))
        if value is not None:
            out.append(
                hd.sr.Measurement(name=name, value=value, unit=unit, derivation=derivation, algorithm_id=algorithm)
            )
    return out


def _with_comments(group: Any, comments: list) -> Any:
    # highdicom's TID 1501 classes take coded evaluations only; the reasons go into the group's container as TEXT
    for item in comments:
        group[0].ContentSequence.append(item)
    return group


def _side_groups(table: pd.DataFrame, seg: Any, source_series: str, algorithm: Any) -> list:
    import highdicom as hd
    from highdicom.sr.coding import CodedConcept
    from pydicom.sr.codedict import codes

    from deploy.dicom_seg import LATERALITY, MUSCLE_CODES

    columns = (
        ("ff_mean_pct", codes.DCM.FatFraction, codes.UCUM.Percent, codes.SCT.Mean),
        ("ff_median_pct", codes.DCM.FatFraction, codes.UCUM.Percent, codes.SCT.Median),
        ("volume_ml", codes.SCT.Volume, codes.UCUM.CubicCentimeter, None),
        ("qc_score", codes.SCT.Score, codes.UCUM.NoUnits, None),
    )
    groups = []
    for value in sorted(int(s.SegmentNumber) for s in seg.SegmentSequence):
        rows = table[(table["label"] == value) & table["side"].isin(["left", "right"])]
        if rows.empty:
            continue
        row = rows.iloc[0]
        muscle = MUSCLE_CODES[str(row["muscle"])]
        muscle_code = CodedConcept(muscle.value, "SCT", muscle.meaning)
        side = LATERALITY[str(row["side"])]
        site = hd.sr.FindingSite(
            anatomic_location=muscle_code, laterality=CodedConcept(side.value, "SCT", side.meaning)
        )
        evaluations, comments = _verdict_items(str(row.get("qc_status", "")), _text(row.get("qc_reasons")))
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{row['muscle']}_{row['side']}"),
            referenced_segment=hd.sr.ReferencedSegment(
                sop_class_uid=seg.SOPClassUID,
                sop_instance_uid=seg.SOPInstanceUID,
                segment_number=value,
                source_series=hd.sr.SourceSeriesForSegmentation(source_series),
            ),
            finding_type=muscle_code,
            finding_sites=[site],
            measurements=_measurements(row, columns, algorithm),
            qualitative_evaluations=evaluations or None,
        )
        groups.append(_with_comments(group, comments))
    return groups


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _level_groups(levels: pd.DataFrame, table: pd.DataFrame, algorithm: Any) -> list:
    import highdicom as hd
    from highdicom.sr.coding import CodedConcept
    from pydicom.sr.codedict import codes
    from scripts.quantification.vertebra_naming import LOWEST_BODY_NAMES, lowest_body_value

    from deploy.dicom_seg import CONTEXT_CODES, LATERALITY, MUSCLE_CODES

    columns = (
        ("ff_mean_pct", codes.DCM.FatFraction, codes.UCUM.Percent, codes.SCT.Mean),
        ("ff_median_pct", codes.DCM.FatFraction, codes.UCUM.Percent, codes.SCT.Median),
        ("volume_ml", codes.SCT.Volume, codes.UCUM.CubicCentimeter, None),
        ("csa_mean_cm2", codes.SCT.Area, CodedConcept("cm2", "UCUM", "square centimeter"), codes.SCT.Mean),
    )
    reasons = {}
    if "qc_reasons" in table:
        sides = table[table["side"].isin(["left", "right"])]
        reasons = {int(r.label): _text(r.qc_reasons) for r in sides.itertuples()}
    groups = []
    for _, row in levels.iterrows():
        if str(row["level"]) not in LOWEST_BODY_NAMES or str(row["side"]) not in LATERALITY:
            continue
        muscle = MUSCLE_CODES[str(row["muscle"])]
        muscle_code = CodedConcept(muscle.value, "SCT", muscle.meaning)
        side = LATERALITY[str(row["side"])]
        vertebra = CONTEXT_CODES[lowest_body_value(str(row["level"]))]
        status = str(row.get("qc_status", ""))
        why = [reasons.get(int(row["label"]), "")]
        if str(row.get("level_status", "ok")) != "ok":
            status = "review" if status == "pass" else status
            why.append(f"level bounds {row['level_status']}: {_text(row.get('level_reasons'))}")
        anchor = _text(row.get("level_anchor"))
        if anchor and anchor != "sacrum":
            # a level named from the user's statement is only as right as the statement: a reader of the SR alone
            # must see that
            why.append(f"level names from the {anchor}, not from the sacrum")
        evaluations, comments = _verdict_items(status, "; ".join(w for w in why if w))
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=hd.UID(), identifier=f"{row['muscle']}_{row['side']}_{row['level']}"
            ),
            finding_type=muscle_code,
            finding_sites=[
                hd.sr.FindingSite(
                    anatomic_location=muscle_code, laterality=CodedConcept(side.value, "SCT", side.meaning)
                ),
                hd.sr.FindingSite(anatomic_location=CodedConcept(vertebra.value, "SCT", vertebra.meaning)),
            ],
            measurements=_measurements(row, columns, algorithm),
            qualitative_evaluations=evaluations or None,
        )
        groups.append(_with_comments(group, comments))
    return groups


def write_sr(
    table: pd.DataFrame,
    seg_path: str | Path,
    source_datasets: Sequence,
    out_path: str | Path,
    algorithm_version: str,
    series_number: int = 901,
    levels: pd.DataFrame | None = None,
) -> Path:
    """Write the FF table's per-side rows (and the per-level table's rows) as a TID 1500 measurement report
    referencing the SEG's segments.

    Args:
        table: the subject's FF table with its verdict
            (:func:`scripts.pipeline.measure.measure_subject_levels_and_label`): columns ``label``, ``muscle``,
            ``side``, ``ff_mean_pct``, ``ff_median_pct``, ``volume_ml``, and ``qc_status``, ``qc_score``,
            ``qc_reasons`` where the verdict ran; rows with ``side`` ``left``/``right`` are reported (the L/R mean
            rows are derived numbers and stay in the CSV/JSON).
        seg_path: the DICOM SEG the measurements refer to (segment number = label value).
        source_datasets: the SEG's source images (evidence; their series is the segmentation source).
        out_path: the SR file (refused when it exists).
        algorithm_version: bundle version.
        series_number: SeriesNumber of the SR series.
        levels: the per-level table (:data:`scripts.quantification.level_statistics.LEVEL_COLUMNS` and ``qc_status``)
            or None (no named vertebral bodies: no level groups).

    Returns:
        The path written.
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    out_path = Path(out_path)
    if out_path.exists():
        raise FileExistsError(f"{out_path} exists; refusing to overwrite it")
    seg = pydicom.dcmread(seg_path)
    algorithm = hd.sr.AlgorithmIdentification(name="lumbar_dixon_muscle_ff", version=algorithm_version)
    groups = _side_groups(table, seg, str(source_datasets[0].SeriesInstanceUID), algorithm)
    if levels is not None and not levels.empty:
        groups += _level_groups(levels, table, algorithm)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="lumbar_dixon_muscle_ff", model_name=algorithm_version
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg, *source_datasets],
        content=report[0],
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="MONAI lumbar Dixon bundle",
        series_description="Lumbar muscle fat fraction (AI)",
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sr.save_as(out_path)
    return out_path
