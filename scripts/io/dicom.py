"""Read a Dixon MRI study from DICOM: find the series, name their Dixon roles, stack them, write NIfTI.

Three steps, each usable on its own:

1. :func:`scan_dicom_folder` reads the headers of every DICOM file under a folder (a study, or a folder of
   studies/subjects) and groups them into :class:`DicomSeries` (one per SeriesInstanceUID, split further when a
   series mixes Dixon image types, as a Philips mDIXON series can).
2. :func:`classify_series` names a series' Dixon role (``water``, ``fat``, ``inphase``, ``opposed``, ``ff``) from
   its ImageType values and SeriesDescription tokens (:data:`IMAGE_TYPE_TOKENS`, :data:`DESCRIPTION_TOKENS`), or
   from user rules (``{role: {DICOM keyword: regex}}``) that take precedence; :func:`select_dixon_series` picks
   one series per role for a study and refuses ambiguity with a message naming the folder and the series.
3. :func:`stack_series` builds the 3D volume and its RAS affine from ImagePositionPatient, ImageOrientationPatient
   and PixelSpacing (slices sorted along the slice normal, RescaleSlope/Intercept applied, non-uniform spacing or
   mixed orientations refused); :func:`convert_dicom_study` writes one NIfTI file per role, so the rest of the
   pipeline (:func:`scripts.io.dixon_inputs.load_dixon`) is unchanged.

Coordinates: DICOM patient coordinates are LPS (+x patient left, +y posterior, +z head); NIfTI and this bundle
use RAS (+x patient right, +y anterior), so ``affine_ras = diag(-1, -1, 1, 1) @ affine_lps``. Array axes of a
stacked volume: ``(I, J, K)`` = (DICOM column index, DICOM row index, slice index), i.e. ``volume[i, j, k] =
pixel_array_k[j, i]``, the same convention as dcm2niix and ITK, so I runs along the ImageOrientationPatient row
direction and J along its column direction.

Vendor conventions (see docs/guides/dicom.md for sources and caveats):

- Siemens (syngo Dixon, e.g. VIBE Dixon): ImageType ``...\\DIXON\\WATER`` (or ``W``), ``FAT`` (``F``),
  ``IN_PHASE``, ``OPP_PHASE``; SeriesDescription ending ``_W``, ``_F``, ``_in``, ``_opp``.
- GE (LAVA-Flex, IDEAL, IDEAL IQ): SeriesDescription prefixes ``WATER:``, ``FAT:``, ``InPhase:``, ``OutPhase:``,
  and ``FatFrac:`` for the IDEAL IQ fat-fraction map; ImageType is not role-specific.
- Philips (mDIXON): ImageType third/fourth values ``W``, ``F``, ``IP``, ``OP``, ``FF``; descriptions such as
  ``mDIXON W``; several image types may share one series (split here by ImageType).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from scripts.io.dixon_inputs import IMAGE_ROLES, DixonInputError

__all__ = [
    "IMAGE_TYPE_TOKENS",
    "DESCRIPTION_TOKENS",
    "LPS_TO_RAS",
    "DicomSeries",
    "is_dicom_file",
    "find_dicom_files",
    "folder_holds_dicom",
    "load_rules",
    "scan_dicom_folder",
    "classify_series",
    "select_dixon_series",
    "stack_series",
    "convert_dicom_study",
    "dicom_dataset_entries",
]

logger = logging.getLogger(__name__)

#: ImageType values (upper case, any position after the first two) that name a Dixon role.
IMAGE_TYPE_TOKENS: dict[str, frozenset[str]] = {
    "water": frozenset({"W", "WATER"}),
    "fat": frozenset({"F", "FAT"}),
    "inphase": frozenset({"IN_PHASE", "IP", "INPHASE", "IN"}),
    "opposed": frozenset({"OPP_PHASE", "OP", "OUT_PHASE", "OPPOSED", "OUTPHASE", "OOP"}),
    "ff": frozenset({"FF", "FAT_FRACTION", "FATFRACTION", "FATFRAC", "PDFF"}),
}
#: SeriesDescription tokens (lower case, after the multi-word phrases below are joined) that name a Dixon role.
DESCRIPTION_TOKENS: dict[str, frozenset[str]] = {
    "water": frozenset({"w", "water", "wat"}),
    "fat": frozenset({"f", "fat"}),
    "inphase": frozenset({"inphase", "in", "ip"}),
    "opposed": frozenset({"opposed", "opp", "op", "outphase", "oop", "out"}),
    "ff": frozenset({"ff", "fatfrac", "pdff"}),
}
# a description with one of these tokens is another contrast that merely mentions fat or water ("T2 FAT SAT",
# "STIR", "water excitation"): it gets no role from its description
_EXCLUDE_TOKENS: frozenset[str] = frozenset(
    {
        "sat",
        "fs",
        "fatsat",
        "suppressed",
        "suppression",
        "stir",
        "spair",
        "spir",
        "we",
        "excitation",
        "localizer",
        "localiser",
        "scout",
        "survey",
    }
)
# multi-word phrases joined into one token first, so that "fat fraction" is an FF map and not fat, and "in phase"
# is one token ("FatFrac: ...", "InPhase: ...", "Out of phase", "opp-phase", "fat_fraction" all normalise)
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"fat[\s_\-]*frac(?:tion)?|fat[\s_\-]*percent(?:age)?", re.IGNORECASE), " fatfrac "),
    (re.compile(r"in[\s_\-]*phase", re.IGNORECASE), " inphase "),
    (re.compile(r"(?:out[\s_\-]*(?:of[\s_\-]*)?|opp(?:osed)?[\s_\-]*)phase", re.IGNORECASE), " outphase "),
)
# the first two ImageType values are ORIGINAL/DERIVED and PRIMARY/SECONDARY: never a role
_IMAGE_TYPE_SKIP = 2
_BACKSLASH = "\\"  # the DICOM value separator (f-string expressions cannot hold a backslash before 3.12)

#: DICOM LPS patient coordinates -> RAS world coordinates (and back: it is its own inverse).
LPS_TO_RAS: np.ndarray = np.diag([-1.0, -1.0, 1.0, 1.0])

_ORIENTATION_TOL = 1e-4  # direction cosines that differ by less are the same orientation
_SPACING_RTOL = 0.01  # slice gaps may differ by 1 % (rounding of positions written as decimal strings)
_SPACING_ATOL_MM = 1e-3
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


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """Whether a file is DICOM Part 10: the ``DICM`` magic after the 128-byte preamble.

    Files without the preamble (raw data sets from old exporters) are not detected; convert them with a DICOM
    tool first (e.g. ``dcmconv``) or name them in a datalist of NIfTI files.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def find_dicom_files(folder: str | os.PathLike[str]) -> list[Path]:
    """All DICOM Part 10 files under ``folder`` (recursive; hidden files and folders skipped), sorted."""
    root = Path(folder)
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if is_dicom_file(p):
            out.append(p)
    return out


