"""Phantom cohorts: many subjects with varied acquisitions, a BIDS-style participants table, a MONAI datalist and
a ground-truth table (``python -m scripts.phantom cohort``)."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from scripts.io.atomic import atomic_write_text
from scripts.labels import LABELS
from scripts.phantom import acquisition as acqmod
from scripts.phantom.acquisition import Acquisition
from scripts.phantom.anatomy import TEXTURES
from scripts.phantom.anatomy_complete import ANATOMIES
from scripts.phantom.generate import CREST_HEIGHTS, generate_subject, write_subject
from tqdm import tqdm

__all__ = ["random_acquisition", "generate_cohort"]

logger = logging.getLogger(__name__)


def random_acquisition(
    rng: np.random.Generator, geometry: str = "reference", variety: bool = True, swap_probability: float = 0.0
) -> Acquisition:
    """Draw an acquisition: with ``variety`` the spacing (reference to 2x2x5 mm), orientation, coverage, FF scale,
    SNR and bias vary; otherwise the named ``geometry`` preset with default settings."""
    if not variety:
        return Acquisition.preset(geometry)
    t = rng.uniform(0, 1)
    ref = np.array(acqmod.PRESETS["reference"][1])
    spacing = tuple(float(v) for v in np.round(ref + t * (np.array([2.0, 2.0, 5.0]) - ref), 3))
    if geometry == "tiny":
        spacing = acqmod.PRESETS["tiny"][1]
    swap = "none"
    if rng.random() < swap_probability:
        swap = "global" if rng.random() < 0.5 else "regional"
    kw = dict(
        orientation=str(rng.choice(["RAS", "LPS"])),
        coverage="truncated" if rng.random() < 0.25 else "full",
        swap=swap,
        ff_scale=str(rng.choice(["fraction", "percent", "permille"])),
        snr=float(rng.uniform(15, 60)),
        bias=float(rng.uniform(0.3, 1.3)),
        fov_shift_mm=(float(rng.normal(0, 8)), float(rng.normal(0, 8)), float(rng.normal(0, 10))),
    )
    if geometry == "tiny":
        return Acquisition(shape=acqmod.PRESETS["tiny"][0], spacing=spacing, **kw)
    return Acquisition.from_spacing(spacing, **kw)


def _cohort_subject(job: tuple) -> tuple[dict, dict, pd.DataFrame]:
    """Generate and write one cohort subject (a process-pool task): its datalist entry, participant row, truth."""
    sseed, sid, geometry, variety, swap_probability, out, write_ff_true, overwrite, texture, anatomy, crest_height = job
    rng = np.random.default_rng([sseed, 7])
    acq = random_acquisition(rng, geometry=geometry, variety=variety, swap_probability=swap_probability)
    subj = generate_subject(sseed, acq, subject_id=sid, texture=texture, anatomy=anatomy, crest_height=crest_height)
    rel = write_subject(subj, out, write_ff_true=write_ff_true, overwrite=overwrite)
    row = asdict(subj.participant)
    row.update(
        seed=sseed,
        spacing_mm="x".join(f"{v:g}" for v in acq.spacing),
        orientation=acq.orientation,
        coverage=acq.coverage,
        swap=acq.swap,
        ff_scale=acq.ff_scale,
        snr=round(acq.snr, 1),
        texture=texture,
    )
    if anatomy != "default":
        # only the new anatomy adds the column, so default cohorts' tables stay byte-identical
        row["anatomy"] = anatomy
    if crest_height != "fixed":
        row["crest_shift_mm"] = subj.flags["crest_shift_mm"]
    return {"subject": sid, "image": rel["inphase"], **rel}, row, subj.truth


def _validation_size(
    n: int, n_validation: int | None, n_testing: int, workers: int, texture: str, anatomy: str, crest_height: str
) -> int:
    """Check a cohort's arguments; returns its number of validation subjects (see ``generate_cohort``)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    n_val = max(1, round(0.2 * n)) if n_validation is None and n > 1 else (n_validation or 0)
    if n_val + n_testing > n:
        raise ValueError(f"n_validation ({n_val}) + n_testing ({n_testing}) exceed the cohort (n={n})")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {TEXTURES}, got {texture!r}")
    if anatomy not in ANATOMIES:
        raise ValueError(f"anatomy must be one of {ANATOMIES}, got {anatomy!r}")
    if crest_height not in CREST_HEIGHTS:
        raise ValueError(f"crest_height must be one of {CREST_HEIGHTS}, got {crest_height!r}")
    return n_val


