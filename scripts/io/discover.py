"""Find each subject's Dixon images: :func:`discover_subjects` (and :func:`inference_datalist` for MONAI).

Sources: a MONAI datalist (:mod:`scripts.io.datalist`), glob patterns per role (:mod:`scripts.io.glob_mapping`), a
folder of NIfTI files (:mod:`scripts.io.folder_scan`) or a folder of DICOM files (:mod:`scripts.io.dicom_study`).
Each gives one entry per subject (:mod:`scripts.io.entry`): the path of each Dixon image (``water``, ``fat``,
``inphase``, ``opposed``, ``ff``), an optional ``label``, the network input ``image`` and the ``dixon_set``.

Network input (docs/design.md, as in the paper): the in-phase image, or the sum water + fat when there is no in-phase
image; an entry's ``image`` is the in-phase path or ``[water_path, fat_path]`` (two channels the pipeline sums).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts.io.datalist import discover_datalist
from scripts.io.dicom_files import folder_holds_dicom
from scripts.io.dicom_study import dicom_dataset_entries
from scripts.io.folder_scan import discover_folder
from scripts.io.glob_mapping import discover_mapping

__all__ = ["discover_subjects", "inference_datalist"]


def _discover_in_folder(
    root: Path | None, mapping: Mapping[str, Any] | str | os.PathLike[str] | None
) -> list[dict[str, Any]]:
    """A folder without a datalist: DICOM (``mapping`` then holds the series rules), glob patterns, or a scan."""
    if root is None:
        raise ValueError("dataset_dir is required without a datalist")
    if not root.is_dir():
        raise ValueError(f"dataset_dir {root} is not a folder")
    # a folder of DICOM files (and no NIfTI): series selected and converted to NIfTI in a per-run cache folder;
    # ``mapping`` then holds the series rules ({role: {DICOM keyword: regex}})
    if folder_holds_dicom(root):
        return dicom_dataset_entries(root, rules=mapping)
    if mapping is not None:
        return discover_mapping(root, mapping)
    return discover_folder(root)


def discover_subjects(
    dataset_dir: str | os.PathLike[str] | None,
    datalist: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    datalist_key: str | None = "testing",
    mapping: Mapping[str, Any] | str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Find each subject's Dixon images and say which set they form and what the network reads.

    Sources, in this order of precedence:

    - **datalist** (MONAI format, a JSON file or an already loaded dict/list): entries under ``datalist_key``.
      When that key is absent or empty (or ``datalist_key`` is ``None``), all entries of ``training``,
      ``validation`` and ``testing`` that exist are used, with a logged warning: an inference run should not
      silently find nothing. Role keys: ``water``, ``fat``, ``inphase``, ``opposed``, ``ff``, ``label`` (aliases
      such as ``in_phase``, ``ip``, ``pdff``, ``seg`` are accepted). An ``image`` key only fills in a missing
      in-phase path (a string) or missing water/fat paths (a two-element list). Relative paths are resolved
      against ``dataset_dir`` first, then against the datalist's folder (MONAI's default ``base_dir``); a file
      that exists in neither is resolved against the first, and :func:`scripts.io.load.load_dixon` reports it
      missing. The subject id is the entry's ``subject``, else the file-name prefix of its first image.
    - **mapping** (a dict or a JSON file ``{"water": "*_W.nii.gz", ...}``): glob patterns per role, relative to
      ``dataset_dir`` (``*``, ``?``, ``[...]``, ``**``; case-insensitive); a pattern without ``/`` matches the file
      name at any depth. Files group into one subject when they sit in the same folder and the wildcards of their
      names match the same text; that text (joined by ``_``) is the subject id, else the folder name.
    - **folder** scan of ``dataset_dir``: each subfolder is one subject (files searched recursively; the subject
      id is the subfolder name), and NIfTI files at the top level are grouped by the prefix left when the role
      token is removed (``P01_W.nii.gz`` -> ``P01``). Roles come from :func:`scripts.io.roles.recognise_role`.
      Files with a label token are reported under ``label``; NIfTI files without a role, files with a
      ground-truth token (``ff_true``) and hidden files are ignored (logged at info level). A folder with no NIfTI
      file and at least one DICOM file is read as DICOM (docs/guides/dicom.md), ``mapping`` holding series rules.

    Args:
        dataset_dir: folder holding the images (or a datalist JSON file, whose folder is then the dataset folder).
            May be ``None`` when ``datalist`` is a file.
        datalist: MONAI datalist (path or loaded object); ``None`` to scan the folder.
        datalist_key: datalist section to read (``"training"``, ``"validation"``, ``"testing"``, ...); ``None``
            reads all three.
        mapping: glob patterns per role (dict or JSON file) for names the folder scan does not recognise.

    Returns:
        One dict per subject (datalist order; folder and mapping: sorted by id) with keys ``subject``; ``water``,
        ``fat``, ``inphase``, ``opposed``, ``ff`` and ``label`` (absolute path or ``None``); ``image`` (the
        network input: the in-phase path, or ``[water_path, fat_path]`` to be summed); and ``dixon_set``
        (``"water_fat"``, ``"water_fat+inphase"``, ``"inphase_opposed"`` or ``"ff_map+inphase"``).

    Raises:
        ValueError: nothing recognisable in the folder (the message lists what was found and how to give a
            mapping); two files for one image role of a subject (both named); a subject without a usable Dixon
            set; a malformed datalist or mapping; both ``datalist`` and ``mapping`` given.

    Warning:
        Roles a subject lacks are ``None``; drop those keys before a PyTorch ``DataLoader``, whose default collate
        rejects ``None`` (:func:`inference_datalist` does).

    Example:
        >>> entries = discover_subjects("/data/lumbar")  # doctest: +SKIP
        >>> entries[0]["dixon_set"], entries[0]["image"]  # doctest: +SKIP
        ('water_fat+inphase', '/data/lumbar/P01/P01_IP.nii.gz')
    """
    if datalist is not None and mapping is not None:
        raise ValueError("give either a datalist or a mapping, not both")
    root = None if dataset_dir is None else Path(dataset_dir).expanduser()
    if root is not None and root.is_file() and root.name.lower().endswith(".json") and datalist is None:
        datalist, root = root, root.parent
    if datalist is not None:
        return discover_datalist(root, datalist, datalist_key)
    return _discover_in_folder(root, mapping)


def inference_datalist(
    dataset_dir: str | os.PathLike[str] | None,
    datalist: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    datalist_key: str | None = "testing",
    mapping: Mapping[str, Any] | str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """:func:`discover_subjects` with the roles a subject lacks left out, ready for a MONAI ``Dataset``.

    PyTorch's collate cannot batch ``None``, so absent images are dropped from each entry instead.
    """
    return [
        {k: v for k, v in e.items() if v is not None}
        for e in discover_subjects(dataset_dir, datalist, datalist_key, mapping)
    ]
