"""Dictionary transforms that connect inference.json to the Dixon reader, the quantification and the report.

``LoadDixond`` opens a subject (every Dixon image it has, validated) and puts the network input under ``image``;
``QuantifyDixond`` takes the final label map (input grid) and writes the subject's FF map, tables, normative
comparison, pictures and HTML report, and adds its rows to the run's cohort table. Both are plain MONAI
``MapTransform`` s, so the label map exists in the data dictionary before any saver runs (MONAI Label drops savers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scripts.configuration.values import as_bool
from scripts.io.atomic import publish_folder
from scripts.io.dixon_inputs import (
    DixonInputError,
    DixonScan,
    FFResult,
    compute_ff,
    load_dixon,
    num_network_channels,
)
from scripts.normative.reference import compare_to_reference, load_reference
from scripts.quality.verdict import add_qc_columns, assess_segmentation, subject_verdict
from scripts.quantification.fat_fraction import detect_fat_water_swap, map_labels_to_grid
from scripts.quantification.statistics import (
    CohortTable,
    QuantResult,
    atomic_write_text,
    quantify_muscles,
    write_tables,
)

__all__ = [
    "LoadDixond",
    "QuantifyDixond",
    "MarkDoned",
    "measure_subject",
    "RunConflictError",
    "file_fingerprint",
    "DONE_SUFFIX",
    "STAGING_DIR",
]

logger = logging.getLogger(__name__)

#: file marking a subject's results as complete (see MarkDoned)
DONE_SUFFIX = "_done.json"
#: data-dictionary key carrying the run manifest from QuantifyDixond to MarkDoned
MANIFEST_KEY = "run_manifest"
#: data-dictionary key carrying the subject's cohort-table rows from QuantifyDixond to MarkDoned (staged runs)
ROWS_KEY = "cohort_rows"
#: hidden folder of ``output_dir`` where a subject's new results are written until all are complete; MarkDoned then
#: swaps the whole folder in, so a run that fails or is killed part-way leaves the earlier results untouched
STAGING_DIR = ".staging"

# Scans read by LoadDixond, kept for QuantifyDixond in the same process so the images are read once.
_SCANS: dict[str, DixonScan] = {}
_ROLES = ("water", "fat", "inphase", "opposed", "ff")


_CONFLICT_HINT = "Choose another output_dir, or pass --overwrite true to replace them."


class RunConflictError(FileExistsError):
    """An output folder holds results of a different run (other inputs, model or settings)."""


#: files hashed by this process: (resolved path, size, mtime_ns, inode) -> SHA-256, so that a cohort run hashes each
#: input once although the resume check and the quantification both ask for it
_HASHES: dict[tuple[str, int, int, int], str] = {}
_HASH_CHUNK = 1 << 22


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """Name, size and SHA-256 of the whole content of a file (streamed in 4 MiB chunks).

    Why the whole content: an input edited after its first MiB (a re-export, a corrected slice) is a different
    input, and a resumed run must redo its subject. Cost measured in docs/studies/reliability.md (a 400 x 320 x 145
    float32 volume). Hashes are kept for the process, keyed by path, size, modification time and inode.
    """
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    digest = _HASHES.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
                h.update(chunk)
        digest = _HASHES[key] = h.hexdigest()
    return {"name": p.name, "size": st.st_size, "sha256": digest}


class LoadDixond(MapTransform):
    """Load and validate one subject's Dixon images; write the network input as a (1, X, Y, Z) MetaTensor.

    Three kinds of entry are accepted:

    - an item of :func:`scripts.io.dixon_inputs.discover_subjects` (roles ``water``, ``fat``, ``inphase``,
      ``opposed``, ``ff`` -> paths, and ``subject``): the bundle's own runs. The network reads the in-phase image,
      or water + fat when there is no in-phase image (docs/design.md);
    - ``{key: "<path to a NIfTI>"}`` with no Dixon roles: the file is the in-phase image (MONAI Label sends its
      datastore image this way); validated like any in-phase image, subject = the file name without extension;
    - ``{key: array}`` (MetaTensor, tensor or ndarray; ``(X, Y, Z)`` or ``(1, X, Y, Z)``): an image already in
      memory (MONAI Deploy's bundle operator drops loaders and passes the series this way); used as the in-phase
      image with the MetaTensor's affine.

    In the last two cases there is no FF source, so :class:`QuantifyDixond` passes the entry through untouched.
    Bad input raises :class:`scripts.io.dixon_inputs.DixonInputError` naming the file and the problem, before
    anything is written.

    Args:
        keys: the key receiving the network input (default ``"image"``).
        min_fov_mm: smallest field of view accepted per axis (mm), e.g. the network patch in mm.
        channels: the network's input, ``"inphase"`` (one channel, ``(1, X, Y, Z)``) or ``"water_fat"`` (two,
            ``(2, X, Y, Z)``; see :meth:`scripts.io.dixon_inputs.DixonScan.network_input`). A two-channel model cannot
            read a bare image (MONAI Label, MONAI Deploy): that raises a clear error.
        trust_voxel_grid: a Dixon role whose header the other images of a subject adopt when they have the same
            shape and spacing but another origin or direction (see :func:`scripts.io.dixon_inputs.load_dixon`).
        allow_missing_keys: MONAI's flag (unused: the key is always written).
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        min_fov_mm: Any = None,
        channels: str = "inphase",
        trust_voxel_grid: str | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        num_network_channels(channels)
        self.min_fov_mm = min_fov_mm
        self.channels = channels
        self.trust_voxel_grid = trust_voxel_grid

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        entry = {k: v for k, v in d.items() if k in _ROLES or k in ("subject", "label")}
        if not any(k in _ROLES for k in entry):
            given = d.get(self.keys[0])
            if given is None:
                raise DixonInputError(
                    f"the data entry has no Dixon image (keys: {sorted(map(str, d))}); expected "
                    f"roles {', '.join(_ROLES)} or an image under {self.keys[0]!r}"
                )
            if self.channels != "inphase":
                raise DixonInputError(
                    f"a two-channel (water, fat) model needs a Dixon entry with water and fat; got "
                    f"a single image under {self.keys[0]!r} ({_describe(given)})"
                )
            if not isinstance(given, (str, Path)):
                return self._from_memory(d, given)
            entry = {"inphase": str(given), "subject": d.get("subject") or _stem(given)}
        try:
            scan = load_dixon(
                entry, min_shape_mm=self.min_fov_mm, segmentation_only=True, trust_voxel_grid=self.trust_voxel_grid
            )
        except DixonInputError as err:
            # named for the cohort's failures table and log, also when the error comes back from a loader worker
            # as text
            err.subject = str(entry.get("subject") or "")
            if err.subject and err.args and not str(err.args[0]).startswith("subject "):
                err.args = (f"subject {err.subject!r}: {err.args[0]}", *err.args[1:])
            raise
        d["subject"] = scan.subject
        if scan.dixon_set != "inphase_only":
            _SCANS[scan.subject] = scan
        return self._write(d, scan.network_input(self.channels), scan.affine, scan.subject)

    def _from_memory(self, d: dict[Hashable, Any], image: Any) -> dict[Hashable, Any]:
        arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        elif arr.ndim == 4 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim != 3:
            raise DixonInputError(
                f"in-memory image under {self.keys[0]!r} has shape {arr.shape}; expected one 3D "
                "volume (X, Y, Z), optionally with a leading or trailing channel of 1"
            )
        if not np.isfinite(arr).all():
            raise DixonInputError(f"in-memory image under {self.keys[0]!r} contains NaN or Inf")
        if isinstance(image, MetaTensor):
            affine = np.asarray(image.affine.detach().cpu().numpy(), dtype=np.float64)
            name = image.meta.get("subject") or _stem(str(image.meta.get("filename_or_obj") or "image"))
        else:
            raise DixonInputError(
                f"in-memory image under {self.keys[0]!r} is a {type(image).__name__} without an "
                "affine; pass a MetaTensor so that orientation and voxel size are known"
            )
        subject = str(d.get("subject") or name)
        d["subject"] = subject
        return self._write(d, arr.astype(np.float32), affine, subject)

    def _write(
        self, d: dict[Hashable, Any], image: np.ndarray, affine: np.ndarray, subject: str
    ) -> dict[Hashable, Any]:
        meta = {
            # a virtual file name so that SaveImaged writes <output_dir>/<subject>/<subject>_seg.nii.gz; without a
            # NIfTI extension because Spacingd (monai 1.6) then treats every "image_*" key as a meta dict, and MONAI
            # Label puts a string "image_path" beside "image"
            "filename_or_obj": subject,
            "original_affine": torch.as_tensor(affine, dtype=torch.float64),
            "spatial_shape": np.asarray(image.shape[-3:]),
            "original_channel_dim": float("nan"),
            "space": "RAS",
        }
        img = MetaTensor(
            torch.as_tensor(image[None] if image.ndim == 3 else image, dtype=torch.float32),
            affine=torch.as_tensor(affine, dtype=torch.float64),
            meta=meta,
        )
        for key in self.keys:
            d[key] = img
        return d