def folder_holds_dicom(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is DICOM input: no NIfTI file in it and at least one DICOM Part 10 file.

    A folder with NIfTI files is left to the NIfTI discovery, so a DICOM file lying beside NIfTI inputs (a
    secondary capture, an exported report) never changes how a NIfTI dataset is read.
    """
    root = Path(folder)
    if not root.is_dir():
        return False
    found_dicom = False
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        low = p.name.lower()
        if low.endswith((".nii", ".nii.gz")):
            return False
        if not found_dicom and is_dicom_file(p):
            found_dicom = True
    return found_dicom


# ----------------------------------------------------------------------------------------------------------------
# Series and their roles
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class DicomSeries:
    """The files of one Dixon image series (one role) and the header values that identify it.

    Attributes:
        key: unique id: the SeriesInstanceUID, plus ``#<ImageType>`` when a series mixes image types.
        files: the DICOM files of the series (unsorted; :func:`stack_series` sorts them in space).
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
        image_type = _BACKSLASH.join(self.image_type) or "-"
        return f"series {number} {self.description!r} (ImageType {image_type}, {len(self.files)} file(s))"


def _header_value(ds: Any, keyword: str) -> Any:
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


def _role_from_image_type(image_type: Sequence[str]) -> tuple[str | None, str]:
    """The one role named by ImageType values after the first two, or None (none or several)."""
    values = [v.upper() for v in image_type[_IMAGE_TYPE_SKIP:]]
    roles = sorted({role for role, tokens in IMAGE_TYPE_TOKENS.items() if any(v in tokens for v in values)})
    text = _BACKSLASH.join(image_type)
    if len(roles) == 1:
        return roles[0], f"ImageType {text}"
    if len(roles) > 1:
        return None, f"ImageType {text} names several roles ({', '.join(roles)})"
    return None, ""


def description_tokens(description: str) -> list[str]:
    """Lower-case tokens of a SeriesDescription, with multi-word role phrases joined (``"in phase"`` -> ``inphase``).

    Args:
        description: the SeriesDescription text, e.g. ``"t1_vibe_dixon_tra_opp"`` or ``"WATER: Ax LAVA-Flex"``.

    Returns:
        Tokens split at anything that is not a letter or digit, e.g. ``["water", "ax", "lava", "flex"]``.
    """
    text = description
    for rx, repl in _PHRASES:
        text = rx.sub(repl, text)
    # camel case ("InPhase", "FatFrac") was handled by the phrases; split the rest at non-alphanumerics
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def _role_from_description(description: str) -> tuple[str | None, str]:
    tokens = description_tokens(description)
    if _EXCLUDE_TOKENS.intersection(tokens):
        return None, f"SeriesDescription {description!r} names another contrast"
    roles = sorted({role for role, toks in DESCRIPTION_TOKENS.items() if any(t in toks for t in tokens)})
    if len(roles) == 1:
        return roles[0], f"SeriesDescription {description!r}"
    if len(roles) > 1:
        return None, f"SeriesDescription {description!r} names several roles ({', '.join(roles)})"
    return None, ""


def load_rules(rules: Mapping[str, Any] | str | os.PathLike[str] | None) -> dict[str, dict[str, re.Pattern[str]]]:
    """Parse user series-selection rules.

    Args:
        rules: ``{role: {DICOM keyword: regex, ...}, ...}`` (a dict, a JSON file path or a JSON string). Roles are
            ``water``, ``fat``, ``inphase``, ``opposed``, ``ff``; keywords are DICOM attribute keywords of the
            series' first file (``SeriesDescription``, ``SeriesNumber``, ``ImageType``, ``ProtocolName``, ...).
            Each regex is searched case-insensitively in the value as text (multi-valued attributes joined by
            ``\\``); a series matches a role when all of its conditions match. Example:
            ``{"water": {"SeriesDescription": "_W$"}, "fat": {"SeriesDescription": "_F$", "SeriesNumber": "^5$"}}``.

    Returns:
        role -> keyword -> compiled regex.

    Raises:
        ValueError: an unreadable file, an unknown role, a condition that is not ``{keyword: regex}`` or a regex
            that does not compile (the message names it).
    """
    if rules is None:
        return {}
    source = "rules"
    if isinstance(rules, (str, os.PathLike)):
        text = str(rules)
        if not text.lstrip().startswith("{"):
            path = Path(text).expanduser()
            source = str(path)
            try:
                text = path.read_text()
            except OSError as err:
                raise ValueError(f"cannot read the series rules file {path}: {err}") from err
        try:
            rules = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"series rules {source} are not valid JSON: {err}") from err
    if not isinstance(rules, Mapping):
        raise ValueError(f"series rules {source} must be a JSON object {{role: {{keyword: regex}}}}")
    out: dict[str, dict[str, re.Pattern[str]]] = {}
    for role, conditions in rules.items():
        if role not in IMAGE_ROLES:
            raise ValueError(f"series rules {source}: unknown role {role!r}; expected one of {IMAGE_ROLES}")
        if not isinstance(conditions, Mapping) or not conditions:
            raise ValueError(f"series rules {source}: {role!r} must map DICOM keywords to regexes, got {conditions!r}")
        out[role] = {}
        for keyword, pattern in conditions.items():
            try:
                out[role][str(keyword)] = re.compile(str(pattern), re.IGNORECASE)
            except re.error as err:
                raise ValueError(
                    f"series rules {source}: {role}.{keyword} regex {pattern!r} is invalid: {err}"
                ) from err
    return out


