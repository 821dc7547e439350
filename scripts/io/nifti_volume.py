"""Read one Dixon image from a NIfTI file, refusing what is not one readable, real-valued 3D volume."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
from scripts.io.errors import DixonInputError
from scripts.io.roles import NIFTI_SUFFIXES, role_label
from scripts.io.scan_notes import ScanNotes

__all__ = ["check_nifti_file", "read_volume"]


def _read_head(path: Path, where: str) -> bytes:
    """The first 544 bytes (a NIfTI-2 header), decompressed when the name ends in ``.gz``."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            return fh.read(544)
    except (OSError, EOFError) as err:
        raise DixonInputError(f"{where}: not a NIfTI file: it cannot be read as gzip data ({err})", path) from err


def check_nifti_file(role: str, path: Path) -> None:
    """Existence, extension and magic number, before nibabel sees the file (its errors do not name the file)."""
    where = role_label(role, path)
    if not path.exists():
        raise DixonInputError(f"{where}: file not found", path)
    if not path.is_file():
        raise DixonInputError(f"{where}: not a file (a folder? DICOM series must be converted to NIfTI first)", path)
    if not path.name.lower().endswith(NIFTI_SUFFIXES):
        raise DixonInputError(
            f"{where}: not a NIfTI file (extension {''.join(path.suffixes) or 'none'!r}; expected .nii or .nii.gz)",
            path,
        )
    head = _read_head(path, where)
    nifti1 = len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00")
    nifti2 = len(head) >= 12 and head[4:12] == b"n+2\x00\r\n\x1a\n"
    if not (nifti1 or nifti2):
        raise DixonInputError(
            f"{where}: not a NIfTI file (no NIfTI-1/NIfTI-2 magic in its {len(head)}-byte header; "
            f"first bytes {head[:8]!r})",
            path,
        )


def _check_shape(shape: tuple[int, ...], where: str, path: Path) -> None:
    """3D, or 3D with trailing singleton dimensions; a single slice and a real 4th dimension are refused."""
    if len(shape) < 3:
        raise DixonInputError(
            f"{where}: is {len(shape)}D (shape {shape}), a single slice or projection; expected one 3D volume: "
            "convert the whole series (every slice of the stack) into one file",
            path,
        )
    if len(shape) > 3 and any(s != 1 for s in shape[3:]):
        kind = f"{len(shape)}D" if len(shape) != 4 else f"4D with {shape[3]} volumes"
        raise DixonInputError(
            f"{where}: is {kind} (shape {shape}); expected one 3D volume: split multi-echo or multi-volume series "
            "into one file per image",
            path,
        )


def read_volume(role: str, path: Path, notes: ScanNotes) -> tuple[np.ndarray, np.ndarray]:
    """Read one 3D image as float32 with its affine; refuse what is not a single finite volume.

    Trailing singleton dimensions (``(X, Y, Z, 1)``) are dropped; an image without qform and sform is read with a
    warning in ``notes``.
    """
    where = role_label(role, path)
    check_nifti_file(role, path)
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for corrupt headers; all mean "unreadable"
        raise DixonInputError(f"{where}: unreadable NIfTI header ({type(err).__name__}: {err})", path) from err
    dtype = img.get_data_dtype()
    if dtype.kind == "c" or dtype.fields is not None:
        raise DixonInputError(f"{where}: stores {dtype} values (complex or RGB); expected a real-valued image", path)
    shape = tuple(int(s) for s in img.shape)
    _check_shape(shape, where, path)
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape[:3])
    except Exception as err:  # truncated gzip streams, short files, ...
        raise DixonInputError(f"{where}: unreadable image data ({type(err).__name__}: {err})", path) from err
    header = img.header
    if int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0:
        notes.warn(f"{where}: no qform or sform; its affine is guessed from the voxel sizes")
    return data, np.asarray(img.affine, dtype=np.float64)
