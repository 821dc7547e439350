"""DICOM SEG of the eight lumbar muscles (highdicom), with coded segment descriptions, and of the vertebral
context (vertebral bodies L1-L5, sacrum) when the model outputs it.

Codes (SNOMED CT, scheme ``SCT``) and where each was checked on this machine (docs/guides/dicom.md has the table):

- category ``91723000`` Anatomical Structure: DICOM CID 7150, in pydicom's code dictionary.
- erector spinae + multifidus: ``44947003`` Erector spinae muscle, DICOM CID 7151, in pydicom's code dictionary
  (the label also holds multifidus, said in the segment description).
- quadratus lumborum: ``6001004`` Quadratus lumborum muscle (a SNOMED CT body-site list).
- psoas and iliacus: ``68455001`` Iliopsoas muscle (TotalSegmentator's SNOMED mapping). No code for psoas major or
  iliacus alone could be verified here, so both carry their verified parent structure; the segment label and
  description say which muscle it is.
- vertebral bodies L1-L5: ``66794005`` L1 vertebra, ``14293000`` L2, ``36470004`` L3, ``11994002`` L4, ``49668003``
  L5 vertebra (pydicom's code dictionary); the label is the vertebral body, said in the segment description, coded
  by its verified parent structure as the psoas is. Sacrum: ``54735007`` Bone structure of sacrum (same dictionary).
- laterality: Segmented Property Type Modifier ``7771000`` Left / ``24028007`` Right (DICOM CID 244), where the
  DICOM standard puts the laterality of a paired structure in a segmentation.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MuscleCode", "MUSCLE_CODES", "CONTEXT_CODES", "CATEGORY", "LATERALITY", "segment_descriptions", "write_seg"]


@dataclass(frozen=True)
class MuscleCode:
    """A SNOMED CT concept: code value and meaning."""

    value: str
    meaning: str


CATEGORY = MuscleCode("91723000", "Anatomical Structure")
#: muscle name (scripts.labels.MUSCLES) -> segmented property type.
MUSCLE_CODES: dict[str, MuscleCode] = {
    "psoas": MuscleCode("68455001", "Iliopsoas muscle"),
    "iliacus": MuscleCode("68455001", "Iliopsoas muscle"),
    "quadratus_lumborum": MuscleCode("6001004", "Quadratus lumborum muscle"),
    "erector_spinae_multifidus": MuscleCode("44947003", "Erector spinae muscle"),
}
#: vertebral-context label value (scripts.labels.VERTEBRAL_LABELS) -> segmented property type.
CONTEXT_CODES: dict[int, MuscleCode] = {
    9: MuscleCode("66794005", "L1 vertebra"),
    10: MuscleCode("14293000", "L2 vertebra"),
    11: MuscleCode("36470004", "L3 vertebra"),
    12: MuscleCode("11994002", "L4 vertebra"),
    13: MuscleCode("49668003", "L5 vertebra"),
    14: MuscleCode("54735007", "Bone structure of sacrum"),
}
LATERALITY: dict[str, MuscleCode] = {"left": MuscleCode("7771000", "Left"), "right": MuscleCode("24028007", "Right")}
_WORDS = {
    "psoas": "psoas major",
    "iliacus": "iliacus",
    "quadratus_lumborum": "quadratus lumborum",
    "erector_spinae_multifidus": "erector spinae and multifidus",
}
# CIELab display colours (L 0-100, a, b): one hue per muscle, the right side darker
_COLOURS = {
    "psoas": (60.0, 45.0, 30.0),
    "iliacus": (65.0, 10.0, 60.0),
    "quadratus_lumborum": (60.0, -40.0, 30.0),
    "erector_spinae_multifidus": (55.0, 10.0, -45.0),
}


def segment_descriptions(algorithm_version: str, num_classes: int = 9) -> list:
    """One highdicom ``SegmentDescription`` per label 1-8 (and 9-14 when ``num_classes`` is 15), in label order
    (segment number = label value).

    Args:
        algorithm_version: the bundle version, written into the algorithm identification.
        num_classes: the model's outputs: 9 (muscles) or 15 (with the vertebral context).
    """
    import highdicom as hd
    from highdicom.sr.coding import CodedConcept
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.sr.codedict import codes
    from scripts.labels import LABELS, VERTEBRAL_LABELS, muscle_and_side

    def coded(c: MuscleCode) -> CodedConcept:
        return CodedConcept(value=c.value, scheme_designator="SCT", meaning=c.meaning)

    algorithm = hd.AlgorithmIdentificationSequence(
        name="lumbar_dixon_muscle_seg", version=algorithm_version, family=codes.DCM.ArtificialIntelligence
    )
    out = []
    for value in range(1, len(LABELS)):
        muscle, side = muscle_and_side(value)
        lab = _COLOURS[muscle]
        colour = (lab[0] - (12.0 if side == "right" else 0.0), lab[1], lab[2])
        desc = hd.seg.SegmentDescription(
            segment_number=value,
            segment_label=LABELS[value],
            segmented_property_category=coded(CATEGORY),
            segmented_property_type=coded(MUSCLE_CODES[muscle]),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=hd.UID(),
            tracking_id=f"{side} {_WORDS[muscle]}",
            display_color=hd.color.CIELabColor(*colour),
        )
        # laterality of a paired structure: Segmented Property Type Modifier Code Sequence (0062,0011), CID 244
        desc.SegmentedPropertyTypeModifierCodeSequence = DicomSequence([coded(LATERALITY[side])])
        desc.SegmentDescription = f"{side} {_WORDS[muscle]} muscle"
        out.append(desc)
    for value in (v for v in VERTEBRAL_LABELS if v < num_classes):
        name = VERTEBRAL_LABELS[value]
        desc = hd.seg.SegmentDescription(
            segment_number=value,
            segment_label=name,
            segmented_property_category=coded(CATEGORY),
            segmented_property_type=coded(CONTEXT_CODES[value]),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=hd.UID(),
            tracking_id=name.replace("_", " "),
            display_color=hd.color.CIELabColor(90.0, 0.0, 0.0),  # near white: the spine is context, not a result
        )
        desc.SegmentDescription = "sacrum" if value == 14 else f"vertebral body of {CONTEXT_CODES[value].meaning}"
        out.append(desc)
    return out


# Type 2 attributes (present, possibly empty) that highdicom copies from the source images into the SEG; exports
# from some archives and anonymisers drop them
_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def _with_type2_attributes(ds):
    """A shallow copy of ``ds`` with missing Type 2 patient/study attributes present and empty."""
    missing = [k for k in _TYPE2 if k not in ds]
    if not missing:
        return ds
    out = copy.copy(ds)
    for keyword in missing:
        setattr(out, keyword, "")
    return out


def write_seg(
    label_kji: np.ndarray,
    source_datasets: Sequence,
    out_path: str | Path,
    algorithm_version: str,
    series_number: int = 900,
) -> Path:
    """Write the label map as a binary DICOM SEG referencing its source series.

    Args:
        label_kji: uint8 label map ``(K, J, I)`` = (slice, DICOM row, DICOM column) with values 0-8 (0-14 from a
            model with the vertebral context), one frame per source image in the same order
            (``volume.transpose(2, 1, 0)`` of a :func:`scripts.io.dicom_stack.stack_series` volume).
        source_datasets: the source images (pydicom datasets), in slice order.
        out_path: the SEG file to write (refused when it exists).
        algorithm_version: bundle version.
        series_number: SeriesNumber of the SEG series.

    Returns:
        The path written.
    """
    import highdicom as hd

    out_path = Path(out_path)
    if out_path.exists():
        raise FileExistsError(f"{out_path} exists; refusing to overwrite it")
    if label_kji.shape != (len(source_datasets), int(source_datasets[0].Rows), int(source_datasets[0].Columns)):
        raise ValueError(
            f"label map {label_kji.shape} does not match {len(source_datasets)} source images of "
            f"{source_datasets[0].Rows}x{source_datasets[0].Columns}"
        )
    seg = hd.seg.Segmentation(
        source_images=[_with_type2_attributes(ds) for ds in source_datasets],
        pixel_array=np.ascontiguousarray(label_kji.astype(np.uint8)),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(algorithm_version, 15 if int(label_kji.max(initial=0)) > 8 else 9),
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="MONAI lumbar Dixon bundle",
        manufacturer_model_name="lumbar_dixon_muscle_ff",
        software_versions=algorithm_version,
        device_serial_number="0",
        series_description="Lumbar muscles (AI)",
        omit_empty_frames=True,
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out_path)
    return out_path