def _write_cohort_tables(
    out: Path,
    results: list[tuple[dict, dict, pd.DataFrame]],
    seed: int,
    n_val: int,
    n_testing: int,
    texture: str,
    anatomy: str,
    crest_height: str,
) -> dict[str, str]:
    """Write the cohort's participants.tsv, ground_truth.csv and datalist.json from its subjects' ``results``
    (``_cohort_subject``); the datalist's last ``n_testing`` subjects test, the ``n_val`` before them validate."""
    n = len(results)
    entries = [r[0] for r in results]
    parts = [r[1] for r in results]
    truths = [r[2] for r in results]
    n_train = n - n_val - n_testing
    datalist = {
        "description": f"lumbar Dixon phantom cohort, seed {seed}"
        + ("" if texture == "smooth" else f", texture {texture}")
        + ("" if anatomy == "default" else f", anatomy {anatomy}")
        + ("" if crest_height == "fixed" else f", crest height {crest_height}"),
        "labels": {str(k): v for k, v in LABELS.items()},
        "training": entries[:n_train],
        "validation": entries[n_train : n_train + n_val],
        "testing": entries[n_train + n_val :],
    }
    pdf = pd.DataFrame(parts)
    gt = pd.concat(truths, ignore_index=True)
    datalist_path = out / "datalist.json"
    atomic_write_text(out / "participants.tsv", pdf.to_csv(sep="\t", index=False, na_rep="n/a"), overwrite=True)
    atomic_write_text(out / "ground_truth.csv", gt.to_csv(index=False, float_format="%.4f"), overwrite=True)
    atomic_write_text(datalist_path, json.dumps(datalist, indent=4), overwrite=True)
    return {
        "datalist": str(datalist_path),
        "participants": str(out / "participants.tsv"),
        "ground_truth": str(out / "ground_truth.csv"),
    }


def generate_cohort(
    out_dir: str | Path,
    n: int = 30,
    seed: int = 0,
    geometry: str = "reference",
    variety: bool = True,
    swap_probability: float = 0.0,
    n_validation: int | None = None,
    n_testing: int = 0,
    write_ff_true: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 1,
    texture: str = "smooth",
    anatomy: str = "default",
    crest_height: str = "fixed",
) -> dict[str, str]:
    """Generate ``n`` subjects with a BIDS-style participants.tsv, a MONAI datalist and a ground-truth table.

    Subject ``i`` uses seed ``seed * 100003 + i``, so cohorts with different seeds never share a subject and
    the same seed always gives the same files.

    Args:
        out_dir: folder to create (must not hold an earlier cohort unless ``overwrite``).
        n: number of subjects.
        seed: cohort seed.
        geometry: "reference", "low" or "tiny" (see ``acquisition.PRESETS``).
        variety: draw spacing (reference to 2x2x5 mm), orientation, coverage, FF scale, SNR and bias per subject.
        swap_probability: probability of a (global or regional) fat-water swap per subject.
        n_validation: subjects in the datalist's "validation" key (default: 20 % of ``n``, at least 1 when n > 1).
        n_testing: subjects in the "testing" key (taken from the end).
        write_ff_true: also write the exact noise-free FF map of each subject.
        overwrite: replace an existing cohort in ``out_dir``.
        progress: show a progress bar.
        workers: subjects generated at once, each in its own process (about 1 GB of memory per process at the
            reference geometry). The files do not depend on it.
        texture: ``"smooth"`` or ``"septa"`` (see ``generate_subject``).
        anatomy: ``"default"`` or ``"complete"`` (see ``generate_subject``); ``"complete"`` adds the keys "tissue"
            and "vertebrae" (tissue-id and vertebral label maps) to each datalist entry.
        crest_height: ``"fixed"`` or ``"varied"`` (see ``generate_subject``); ``"varied"`` adds the column
            ``crest_shift_mm`` to participants.tsv.

    Returns:
        paths of the written tables: {"datalist", "participants", "ground_truth"}.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    datalist_path = out / "datalist.json"
    if datalist_path.exists() and not overwrite:
        raise FileExistsError(
            f"{datalist_path} exists: refusing to overwrite an earlier cohort; "
            "choose a new out_dir or pass overwrite=True"
        )
    n_val = _validation_size(n, n_validation, n_testing, workers, texture, anatomy, crest_height)
    jobs = [
        (
            seed * 100003 + i,
            f"sub-{i + 1:04d}",
            geometry,
            variety,
            swap_probability,
            str(out),
            write_ff_true,
            overwrite,
            texture,
            anatomy,
            crest_height,
        )
        for i in range(n)
    ]
    with ProcessPoolExecutor(max_workers=min(workers, n)) if workers > 1 else nullcontext() as pool:
        done = (pool.map if pool else map)(_cohort_subject, jobs)
        results = list(tqdm(done, total=n, desc="phantom cohort", disable=not progress))
    paths = _write_cohort_tables(out, results, seed, n_val, n_testing, texture, anatomy, crest_height)
    logger.info("wrote %d subjects to %s", n, out)
    return paths
