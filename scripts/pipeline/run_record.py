"""What identifies a run's results for one subject, and whether an output folder may receive them (resuming).

A subject's results carry a run record (``<subject>_run.json`` while being written, the same text in
``<subject>_done.json`` once finished): fingerprints of its input files, the model, the settings and the bundle
version. A cohort run skips a subject whose finished record equals this run's (resume), and refuses, before any
inference, to write into a folder whose record belongs to another run (unless ``overwrite``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts.configuration.values import as_bool
from scripts.pipeline.keys import DONE_SUFFIX
from scripts.pipeline.lowest_vertebra import StatedLowestVertebra

__all__ = ["RunRecord", "RunConflictError", "file_fingerprint", "settings_record"]

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


def _plain(value: Any) -> Any:
    """JSON form of config values that are not JSON types (torch dtypes/devices, tuples of numpy numbers)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def settings_record(settings: Mapping[str, Any] | None) -> dict[str, Any]:
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


class RunRecord:
    """The run record of every subject of one run, and the resume and overwrite decisions made from it.

    Args:
        output_dir: the run's output folder (``output_dir/<subject>/`` holds a subject's results).
        model_file: the weights used (fingerprinted in the record); None or a missing file records ``null``.
        version: bundle version written into the record.
        overwrite: replace results of a different run instead of refusing.
        ff_method, ff_scale, erosion_mm, min_volume_ml, border_trim_ff, trust_voxel_grid: the quantification
            settings of the run (see configs/inference.json), recorded as given.
        reference_file: normative reference JSON (None: the paper's, recorded as ``bmc2026_lumbar_ff``).
        segmentation_settings: the settings that made the label map (window, padding, flip ensembling, working
            spacing, network input, precision), so that a run with other settings is neither mistaken for a
            finished one nor allowed to overwrite it. Values must be JSON-able.
        level_rule: the vertebral level bounds (``mid_disc`` or ``mid_body``) of the per-level table.
        lowest_vertebra: the stated lowest body in view that names the levels without the sacrum (None: not stated),
            or a :class:`~scripts.pipeline.lowest_vertebra.StatedLowestVertebra` (per subject, from participants.tsv);
            each subject's manifest records its own.

    Boolean arguments accept the command-line spellings of :func:`scripts.configuration.values.as_bool`.
    """

    def __init__(
        self,
        output_dir: str | Path = "eval",
        model_file: str | None = None,
        version: str = "",
        overwrite: bool = False,
        ff_method: str = "auto",
        ff_scale: str | None = None,
        erosion_mm: float | None = None,
        min_volume_ml: float = 1.0,
        border_trim_ff: float | None = 0.7,
        trust_voxel_grid: str | None = None,
        reference_file: str | None = None,
        segmentation_settings: Mapping[str, Any] | None = None,
        level_rule: str = "mid_disc",
        lowest_vertebra: str | StatedLowestVertebra | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.model_fp = file_fingerprint(model_file) if model_file and Path(model_file).is_file() else None
        self.version = version
        # typed here too: a pipeline built without scripts.configuration.settings must not read "false" as True
        self.overwrite = as_bool(overwrite, "overwrite")
        self.settings_in_force = {
            "ff_method": ff_method,
            "ff_scale": ff_scale,
            "erosion_mm": erosion_mm,
            "min_volume_ml": min_volume_ml,
            "border_trim_ff": border_trim_ff,
            "trust_voxel_grid": trust_voxel_grid,
            "reference": reference_file or "bmc2026_lumbar_ff",
            "segmentation": settings_record(segmentation_settings),
            # the bounds of the per-level table: a resumed run with the other rule must not mix the two
            "level_rule": level_rule,
            # the names of the levels: a run with another stated lowest body gives other per-level tables
            "lowest_vertebra": None,
        }
        self.stated = StatedLowestVertebra.of(lowest_vertebra)
        self.settings_in_force["lowest_vertebra"] = self.stated.default

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
            "settings": {**self.settings_in_force, "lowest_vertebra": self.stated(subject)},
        }

    def is_done(self, subject: str, files: Mapping[str, str]) -> bool:
        """True when ``output_dir/<subject>/`` holds the finished results of exactly this run (see
        :class:`scripts.pipeline.mark_done.MarkDoned`): same inputs, model, settings and version."""
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
        so a changed setting is refused at once, not after the first subject's segmentation.

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

    def check(self, manifest: dict[str, Any]) -> None:
        """Refuse (raise :class:`RunConflictError`) when the subject's output folder belongs to another run."""
        reason = self.conflict(manifest["subject"], manifest)
        if reason:
            raise RunConflictError(reason)
