"""DICOM image series: :class:`DicomSeries` and :func:`scan_dicom_folder`, which groups a folder's files into them.

A series is one SeriesInstanceUID, split further when it mixes Dixon image types (a Philips mDIXON series can hold
water, fat, in-phase and opposed-phase images under one UID).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from scripts.io.dicom_files import find_dicom_files
from scripts.io.dicom_tokens import VALUE_SEPARATOR, role_from_image_type
from scripts.io.errors import DixonInputError

__all__ = ["DicomSeries", "header_value", "scan_dicom_folder"]

logger = logging.getLogger(__name__)

_HEADER_TAGS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "ImageType",
    "Modality",
    "PatientID",
    "PatientName",
    "StudyDate",
    "StudyDescription",
    "Manufacturer",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "FrameOfReferenceUID",
    "ProtocolName",
    "SequenceName",
    "EchoTime",
)


@dataclass
class DicomSeries:
    """The files of one Dixon image series (one role) and the header values that identify it.

    Attributes:
        key: unique id: the SeriesInstanceUID, plus ``#<role>`` when a series mixes image types.
        files: the DICOM files of the series (unsorted; :func:`scripts.io.dicom_stack.stack_series` sorts them in
            space).
        header: values of the first file for the keywords in ``_HEADER_TAGS`` (``ImageType`` as a tuple of
            upper-case strings; missing keywords absent).
        study_uid: StudyInstanceUID.
        folder: the folder that was scanned (for messages).
        headers: the first file's full header (no pixel data), for user rules on keywords outside ``header``.
    """

    key: str
    files: list[Path]
    header: dict[str, Any]
    study_uid: str
    folder: Path
    headers: list[Any] = field(default_factory=list, repr=False)

    @property
    def description(self) -> str:
        """SeriesDescription (empty when absent)."""
        return str(self.header.get("SeriesDescription", "") or "")

    @property
    def image_type(self) -> tuple[str, ...]:
        """ImageType values, upper case."""
        return tuple(self.header.get("ImageType", ()) or ())

    def summary(self) -> str:
        """One line naming the series for messages: number, description, ImageType, file count."""
        number = self.header.get("SeriesNumber", "?")
        image_type = VALUE_SEPARATOR.join(self.image_type) or "-"
        return f"series {number} {self.description!r} (ImageType {image_type}, {len(self.files)} file(s))"


def header_value(ds: Any, keyword: str) -> Any:
    """A header value as plain Python: ImageType a tuple of upper-case strings, counts ``int``, the rest ``str``;
    ``None`` when absent (or a count that is not a number)."""
    value = ds.get(keyword, None)
    if value is None:
        return None
    if keyword == "ImageType":
        values = [value] if isinstance(value, str) else list(value)  # pydicom gives a MultiValue or one str
        return tuple(str(v).strip().upper() for v in values)
    if keyword in ("Rows", "Columns", "NumberOfFrames", "SeriesNumber"):
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return str(value)


def _read_mr_header(path: Path, skipped: dict[str, int]) -> Any | None:
    """The header of an MR image file, or ``None`` (counted in ``skipped``) for anything else or an unreadable
    file."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is reported and skipped
        logger.warning("%s: unreadable DICOM file skipped (%s)", path, err)
        skipped["unreadable"] = skipped.get("unreadable", 0) + 1
        return None
    modality = str(ds.get("Modality", "") or "")
    if modality != "MR" or "Rows" not in ds:
        skipped[modality or "no modality"] = skipped.get(modality or "no modality", 0) + 1
        return None
    return ds


def scan_dicom_folder(folder: str | os.PathLike[str]) -> list[DicomSeries]:
    """Read the headers of every DICOM file under ``folder`` and group them into image series.

    Files without pixel data (structured reports, segmentations, presentation states) and non-MR images are
    skipped. A series whose files carry different role-naming ImageTypes (a Philips series holding water, fat,
    in-phase and opposed-phase images) is split into one :class:`DicomSeries` per ImageType.

    Args:
        folder: a study folder, or a folder of studies (any depth).

    Returns:
        The series, sorted by study, series number and key.

    Raises:
        DixonInputError: no DICOM file under ``folder``, or no MR image among them (the message says what was
            found).
    """
    root = Path(folder)
    files = find_dicom_files(root)
    if not files:
        raise DixonInputError(f"no DICOM Part 10 file (with the 'DICM' preamble) found under {root}", root)
    groups: dict[str, DicomSeries] = {}
    skipped: dict[str, int] = {}
    for path in files:
        ds = _read_mr_header(path, skipped)
        if ds is None:
            continue
        header = {k: v for k in _HEADER_TAGS if (v := header_value(ds, k)) is not None}
        series_uid = str(ds.get("SeriesInstanceUID", "") or f"no-uid:{path.parent}")
        study_uid = str(ds.get("StudyInstanceUID", "") or "no-study-uid")
        role, _ = role_from_image_type(header.get("ImageType", ()))
        key = series_uid if role is None else f"{series_uid}#{role}"
        if key not in groups:
            groups[key] = DicomSeries(key=key, files=[], header=header, study_uid=study_uid, folder=root)
        groups[key].files.append(path)
        if len(groups[key].headers) == 0:
            groups[key].headers.append(ds)
    if not groups:
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items()))
        raise DixonInputError(f"no MR image series under {root}: found {len(files)} DICOM file(s) ({found})", root)
    # a series split by ImageType keeps the plain UID for the part without a role, the others get "#role"
    return sorted(groups.values(), key=lambda s: (s.study_uid, s.header.get("SeriesNumber") or 0, s.key))
