"""Convert DICOM Dixon studies to NIfTI, so the rest of the pipeline (:func:`scripts.io.load.load_dixon`) is unchanged.

:func:`dicom_dataset_entries` is what :func:`scripts.io.discover.discover_subjects` does with a folder of DICOM
files: one subject per study, its Dixon series selected (:func:`scripts.io.dicom_select.select_dixon_series`),
stacked (:func:`scripts.io.dicom_stack.stack_series`) and written as one NIfTI file per role into a cache folder.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from scripts.io.dicom_rules import load_rules
from scripts.io.dicom_select import select_dixon_series
from scripts.io.dicom_series import DicomSeries, scan_dicom_folder
from scripts.io.dicom_stack import stack_series
from scripts.io.entry import make_entry
from scripts.io.roles import IMAGE_ROLES

__all__ = ["convert_dicom_study", "dicom_dataset_entries"]

logger = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")
_CACHE_DIRS: list[Path] = []


def _write_nifti(volume: np.ndarray, affine: np.ndarray, description: str, path: Path) -> None:
    """Write ``volume`` uncompressed (byte-identical for the same input), atomically (a temporary file renamed)."""
    img = nib.Nifti1Image(volume, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header["descrip"] = description.encode()[:79]
    tmp = path.with_name(f".{path.name}.tmp.nii")
    nib.save(img, str(tmp))
    os.replace(tmp, path)


def convert_dicom_study(
    series: Sequence[DicomSeries],
    out_dir: str | os.PathLike[str],
    subject: str,
    rules: Mapping[str, Any] | str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Select the Dixon series of one study, stack them and write one NIfTI file per role.

    Files are written uncompressed (``<out_dir>/<subject>/<subject>_<role>.nii``) so that the same DICOM input
    always gives byte-identical files: the run manifest fingerprints its inputs, and a gzip time stamp would make
    a repeated run look like a different one.

    Args:
        series: the series of one study.
        out_dir: cache folder (created; never the user's DICOM folder).
        subject: subject id (file prefix and the entry's ``subject``).
        rules: user series rules (see :func:`scripts.io.dicom_rules.load_rules`).

    Returns:
        A :func:`scripts.io.discover.discover_subjects` entry (role -> NIfTI path, ``image``, ``dixon_set``) with
        ``dicom_series``: role -> SeriesInstanceUID key and description, for provenance.

    Raises:
        DixonInputError: selection or stacking failed (see :func:`scripts.io.dicom_select.select_dixon_series`,
            :func:`scripts.io.dicom_stack.stack_series`); the selected series do not share one grid.
    """
    selected = select_dixon_series(series, rules)
    sdir = Path(out_dir) / subject
    sdir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    ref_affine: np.ndarray | None = None
    for role in IMAGE_ROLES:
        if role not in selected:
            continue
        volume, affine, _ = stack_series(selected[role])
        if ref_affine is not None and not np.allclose(affine, ref_affine, atol=1e-3):
            logger.warning(
                "%s: the %s series lies on another grid than the first series; load_dixon checks it", subject, role
            )
        ref_affine = affine if ref_affine is None else ref_affine
        number = selected[role].header.get("SeriesNumber", "?")
        path = sdir / f"{subject}_{role}.nii"
        _write_nifti(volume, affine, f"{role} from DICOM series {number}", path)
        paths[role] = str(path)
    entry = make_entry(subject, paths, f"DICOM study {selected[next(iter(selected))].study_uid}")
    entry["dicom_series"] = {
        role: {"key": s.key, "series_number": s.header.get("SeriesNumber"), "description": s.description}
        for role, s in selected.items()
    }
    return entry


def _default_cache_dir() -> Path:
    """A per-process temporary folder for converted NIfTI files, removed when the process ends."""
    env = os.environ.get("DIXON_DICOM_CACHE")
    if env:
        return Path(env).expanduser()
    path = Path(tempfile.mkdtemp(prefix="dixon_dicom_"))
    _CACHE_DIRS.append(path)
    return path


@atexit.register
def _remove_cache_dirs() -> None:
    for path in _CACHE_DIRS:
        shutil.rmtree(path, ignore_errors=True)


def _subject_id(series: Sequence[DicomSeries], study_uid: str) -> str:
    header = series[0].header
    raw = str(header.get("PatientID") or header.get("PatientName") or "")
    sid = _SAFE.sub("_", raw).strip("._-")
    return sid or f"study_{study_uid[-8:]}"


def _study_subject_ids(studies: Mapping[str, Sequence[DicomSeries]]) -> dict[str, str]:
    """StudyInstanceUID -> subject id: the PatientID, ``_<StudyDate>`` for a patient with several studies, and a
    counter when still not unique."""
    ids: dict[str, str] = {uid: _subject_id(ss, uid) for uid, ss in studies.items()}
    counts: dict[str, int] = {}
    for sid in ids.values():
        counts[sid] = counts.get(sid, 0) + 1
    used: set[str] = set()
    for uid in sorted(studies):
        sid = ids[uid]
        if counts[sid] > 1:
            sid = f"{sid}_{studies[uid][0].header.get('StudyDate', 'study')}"
        base, n = sid, 2
        while sid in used:
            sid, n = f"{base}_{n}", n + 1
        used.add(sid)
        ids[uid] = sid
    return ids


def _common_folder(files: Iterable[Path]) -> Path:
    return Path(os.path.commonpath([str(f.parent) for f in files]))


def dicom_dataset_entries(
    dataset_dir: str | os.PathLike[str],
    rules: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Discovery entries for a folder of DICOM files: one subject per study, converted to NIfTI in a cache.

    The cache is ``cache_dir``, else the environment variable ``DIXON_DICOM_CACHE``, else a temporary folder
    removed when the process exits; the user's DICOM folder is only read.

    Args:
        dataset_dir: a study folder or a folder of studies.
        rules: user series rules (:func:`scripts.io.dicom_rules.load_rules`).
        cache_dir: where the NIfTI files go.

    Returns:
        Entries as :func:`scripts.io.discover.discover_subjects` returns them, sorted by subject. The subject id
        is the PatientID (made file-name safe); a patient with several studies gets ``_<StudyDate>`` and, if
        still not unique, a counter.

    Raises:
        DixonInputError: see :func:`scripts.io.dicom_series.scan_dicom_folder`, :func:`convert_dicom_study`.
    """
    root = Path(dataset_dir).expanduser()
    parsed = load_rules(rules)
    studies: dict[str, list[DicomSeries]] = {}
    for s in scan_dicom_folder(root):
        studies.setdefault(s.study_uid, []).append(s)
    ids = _study_subject_ids(studies)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
    entries = []
    for uid in sorted(studies, key=lambda u: ids[u]):
        study_dir = _common_folder([f for s in studies[uid] for f in s.files])
        for s in studies[uid]:
            s.folder = study_dir
        entry = convert_dicom_study(studies[uid], cache, ids[uid], parsed)
        # logged, not kept in the entry: PyTorch's collate cannot batch its nested values (None series numbers)
        series = entry.pop("dicom_series")
        logger.info(
            "DICOM study %s (%s): %s -> %s",
            ids[uid],
            study_dir,
            ", ".join(f"{r}=series {v['series_number']} {v['description']!r}" for r, v in series.items()),
            cache / ids[uid],
        )
        entries.append(entry)
    return entries
