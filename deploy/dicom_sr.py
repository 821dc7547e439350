"""DICOM SR (TID 1500 Measurement Report, Comprehensive 3D SR) of the per-muscle fat fraction and volume.

One volumetric measurement group per segment of the SEG written by :mod:`deploy.dicom_seg` (label 1-8): the mean
FF over the label (``DCM 129100 Fat fraction``, derivation ``SCT 373098007 Mean``, unit ``%``), the median FF
(derivation ``SCT 373099004 Median``) and the label volume (``SCT 118565006 Volume``, unit ``cm3`` = mL), with the
muscle as finding type and finding site (laterality Left/Right). The numbers are those of the FF table; a muscle
without a finite FF (absent from the label map) gets its group without that measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

__all__ = ["write_sr"]


def write_sr(
    table: pd.DataFrame,
    seg_path: str | Path,
    source_datasets: Sequence,
    out_path: str | Path,
    algorithm_version: str,
    series_number: int = 901,
) -> Path:
    """Write the FF table's per-side rows as a TID 1500 measurement report referencing the SEG's segments.

    Args:
        table: the subject's FF table (:func:`scripts.quantification.statistics.quantify_muscles`): columns ``label``,
        ``muscle``,
            ``side``, ``ff_mean_pct``, ``ff_median_pct``, ``volume_ml``; rows with ``side`` ``left``/``right``
            are reported (the L/R mean rows are derived numbers and stay in the CSV/JSON).
        seg_path: the DICOM SEG the measurements refer to (segment number = label value).
        source_datasets: the SEG's source images (evidence; their series is the segmentation source).
        out_path: the SR file (refused when it exists).
        algorithm_version: bundle version.
        series_number: SeriesNumber of the SR series.

    Returns:
        The path written.
    """
    import highdicom as hd
    import pydicom
    from highdicom.sr.coding import CodedConcept
    from pydicom.sr.codedict import codes

    from deploy.dicom_seg import LATERALITY, MUSCLE_CODES

    out_path = Path(out_path)
    if out_path.exists():
        raise FileExistsError(f"{out_path} exists; refusing to overwrite it")
    seg = pydicom.dcmread(seg_path)
    source_series = str(source_datasets[0].SeriesInstanceUID)
    algorithm = hd.sr.AlgorithmIdentification(name="lumbar_dixon_muscle_ff", version=algorithm_version)
    groups = []
    for value in sorted(int(s.SegmentNumber) for s in seg.SegmentSequence):
        rows = table[(table["label"] == value) & table["side"].isin(["left", "right"])]
        if rows.empty:
            continue
        row = rows.iloc[0]
        muscle = MUSCLE_CODES[str(row["muscle"])]
        muscle_code = CodedConcept(muscle.value, "SCT", muscle.meaning)
        side = LATERALITY[str(row["side"])]
        laterality = CodedConcept(side.value, "SCT", side.meaning)
        site = hd.sr.FindingSite(anatomic_location=muscle_code, laterality=laterality)
        measurements = []
        for column, derivation in (("ff_mean_pct", codes.SCT.Mean), ("ff_median_pct", codes.SCT.Median)):
            ff = float(row[column])
            if math.isfinite(ff):
                measurements.append(
                    hd.sr.Measurement(
                        name=codes.DCM.FatFraction,
                        value=ff,
                        unit=codes.UCUM.Percent,
                        derivation=derivation,
                        algorithm_id=algorithm,
                    )
                )
        volume = float(row["volume_ml"])
        if math.isfinite(volume):
            measurements.append(
                hd.sr.Measurement(
                    name=codes.SCT.Volume, value=volume, unit=codes.UCUM.CubicCentimeter, algorithm_id=algorithm
                )
            )
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=hd.UID(), identifier=str(row.get("muscle")) + "_" + str(row["side"])
                ),
                referenced_segment=hd.sr.ReferencedSegment(
                    sop_class_uid=seg.SOPClassUID,
                    sop_instance_uid=seg.SOPInstanceUID,
                    segment_number=value,
                    source_series=hd.sr.SourceSeriesForSegmentation(source_series),
                ),
                finding_type=muscle_code,
                finding_sites=[site],
                measurements=measurements,
            )
        )
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