def _describe(given: Any) -> str:
    return f"file {given}" if isinstance(given, (str, Path)) else f"an in-memory {type(given).__name__}"


def _stem(path: str | Path) -> str:
    name = Path(str(path)).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def measure_subject(
    scan: DixonScan,
    label: np.ndarray,
    label_affine: np.ndarray,
    ff_method: str = "auto",
    ff_scale: str | None = None,
    erosion_mm: float | None = None,
    min_volume_ml: float = 1.0,
    border_trim_ff: float | None = 0.7,
) -> tuple[QuantResult, FFResult]:
    """FF map, fat-water swap check and per-muscle statistics of one subject: what every front end reports.

    Args:
        scan: the subject's validated Dixon images (:func:`scripts.io.dixon_inputs.load_dixon`).
        label: label map (values 0-8), any grid; mapped to the FF grid through the affines.
        label_affine: 4x4 voxel-to-world (RAS, mm) affine of ``label``.
        ff_method: see :func:`scripts.io.dixon_inputs.compute_ff`.
        ff_scale: vendor FF map scale override (None = detect).
        erosion_mm: in-plane erosion for the core mean (None = 1 voxel in-plane).
        min_volume_ml: label sides below this volume get status ``too_small`` and no FF
            (see :func:`scripts.quantification.statistics.quantify_muscles`).
        border_trim_ff: border voxels above this FF touching unlabelled fat are left out
            (:func:`scripts.quantification.statistics.trim_fat_border`); ``None`` counts every label voxel.

    Returns:
        ``(result, ffr)``: the :class:`scripts.quantification.statistics.QuantResult` (tables) and the FF map with its
        provenance.
    """
    ffr = compute_ff(scan, method=ff_method, ff_scale=ff_scale)
    swap = None
    if scan.has("water", "fat"):
        lab_ff = map_labels_to_grid(label, label_affine, ffr.ff.shape, ffr.affine)
        # depths of the skin/shell rule are in mm: the voxel size must be given, or anisotropic and coarse scans
        # put the "subcutaneous" shell inside the muscles of lean subjects (a false global swap)
        swap = detect_fat_water_swap(
            scan.images["water"],
            scan.images["fat"],
            labels=lab_ff,
            slice_axis=scan.slice_axis,
            voxel_size_mm=scan.spacing_mm,
        )
    prov = dict(ffr.provenance)
    codes = list(getattr(scan, "corrections", []))
    if codes:
        # silent corrections made visible: the provenance (a table column, the JSON meta, the report) and every
        # row's flags name them
        prov["input_corrections"] = ";".join(codes)
        ffr.provenance.update(input_corrections=prov["input_corrections"])
    result = quantify_muscles(
        label,
        label_affine,
        ffr.ff,
        ffr.affine,
        prov,
        erosion_mm=erosion_mm,
        subject=scan.subject,
        swap_report=swap,
        min_volume_ml=min_volume_ml,
        border_trim_ff=border_trim_ff,
    )
    if codes:
        result.table["flags"] = [
            ";".join([f for f in str(flags or "").split(";") if f] + codes)
            for flags in result.table["flags"].fillna("")
        ]
    # quality verdict of every side from what the scan shows (position, shape, FF signal): the tables carry it
    lab_ff = map_labels_to_grid(label, label_affine, ffr.ff.shape, ffr.affine)
    verdicts = assess_segmentation(lab_ff, ffr.affine, ff=ffr.ff * 100.0)
    result.table = add_qc_columns(result.table, verdicts)
    status, score, reasons = subject_verdict(verdicts)
    if status != "pass":
        logger.warning("%s: quality %s (score %.2f): %s", scan.subject, status, score, "; ".join(reasons))
    return result, ffr