def _rule_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\\".join(str(v) for v in value)
    return str(value)


def _matches(series: DicomSeries, conditions: Mapping[str, re.Pattern[str]]) -> bool:
    for keyword, rx in conditions.items():
        value = series.header.get(keyword)
        if value is None and series.headers:
            value = _header_value(series.headers[0], keyword)
        if value is None or rx.search(_rule_text(value)) is None:
            return False
    return True


def classify_series(
    series: DicomSeries, rules: Mapping[str, Mapping[str, re.Pattern[str]]] | None = None
) -> tuple[str | None, str]:
    """Name the Dixon role of one series.

    Order: user rules (all conditions of a role must match; a series matching two roles' rules is not
    classified); then, for roles without a user rule, the ImageType values (:data:`IMAGE_TYPE_TOKENS`), then the
    SeriesDescription tokens (:data:`DESCRIPTION_TOKENS`). ImageType wins over a disagreeing description because
    it is written by the reconstruction, not typed by an operator.

    Args:
        series: the series.
        rules: parsed user rules (:func:`load_rules`); a role with a user rule is decided by that rule alone.

    Returns:
        ``(role or None, reason)``; the reason says which attribute decided (or why nothing did).
    """
    rules = rules or {}
    hits = [role for role, cond in rules.items() if _matches(series, cond)]
    if len(hits) == 1:
        return hits[0], f"user rule for {hits[0]}"
    if len(hits) > 1:
        return None, f"matches the user rules of several roles ({', '.join(hits)})"
    role, reason = _role_from_image_type(series.image_type)
    if role is None and not reason:
        role, reason = _role_from_description(series.description)
    if role is not None and role in rules:
        # the user decides this role: a built-in match for it does not count
        return None, f"{reason} names {role}, but the user rule for {role} does not match"
    return role, reason or "no Dixon role in ImageType or SeriesDescription"


