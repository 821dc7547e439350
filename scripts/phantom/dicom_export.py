"""Write a phantom subject as an MR Dixon DICOM study, one single-frame series per role, in a vendor's style.

The study is what a scanner would send: one StudyInstanceUID and FrameOfReferenceUID, one series per Dixon image
(water, fat, in-phase, opposed-phase, FF map) with the vendor's ImageType and SeriesDescription conventions
(:data:`VENDOR_STYLES`), ImagePositionPatient/ImageOrientationPatient from the phantom's RAS affine converted to
DICOM's LPS, and unsigned 16-bit pixels (the FF map as percent x 10 with RescaleSlope 0.1). UIDs derive from the
seed, so the same seed gives the same study. The truth label map is written beside it as NIfTI, outside the
DICOM folder, for tests.

Layout::

    out_dir/dicom/<NN>_<description>/IM_<KKKK>.dcm   one folder per series
    out_dir/truth/<subject>_label.nii.gz             ground-truth labels (phantom grid)
    out_dir/truth/<subject>_ground_truth.csv         per-muscle truth table
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scripts.phantom.generate import PhantomSubject

__all__ = ["VendorStyle", "VENDOR_STYLES", "write_dicom_study", "lps_geometry"]

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
_ROLES = ("water", "fat", "inphase", "opposed", "ff")
_FF_SLOPE = 0.1  # stored integer x 0.1 = percent, as vendor FF maps commonly are (0-1000 for 0-100 %)


@dataclass(frozen=True)
class VendorStyle:
    """How a vendor labels the series of a Dixon study.

    Attributes:
        manufacturer: Manufacturer (0008,0070).
        image_type: role -> ImageType values.
        description: role -> SeriesDescription.
    """

    manufacturer: str
    image_type: dict[str, tuple[str, ...]]
    description: dict[str, str]


#: Vendor styles used by the synthetic studies (see docs/guides/dicom.md for where each convention comes from).
VENDOR_STYLES: dict[str, VendorStyle] = {
    "siemens": VendorStyle(
        manufacturer="SIEMENS",
        image_type={
            "water": ("DERIVED", "PRIMARY", "DIXON", "WATER"),
            "fat": ("DERIVED", "PRIMARY", "DIXON", "FAT"),
            "inphase": ("ORIGINAL", "PRIMARY", "DIXON", "IN_PHASE"),
            "opposed": ("ORIGINAL", "PRIMARY", "DIXON", "OPP_PHASE"),
            "ff": ("DERIVED", "PRIMARY", "DIXON", "FAT_FRACTION"),
        },
        description={
            "water": "t1_vibe_dixon_tra_W",
            "fat": "t1_vibe_dixon_tra_F",
            "inphase": "t1_vibe_dixon_tra_in",
            "opposed": "t1_vibe_dixon_tra_opp",
            "ff": "t1_vibe_dixon_tra_FF",
        },
    ),
    "ge": VendorStyle(
        manufacturer="GE MEDICAL SYSTEMS",
        # GE's ImageType does not name the Dixon image; the description prefix does
        image_type=dict.fromkeys(_ROLES, ("DERIVED", "PRIMARY", "OTHER")),
        description={
            "water": "WATER: Ax LAVA-Flex",
            "fat": "FAT: Ax LAVA-Flex",
            "inphase": "InPhase: Ax LAVA-Flex",
            "opposed": "OutPhase: Ax LAVA-Flex",
            "ff": "FatFrac: Ax IDEAL IQ",
        },
    ),
    "philips": VendorStyle(
        manufacturer="Philips Medical Systems",
        image_type={
            "water": ("DERIVED", "PRIMARY", "W", "W", "DERIVED"),
            "fat": ("DERIVED", "PRIMARY", "F", "F", "DERIVED"),
            "inphase": ("ORIGINAL", "PRIMARY", "IP", "IP", "FFE"),
            "opposed": ("ORIGINAL", "PRIMARY", "OP", "OP", "FFE"),
            "ff": ("DERIVED", "PRIMARY", "FF", "FF", "DERIVED"),
        },
        description={
            "water": "mDIXON W",
            "fat": "mDIXON F",
            "inphase": "mDIXON IP",
            "opposed": "mDIXON OP",
            "ff": "mDIXON FF",
        },
    ),
}


def lps_geometry(affine_ras: np.ndarray) -> tuple[list[float], list[float], float, np.ndarray, np.ndarray]:
    """DICOM slice geometry of a volume stored with slices along array axis K.

    Args:
        affine_ras: 4x4 voxel-index ``(i, j, k)`` -> RAS world (mm) affine; ``i`` becomes the DICOM column index,
            ``j`` the row index, ``k`` the slice.

    Returns:
        ``(image_orientation, pixel_spacing, slice_spacing, origin_lps, slice_step_lps)``: ImageOrientationPatient
        (row then column direction cosines, LPS), PixelSpacing ``[row spacing, column spacing]`` (mm), the slice
        spacing (mm), the LPS position of voxel (0, 0, 0) and the LPS step from one slice to the next.
    """
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine_ras, dtype=np.float64)
    sizes = np.linalg.norm(lps[:3, :3], axis=0)
    row, col = lps[:3, 0] / sizes[0], lps[:3, 1] / sizes[1]
    iop = [float(v) for v in (*row, *col)]
    return iop, [float(sizes[1]), float(sizes[0])], float(sizes[2]), lps[:3, 3].copy(), lps[:3, 2].copy()


def _ds_str(v: float) -> str:
    """A decimal string (DS, at most 16 characters) that keeps sub-micrometre precision."""
    for digits in range(10, 0, -1):
        text = f"{v:.{digits}f}".rstrip("0").rstrip(".")
        if len(text) <= 16:
            return text if text not in ("-0", "") else "0"
    return f"{v:.0f}"


def _stored(subject: PhantomSubject, role: str) -> tuple[np.ndarray, float]:
    """Pixel values as uint16 and the RescaleSlope that gives the physical value back."""
    data = subject.images[role]
    if role == "ff":
        scale = subject.acquisition.ff_scale
        pct = data.astype(np.float64) * {"fraction": 100.0, "percent": 1.0, "permille": 0.1}[scale]
        pct = np.nan_to_num(pct, nan=0.0)
        return np.clip(np.rint(pct / _FF_SLOPE), 0, 65535).astype(np.uint16), _FF_SLOPE
    if data.min() < 0:
        raise ValueError(f"{subject.subject_id} {role}: negative values cannot be stored as unsigned pixels")
    return data.astype(np.uint16), 1.0


def _uid(seed_src: list[str], *parts: object) -> str:
    """A deterministic UID: the same subject, vendor and ``parts`` always give the same one."""
    return generate_uid(entropy_srcs=[*seed_src, *map(str, parts)])


def _slice_dataset(
    subject: PhantomSubject,
    style: VendorStyle,
    role: str,
    number: int,
    k: int,
    uids: dict[str, str],
    geometry: tuple,
    pixels: np.ndarray,
    slope: float,
) -> Dataset:
    """The MR image of slice ``k`` of series ``number`` (``role``); ``uids`` holds its study, frame, series and SOP
    instance UIDs, ``geometry`` is ``lps_geometry(subject.affine)``."""
    iop, pixel_spacing, slice_spacing, origin, step = geometry
    nx, ny = pixels.shape[:2]
    sid = subject.subject_id
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = uids["sop"]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE_STORAGE, uids["sop"]
    ds.PatientName, ds.PatientID = sid, sid
    ds.PatientBirthDate = ""
    ds.PatientSex = {"M": "M", "F": "F"}.get(getattr(subject.participant, "sex", ""), "O")
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = uids["study"], uids["series"], uids["frame"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20261125"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.StudyID, ds.AccessionNumber = "1", ""
    ds.StudyDescription = "Lumbar spine Dixon (synthetic phantom)"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.Manufacturer = "MR", style.manufacturer
    ds.SeriesNumber, ds.InstanceNumber = number, k + 1
    ds.SeriesDescription = style.description[role]
    ds.ProtocolName = "lumbar_dixon_phantom"
    ds.ImageType = list(style.image_type[role])
    ds.BodyPartExamined = "LSPINE"
    ds.PatientPosition = "HFS"
    ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType = "GR", "SP", "3D"
    ds.ImageOrientationPatient = [_ds_str(v) for v in iop]
    ds.ImagePositionPatient = [_ds_str(v) for v in origin + k * step]
    ds.SliceLocation = _ds_str(float((origin + k * step) @ np.cross(iop[:3], iop[3:])))
    ds.PixelSpacing = [_ds_str(v) for v in pixel_spacing]
    ds.SliceThickness = ds.SpacingBetweenSlices = _ds_str(slice_spacing)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = _ds_str(slope), "0", "US"
    # DICOM rows run along array axis J, columns along I: the frame is the transposed slice
    ds.PixelData = np.ascontiguousarray(pixels[:, :, k].T).tobytes()
    return ds


def _write_series(
    subject: PhantomSubject,
    style: VendorStyle,
    role: str,
    number: int,
    dicom_dir: Path,
    seed_src: list[str],
    study_uids: dict[str, str],
) -> str:
    """Write the series of ``role`` (one file per slice) into its own folder under ``dicom_dir``; returns that folder.

    ``study_uids`` holds the study's "study" and "frame" UIDs, shared by all its series.
    """
    pixels, slope = _stored(subject, role)
    desc = style.description[role]
    sdir = dicom_dir / f"{number:02d}_{re.sub(r'[^A-Za-z0-9]+', '_', desc).strip('_')}"
    sdir.mkdir(parents=True, exist_ok=True)
    geometry = lps_geometry(subject.affine)
    series_uid = _uid(seed_src, "series", role)
    for k in range(pixels.shape[2]):
        uids = {**study_uids, "series": series_uid, "sop": _uid(seed_src, "sop", role, k)}
        ds = _slice_dataset(subject, style, role, number, k, uids, geometry, pixels, slope)
        ds.save_as(sdir / f"IM_{k + 1:04d}.dcm", enforce_file_format=True)
    return str(sdir)


def _write_truth(subject: PhantomSubject, truth_dir: Path) -> tuple[Path, Path]:
    """The truth label map (NIfTI, phantom grid) and truth table (CSV) in ``truth_dir``; returns their paths."""
    sid = subject.subject_id
    truth_dir.mkdir(parents=True, exist_ok=True)
    label_path = truth_dir / f"{sid}_label.nii.gz"
    img = nib.Nifti1Image(subject.images["label"].astype(np.uint8), subject.affine)
    img.header.set_qform(subject.affine, code=1)
    img.header.set_sform(subject.affine, code=1)
    nib.save(img, str(label_path))
    truth_path = truth_dir / f"{sid}_ground_truth.csv"
    subject.truth.to_csv(truth_path, index=False)
    return label_path, truth_path


def write_dicom_study(
    subject: PhantomSubject, out_dir: str | Path, vendor: str = "siemens", overwrite: bool = False
) -> dict[str, str]:
    """Write ``subject`` as a DICOM Dixon study plus its truth label NIfTI.

    Args:
        subject: a generated phantom subject (any orientation; its slices must lie along array axis K).
        out_dir: output folder (see the module docstring for the layout).
        vendor: ``"siemens"``, ``"ge"`` or ``"philips"`` (:data:`VENDOR_STYLES`).
        overwrite: replace an existing study in ``out_dir``; otherwise an existing ``dicom/`` folder is refused.

    Returns:
        ``{"dicom": <dicom folder>, "label": <label NIfTI>, "truth": <truth CSV>}`` plus one entry per role with
        its series folder.

    Raises:
        ValueError: unknown vendor.
        FileExistsError: ``out_dir/dicom`` exists and ``overwrite`` is False.
    """
    if vendor not in VENDOR_STYLES:
        raise ValueError(f"unknown vendor {vendor!r}; expected one of {sorted(VENDOR_STYLES)}")
    style = VENDOR_STYLES[vendor]
    out = Path(out_dir)
    dicom_dir = out / "dicom"
    if dicom_dir.exists() and any(dicom_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{dicom_dir} exists; refusing to overwrite it (pass overwrite=True or a new folder)")
    seed_src = [subject.subject_id, vendor, str(subject.acquisition)]
    study_uids = {"study": _uid(seed_src, "study"), "frame": _uid(seed_src, "frame")}
    written = {
        role: _write_series(subject, style, role, number, dicom_dir, seed_src, study_uids)
        for number, role in enumerate(_ROLES, start=1)
    }
    label_path, truth_path = _write_truth(subject, out / "truth")
    return {"dicom": str(dicom_dir), "label": str(label_path), "truth": str(truth_path), **written}