def _plain(value: Any) -> Any:
    """JSON form of config values that are not JSON types (torch dtypes/devices, tuples of numpy numbers)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _settings_record(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """``settings`` as the manifest stores them: JSON types, and "true"/"false" strings (how a command-line
    override arrives) as booleans, so ``--flip_ensemble true`` is the same run as the config's ``true``."""

    def norm(v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            return v.strip().lower() == "true"
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    return norm(json.loads(json.dumps(dict(settings or {}), default=_plain)))


class QuantifyDixond(MapTransform):
    """From the final label map to the subject's fat-fraction results, written under ``output_dir/<subject>/``.

    Writes ``<subject>_ff.nii.gz`` (FF in percent, float32, native Dixon grid; NaN = excluded voxel),
    ``<subject>_ff_table.csv/.json`` (one row per muscle and side plus L/R means), ``<subject>_ff_slices.csv``,
    ``<subject>_normative.csv``, ``<subject>_qc_axial.png``, ``<subject>_ff_chart.png`` and ``<subject>_report.html``,
    and adds the subject's rows to ``output_dir/<cohort_table>``. A ``<subject>_run.json`` manifest records the
    inputs, model and settings; an output folder made by a different run is never overwritten unless ``overwrite``.

    Args:
        keys: the label-map key (``(1, X, Y, Z)`` MetaTensor on the input grid, values 0-8).
        output_dir: the run's output folder (``eval/`` by default in inference.json).
        ff_method: "auto", "water_fat", "inphase_opposed", "vendor_map" or "magnitude_discrimination".
        ff_scale: override of a vendor map's scale ("fraction", "percent", "permille"); None = detect.
        erosion_mm: in-plane erosion for the core mean (None = 1 voxel in-plane).
        reference_file: normative reference JSON (None = the paper's, shipped with the bundle).
        participants_file: optional BIDS participants.tsv (participant_id, sex, age, activity) for strata.
        model_file: the weights used (fingerprinted in the manifest).
        cohort_table: file name of the run's table of all subjects.
        report: also draw the pictures and the HTML page.
        overwrite: replace results of a different run.
        version: bundle version written into the manifest.
        min_volume_ml: smallest label side (mL) given an FF; smaller ones get status ``too_small``.
        border_trim_ff: border voxels above this FF touching unlabelled fat are left out (None: keep all).
        segmentation_settings: the settings that made the label map (window, padding, flip ensembling, working
            spacing, network input, precision), recorded in the manifest so that a run with other settings is
            neither mistaken for a finished one nor allowed to overwrite it. Values must be JSON-able.
        staging: write into ``output_dir/.staging/<subject>/`` and leave the cohort rows in the data dictionary;
            :class:`MarkDoned` (last in the postprocessing) then adds the rows and swaps the finished folder in, so
            nothing of an earlier run is rewritten before the new results are complete (inference.json). False:
            write into ``output_dir/<subject>/`` directly (a pipeline without :class:`MarkDoned`).
        trust_voxel_grid: see :class:`LoadDixond` (used when the scan is read here, not by the loader).

    Boolean arguments accept the command-line spellings of :func:`scripts.configuration.values.as_bool`.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        output_dir: str = "eval",
        ff_method: str = "auto",
        ff_scale: str | None = None,
        erosion_mm: float | None = None,
        reference_file: str | None = None,
        participants_file: str | None = None,
        model_file: str | None = None,
        cohort_table: str = "cohort_ff_table.csv",
        report: bool = True,
        overwrite: bool = False,
        version: str = "",
        min_volume_ml: float = 1.0,
        border_trim_ff: float | None = 0.7,
        segmentation_settings: Mapping[str, Any] | None = None,
        staging: bool = False,
        trust_voxel_grid: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.ff_method = ff_method
        self.ff_scale = ff_scale
        self.erosion_mm = erosion_mm
        self.reference = load_reference(reference_file) if reference_file else load_reference(None)
        self.reference_file = reference_file
        self.participants = None
        if participants_file and Path(participants_file).is_file():
            self.participants = pd.read_csv(participants_file, sep="\t", dtype={"participant_id": str})
        self.model_fp = file_fingerprint(model_file) if model_file and Path(model_file).is_file() else None
        self.cohort = CohortTable(self.output_dir / cohort_table)
        # typed here too: a pipeline built without scripts.configuration.settings must not read "false" as True
        self.report = as_bool(report, "report")
        self.overwrite = as_bool(overwrite, "overwrite")
        self.staging = as_bool(staging, "staging")
        self.trust_voxel_grid = trust_voxel_grid
        self.version = version
        self.min_volume_ml = min_volume_ml
        self.border_trim_ff = border_trim_ff
        self.segmentation_settings = _settings_record(segmentation_settings)

    def _demographics(self, subject: str) -> dict[str, Any]:
        if self.participants is None:
            return {}
        row = self.participants[self.participants.participant_id == subject]
        if row.empty:
            return {}
        r = row.iloc[0]
        return {k: (None if pd.isna(r.get(k)) else r.get(k)) for k in ("sex", "age", "activity") if k in r}

    def manifest(self, subject: str, files: Mapping[str, str]) -> dict[str, Any]:
        """What identifies this run's results for one subject: inputs (fingerprints), model, settings, version.

        Args:
            subject: subject id.
            files: Dixon role -> path of the subject's images.
        """
        return {
            "subject": subject,
            "bundle_version": self.version,
            "inputs": {role: file_fingerprint(path) for role, path in sorted(files.items())},
            "model": self.model_fp,
            "settings": {
                "ff_method": self.ff_method,
                "ff_scale": self.ff_scale,
                "erosion_mm": self.erosion_mm,
                "min_volume_ml": self.min_volume_ml,
                "border_trim_ff": self.border_trim_ff,
                "trust_voxel_grid": self.trust_voxel_grid,
                "reference": self.reference_file or "bmc2026_lumbar_ff",
                "segmentation": self.segmentation_settings,
            },
        }

    def is_done(self, subject: str, files: Mapping[str, str]) -> bool:
        """True when ``output_dir/<subject>/`` holds the finished results of exactly this run (see
        :class:`MarkDoned`): same inputs, model, settings and version."""
        path = self.output_dir / subject / f"{subject}{DONE_SUFFIX}"
        if not path.is_file():
            return False
        try:
            return json.loads(path.read_text()) == self.manifest(subject, files)
        except (OSError, ValueError):
            return False

    def conflict(self, subject: str, manifest: dict[str, Any] | Mapping[str, str]) -> str | None:
        """Why ``output_dir/<subject>/`` may not receive this run's results, or None when it may.

        It may when ``overwrite`` is set, when it holds no run record, or when its record equals the run's manifest
        (the same run, e.g. one killed part-way). Cohort runs ask before any inference (:mod:`scripts.pipeline.cohort`),
        so a
        changed setting is refused at once, not after the first subject's segmentation.

        Args:
            subject: subject id.
            manifest: this run's manifest for the subject, or its Dixon role -> path files (the manifest is then
                built only when a run record exists; a missing input file gives None here, so that the loader
                reports it by name).
        """
        sdir = self.output_dir / subject
        path = sdir / f"{subject}_run.json"
        if self.overwrite or not path.exists():
            return None
        if "subject" not in manifest:
            if not all(Path(f).is_file() for f in manifest.values()):
                return None
            manifest = self.manifest(subject, manifest)  # type: ignore[arg-type]
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            return f"{path} cannot be read ({err}); refusing to overwrite the results beside it. " + _CONFLICT_HINT
        if old == manifest:
            return None
        diff = sorted(k for k in manifest if old.get(k) != manifest.get(k))
        return (
            f"{sdir} holds results of a different run (differs in: {', '.join(diff)}); refusing to overwrite "
            "them. " + _CONFLICT_HINT
        )

    def _check_manifest(self, sdir: Path, manifest: dict[str, Any]) -> None:
        reason = self.conflict(manifest["subject"], manifest)
        if reason:
            raise RunConflictError(reason)
        atomic_write_text(
            sdir / f"{manifest['subject']}_run.json", json.dumps(manifest, indent=2) + "\n", overwrite=True
        )

    def _results_dir(self, subject: str) -> Path:
        """Where this subject's files are written: a fresh staging folder, or the results folder itself."""
        if not self.staging:
            sdir = self.output_dir / subject
            sdir.mkdir(parents=True, exist_ok=True)
            # a re-run of a subject is unfinished until MarkDoned writes its marker again
            (sdir / f"{subject}{DONE_SUFFIX}").unlink(missing_ok=True)
            return sdir
        sdir = self.output_dir / STAGING_DIR / subject
        shutil.rmtree(sdir, ignore_errors=True)  # left by a killed run: never mixed into the new results
        sdir.mkdir(parents=True)
        return sdir

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        subject = str(d["subject"])
        scan = _SCANS.pop(subject, None)
        if scan is None:
            roles = {k: v for k, v in d.items() if k in _ROLES or k in ("subject", "label")}
            if not any(k in _ROLES for k in roles):
                # segmentation-only input (MONAI Label, MONAI Deploy): no water/fat, so no FF to measure
                logger.info("%s: segmentation only (no Dixon water/fat files); no FF quantification", subject)
                return d
            scan = load_dixon(roles, trust_voxel_grid=self.trust_voxel_grid)
        for key in self.key_iterator(d):
            pred = d[key]
            label = np.asarray(pred.detach().cpu().numpy()[0]).astype(np.uint8)
            label_affine = np.asarray(pred.affine.detach().cpu().numpy(), dtype=np.float64)
            d[MANIFEST_KEY], rows = self._quantify(scan, label, label_affine)
            if self.staging:
                d[ROWS_KEY] = rows
            else:
                self.cohort.add(rows, subject=scan.subject)
        return d

    def _quantify(
        self, scan: DixonScan, label: np.ndarray, label_affine: np.ndarray
    ) -> tuple[dict[str, Any], pd.DataFrame]:
        manifest = self.manifest(scan.subject, scan.files)
        reason = self.conflict(scan.subject, manifest)  # before anything is written, staged or not
        if reason:
            raise RunConflictError(reason)
        sdir = self._results_dir(scan.subject)
        self._check_manifest(sdir, manifest)
        result, ffr = measure_subject(
            scan,
            label,
            label_affine,
            self.ff_method,
            self.ff_scale,
            self.erosion_mm,
            self.min_volume_ml,
            self.border_trim_ff,
        )
        prov = dict(ffr.provenance)
        write_tables(result, sdir, scan.subject, overwrite=True)
        ff_img = nib.Nifti1Image((ffr.ff * 100.0).astype(np.float32), ffr.affine)
        ff_img.header["descrip"] = b"fat fraction, percent; NaN = excluded voxel"
        nib.save(ff_img, str(sdir / f"{scan.subject}_ff.nii.gz"))
        demo = self._demographics(scan.subject)
        comparison = compare_to_reference(result.table, self.reference, **demo)
        atomic_write_text(sdir / f"{scan.subject}_normative.csv", comparison.to_csv(index=False), overwrite=True)
        # the normative module calls the paper's L/R mean "lr_mean"; the tables call it "mean"
        comp = comparison.replace({"side": {"lr_mean": "mean"}}) if "side" in comparison.columns else comparison
        keys = [c for c in ("muscle", "side") if c in comp.columns]
        rows = result.table.merge(
            comp[keys + ["band", "percentile_approx", "z_score_approx", "distribution"]], how="left", on=keys
        )
        if self.report:
            from scripts.reporting.report import ff_chart, html_report, qc_montage

            base = scan.images.get("inphase")
            if base is None:
                base = scan.network_input()
            images = {
                "QC montage": qc_montage(
                    base,
                    scan.affine,
                    label,
                    sdir / f"{scan.subject}_qc_axial.png",
                    label_affine=label_affine,
                    title=scan.subject,
                ),
                "FF against reference": ff_chart(result.table, comparison, sdir / f"{scan.subject}_ff_chart.png"),
            }
            html_report(scan.subject, result.table, comparison, images, sdir / f"{scan.subject}_report.html", prov)
        logger.info("%s: FF table and report written to %s", scan.subject, sdir)
        return manifest, rows