# ----------------------------------------------------------------------------------------------------------------
# Scanning
# ----------------------------------------------------------------------------------------------------------------


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
    import pydicom

    root = Path(folder)
    files = find_dicom_files(root)
    if not files:
        raise DixonInputError(f"no DICOM Part 10 file (with the 'DICM' preamble) found under {root}", root)
    groups: dict[str, DicomSeries] = {}
    skipped: dict[str, int] = {}
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is reported and skipped
            logger.warning("%s: unreadable DICOM file skipped (%s)", path, err)
            skipped["unreadable"] = skipped.get("unreadable", 0) + 1
            continue
        modality = str(ds.get("Modality", "") or "")
        if modality != "MR" or "Rows" not in ds:
            skipped[modality or "no modality"] = skipped.get(modality or "no modality", 0) + 1
            continue
        header = {k: v for k in _HEADER_TAGS if (v := _header_value(ds, k)) is not None}
        series_uid = str(ds.get("SeriesInstanceUID", "") or f"no-uid:{path.parent}")
        study_uid = str(ds.get("StudyInstanceUID", "") or "no-study-uid")
        role, _ = _role_from_image_type(header.get("ImageType", ()))
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


def select_dixon_series(
    series: Sequence[DicomSeries],
    rules: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    where: str | os.PathLike[str] | None = None,
) -> dict[str, DicomSeries]:
    """Pick one series per Dixon role among the series of one study.

    Args:
        series: the series of one study (:func:`scan_dicom_folder`).
        rules: user rules (see :func:`load_rules`), raw or parsed.
        where: the folder named in messages (default: the series' scan folder).

    Returns:
        role -> series, for the roles found; they form a usable Dixon set (water + fat, in-phase +
        opposed-phase, or an FF map with in-phase).

    Raises:
        DixonInputError: two series for one role (both named, with how to write a rule), or no usable Dixon set
            (the message lists every series found with its ImageType, description and why it got no role).
    """
    from scripts.io.dixon_inputs import dixon_set_of

    parsed = rules if _is_parsed(rules) else load_rules(rules)  # type: ignore[arg-type]
    folder = str(where if where is not None else (series[0].folder if series else "?"))
    by_role: dict[str, list[DicomSeries]] = {}
    reasons: list[str] = []
    for s in series:
        role, reason = classify_series(s, parsed)
        reasons.append(f"  - {s.summary()}: {role or 'no role'} ({reason})")
        if role is not None:
            by_role.setdefault(role, []).append(s)
    listing = "\n".join(reasons)
    for role, candidates in by_role.items():
        if len(candidates) > 1:
            names = "; ".join(c.summary() for c in candidates)
            example = json.dumps({role: {"SeriesNumber": f"^{candidates[0].header.get('SeriesNumber', 1)}$"}})
            raise DixonInputError(
                f"{folder}: {len(candidates)} series qualify as the {role} image: {names}. Give a rules file that "
                f"tells them apart, e.g. {example}. Series found:\n{listing}",
                folder,
            )
    selected = {role: c[0] for role, c in by_role.items()}
    if dixon_set_of(selected) is None:
        have = ", ".join(sorted(selected)) or "none"
        raise DixonInputError(
            f"{folder}: no usable Dixon set among the DICOM series (roles found: {have}); need water + fat, "
            f"in-phase + opposed-phase, or an FF map with an in-phase image. Series found:\n{listing}\n"
            'Name the series with a rules file, e.g. {"water": {"SeriesDescription": "_W$"}, '
            '"fat": {"SeriesDescription": "_F$"}}',
            folder,
        )
    return selected


