"""Reading and writing a normative reference file (JSON, schema of :mod:`scripts.normative.schema`).

The shipped default, ``resources/normative/bmc2026_lumbar_ff.json``, holds the median and quartiles of the 173
healthy adults (20-70 years) of the BMC Medical Imaging 2026 paper (doi 10.1186/s12880-026-02329-9), pooled over
sex, age and activity, because the abstract publishes nothing finer. Users can build their own reference from a
cohort table (:func:`scripts.normative.building.build_reference`) and point inference at it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts.io.atomic import atomic_write_text
from scripts.normative.schema import ReferenceFormatError, validate_reference
from scripts.normative.strata import Reference

__all__ = ["DEFAULT_REFERENCE_PATH", "load_reference", "save_reference"]

#: The reference shipped with the bundle: the paper's medians and quartiles.
DEFAULT_REFERENCE_PATH: Path = (
    Path(__file__).resolve().parents[2] / "resources" / "normative" / "bmc2026_lumbar_ff.json"
)


def load_reference(path: str | os.PathLike[str] | None = None) -> Reference:
    """Read and validate a reference file.

    Args:
        path: the JSON file; ``None`` = the paper's reference shipped with the bundle (``DEFAULT_REFERENCE_PATH``).

    Raises:
        FileNotFoundError: no such file.
        ReferenceFormatError: not JSON, or not the schema; the message names the file and the problem.
    """
    file = Path(path) if path is not None else DEFAULT_REFERENCE_PATH
    if not file.is_file():
        raise FileNotFoundError(f"normative reference file not found: {file}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReferenceFormatError(f"{file}: not valid JSON ({err})") from err
    return Reference.from_dict(data, file)


def save_reference(ref: Mapping[str, Any], path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Validate ``ref`` and write it as indented JSON, atomically (temporary file in the same folder + os.replace).

    Args:
        ref: a reference dict (e.g. from :func:`scripts.normative.building.build_reference`).
        path: the target file; its folder is created.
        overwrite: replace an existing file whose content differs. An identical file is left as it is.

    Raises:
        ReferenceFormatError: ``ref`` does not follow the schema (NaN values included: JSON has no NaN).
        FileExistsError: ``path`` exists with different content and ``overwrite`` is False.
    """
    target = Path(path)
    validate_reference(ref, target)
    try:
        text = json.dumps(ref, indent=2, allow_nan=False) + "\n"
    except ValueError as err:
        raise ReferenceFormatError(f"{target}: cannot be written as JSON ({err}); NaN and inf are not allowed") from err
    atomic_write_text(target, text, overwrite=overwrite)
    return target