class MarkDoned(MapTransform):
    """Finish a subject once every output is written: its ``<subject>_done.json`` marker, cohort rows and folder.

    Put it last in the postprocessing, after the saver. With a staging :class:`QuantifyDixond` (inference.json),
    the subject's files are in ``output_dir/.staging/<subject>/``: the cohort rows are added, the folder replaces
    ``output_dir/<subject>/`` (:func:`scripts.io.atomic.publish_folder`), and the marker is written last, so a
    failed or killed run leaves the earlier results as they were. Without staging, only the marker is written.
    A run killed before this step leaves no marker, so a resumed run redoes that subject. The marker holds the run
    manifest of :meth:`QuantifyDixond.manifest`, which :func:`scripts.pipeline.cohort.pending_subjects` compares to skip
    subjects already finished by the same run. Entries without a manifest (segmentation only) get no marker.

    Args:
        keys: unused (the transform acts on the whole entry); kept for the MONAI signature.
        output_dir: the run's output folder (as given to :class:`QuantifyDixond`).
        cohort_table: file name of the run's table of all subjects (as given to :class:`QuantifyDixond`).
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        output_dir: str = "eval",
        cohort_table: str = "cohort_ff_table.csv",
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.cohort = CohortTable(self.output_dir / cohort_table)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        manifest = d.pop(MANIFEST_KEY, None)
        rows = d.pop(ROWS_KEY, None)
        subject = str(manifest["subject"] if manifest is not None else d.get("subject", ""))
        if not subject:
            return d
        # order: cohort rows, folder, marker. A run killed between two steps leaves no marker in the results
        # folder, so the subject is redone and its rows replaced; a marker never stands beside unfinished results
        if rows is not None:
            self.cohort.add(rows, subject=subject)
        staged = self.output_dir / STAGING_DIR / subject
        if staged.is_dir():
            publish_folder(staged, self.output_dir / subject)
            try:
                staged.parent.rmdir()  # only when empty: another process may be staging its own subject
            except OSError:
                pass
        if manifest is not None:
            atomic_write_text(
                self.output_dir / subject / f"{subject}{DONE_SUFFIX}",
                json.dumps(manifest, indent=2) + "\n",
                overwrite=True,
            )
        return d