def _is_parsed(rules: Any) -> bool:
    return isinstance(rules, Mapping) and all(
        isinstance(c, Mapping) and all(isinstance(r, re.Pattern) for r in c.values()) for c in rules.values()
    )


# ----------------------------------------------------------------------------------------------------------------
# Stacking
# ----------------------------------------------------------------------------------------------------------------


def _floats(ds: Any, keyword: str, n: int, path: Path) -> np.ndarray:
    value = ds.get(keyword, None)
    if value is None or len(value) != n:
        raise DixonInputError(
            f"{path}: {keyword} is missing or does not hold {n} numbers (got {value!r}); "
            "cannot place the slice in space",
            path,
        )
    return np.asarray([float(v) for v in value], dtype=np.float64)


def stack_series(series: DicomSeries | Sequence[str | os.PathLike[str]]) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Stack the single-frame slices of one series into a 3D volume with its RAS affine.

    Slices are sorted by their position along the slice normal ``n = row x column`` (ImageOrientationPatient),
    so the slice axis K points along ``+n``; RescaleSlope/RescaleIntercept are applied per slice.

    Args:
        series: a :class:`DicomSeries` or a list of DICOM file paths of one series.

    Returns:
        ``(volume, affine, datasets)``: ``volume`` has shape ``(I, J, K)`` = (Columns, Rows, number of slices),
        ``volume[i, j, k] = pixel_array_k[j, i] * slope + intercept`` (float32; int16/uint16 kept when every
        slice has slope 1 and intercept 0); ``affine`` is the 4x4 voxel-index -> RAS world (mm) matrix; the
        datasets are the slices in K order (with pixel data; e.g. the source images of a DICOM SEG).

    Raises:
        DixonInputError: the message names the series or file and the problem: multi-frame files, mixed
            orientations, sizes or pixel spacings, two slices at one position (several echoes or time points in
            one series), slices off the normal through the first (sheared stacks), non-uniform slice spacing,
            fewer than 2 slices.
    """
    import pydicom

    files = list(series.files) if isinstance(series, DicomSeries) else [Path(p) for p in series]
    name = series.summary() if isinstance(series, DicomSeries) else f"series of {len(files)} file(s)"
    where = f"{name} in {files[0].parent}" if files else name
    if len(files) < 2:
        raise DixonInputError(
            f"{where}: {len(files)} slice(s); a 3D Dixon volume needs at least 2", files[0] if files else None
        )
    datasets = [pydicom.dcmread(p) for p in files]
    first = datasets[0]
    if int(first.get("NumberOfFrames", 1) or 1) > 1:
        raise DixonInputError(
            f"{files[0]}: multi-frame (enhanced) DICOM is not read; export the series as "
            "single-frame images (classic DICOM) or convert it with dcm2niix",
            files[0],
        )
    iop = _floats(first, "ImageOrientationPatient", 6, files[0])
    spacing = _floats(first, "PixelSpacing", 2, files[0])
    shape2d = (int(first.Rows), int(first.Columns))
    for ds, p in zip(datasets, files):
        other = _floats(ds, "ImageOrientationPatient", 6, p)
        if np.max(np.abs(other - iop)) > _ORIENTATION_TOL:
            raise DixonInputError(
                f"{where}: mixed slice orientations: {p.name} has ImageOrientationPatient "
                f"{other.round(5).tolist()}, {files[0].name} has {iop.round(5).tolist()}",
                p,
            )
        if (int(ds.Rows), int(ds.Columns)) != shape2d:
            raise DixonInputError(
                f"{where}: mixed image sizes: {p.name} is {ds.Rows}x{ds.Columns}, "
                f"{files[0].name} is {shape2d[0]}x{shape2d[1]}",
                p,
            )
        if np.max(np.abs(_floats(ds, "PixelSpacing", 2, p) - spacing)) > _SPACING_ATOL_MM:
            raise DixonInputError(f"{where}: mixed pixel spacings in {p.name} and {files[0].name}", p)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    positions = np.stack([_floats(ds, "ImagePositionPatient", 3, p) for ds, p in zip(datasets, files)])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    datasets = [datasets[i] for i in order]
    files = [files[i] for i in order]
    gaps = np.diff(along)
    if np.any(gaps < _SPACING_ATOL_MM):
        k = int(np.argmin(gaps))
        raise DixonInputError(
            f"{where}: two slices at one position ({files[k].name} and {files[k + 1].name}, {along[k]:.3f} mm along "
            "the slice normal): the series holds several images per location (echoes, phases or time points); "
            "split it, or select one image type with a rules file",
            files[k],
        )
    step = float(np.median(gaps))
    if np.max(np.abs(gaps - step)) > max(_SPACING_ATOL_MM, _SPACING_RTOL * step):
        k = int(np.argmax(np.abs(gaps - step)))
        raise DixonInputError(
            f"{where}: non-uniform slice spacing: gaps from {gaps.min():.3f} to {gaps.max():.3f} mm (median "
            f"{step:.3f} mm; e.g. {gaps[k]:.3f} mm between {files[k].name} and {files[k + 1].name}); missing "
            "slices or a series made of several stacks cannot form one volume",
            files[k],
        )
    # every slice must lie on the line through the first slice along the normal (no shear, no in-plane shifts)
    offsets = positions - positions[0] - np.outer(along - along[0], normal)
    if np.max(np.abs(offsets)) > max(0.01 * float(min(spacing)), _SPACING_ATOL_MM):
        raise DixonInputError(
            f"{where}: slice positions drift in-plane (up to {np.max(np.abs(offsets)):.3f} mm): "
            "a sheared or tilted stack (gantry tilt) is not supported",
            files[0],
        )
    affine_lps = np.eye(4)
    # column index i moves along the row direction by the column spacing (PixelSpacing[1]); row index j along the
    # column direction by the row spacing (PixelSpacing[0])
    affine_lps[:3, 0] = row * spacing[1]
    affine_lps[:3, 1] = col * spacing[0]
    affine_lps[:3, 2] = normal * step
    affine_lps[:3, 3] = positions[0]
    slices = []
    plain = True
    for ds in datasets:
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        px = ds.pixel_array
        if slope != 1.0 or intercept != 0.0 or px.dtype.kind == "f":
            plain = False
        slices.append((px, slope, intercept))
    if plain:
        volume = np.stack([px.T for px, _, _ in slices], axis=-1)
    else:
        volume = np.stack([(px.astype(np.float64) * s + b).astype(np.float32).T for px, s, b in slices], axis=-1)
    return np.ascontiguousarray(volume), LPS_TO_RAS @ affine_lps, datasets


# ----------------------------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------------------------

_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def _subject_id(series: Sequence[DicomSeries], study_uid: str) -> str:
    header = series[0].header
    raw = str(header.get("PatientID") or header.get("PatientName") or "")
    sid = _SAFE.sub("_", raw).strip("._-")
    return sid or f"study_{study_uid[-8:]}"


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
        rules: user series rules (see :func:`load_rules`).

    Returns:
        A :func:`scripts.io.dixon_inputs.discover_subjects` entry (role -> NIfTI path, ``image``, ``dixon_set``) with
        ``dicom_series``: role -> SeriesInstanceUID key and description, for provenance.

    Raises:
        DixonInputError: selection or stacking failed (see :func:`select_dixon_series`, :func:`stack_series`);
            the selected series do not share one grid.
    """
    from scripts.io.dixon_inputs import _make_entry

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
        img = nib.Nifti1Image(volume, affine)
        img.header.set_xyzt_units("mm", "sec")
        img.header.set_qform(affine, code=1)
        img.header.set_sform(affine, code=1)
        number = selected[role].header.get("SeriesNumber", "?")
        img.header["descrip"] = f"{role} from DICOM series {number}".encode()[:79]
        path = sdir / f"{subject}_{role}.nii"
        tmp = path.with_name(f".{path.name}.tmp.nii")
        nib.save(img, str(tmp))
        os.replace(tmp, path)
        paths[role] = str(path)
    entry = _make_entry(subject, paths, f"DICOM study {selected[next(iter(selected))].study_uid}")
    entry["dicom_series"] = {
        role: {"key": s.key, "series_number": s.header.get("SeriesNumber"), "description": s.description}
        for role, s in selected.items()
    }
    return entry


_CACHE_DIRS: list[Path] = []


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
        rules: user series rules (:func:`load_rules`).
        cache_dir: where the NIfTI files go.

    Returns:
        Entries as :func:`scripts.io.dixon_inputs.discover_subjects` returns them, sorted by subject. The subject id
        is the PatientID (made file-name safe); a patient with several studies gets ``_<StudyDate>`` and, if
        still not unique, a counter.

    Raises:
        DixonInputError: see :func:`scan_dicom_folder`, :func:`convert_dicom_study`.
    """
    root = Path(dataset_dir).expanduser()
    parsed = load_rules(rules)
    all_series = scan_dicom_folder(root)
    studies: dict[str, list[DicomSeries]] = {}
    for s in all_series:
        studies.setdefault(s.study_uid, []).append(s)
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


def _common_folder(files: Iterable[Path]) -> Path:
    return Path(os.path.commonpath([str(f.parent) for f in files]))
