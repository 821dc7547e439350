"""Generate phantom subjects and cohorts: the public API behind ``python -m scripts.phantom``."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.io.atomic import atomic_write, atomic_write_text
from scripts.labels import LABELS, MUSCLES, SIDES, label_value
from scripts.phantom import acquisition as acqmod
from scripts.phantom.acquisition import Acquisition
from scripts.phantom.anatomy import MUSCLE_SIGNAL, TEXTURES, SubjectAnatomy, draw_subject
from scripts.phantom.anatomy_complete import ANATOMIES, draw_subject_complete
from scripts.phantom.population import ACTIVITY_LEVELS, Participant, draw_muscle_ff, draw_participant
from scripts.phantom.render import Canvas
from scripts.phantom.textures import SmoothWarp
from scripts.phantom.tissue_canvas import TissueCanvas
from scripts.phantom.tissue_ids import vertebral_labels

__all__ = [
    "PhantomSubject",
    "make_anatomy",
    "generate_subject",
    "write_subject",
    "generate_cohort",
    "random_acquisition",
    "IMAGE_KEYS",
]

logger = logging.getLogger(__name__)

#: stored images of a subject: key -> file suffix.
IMAGE_KEYS: dict[str, str] = {
    "water": "water",
    "fat": "fat",
    "inphase": "inphase",
    "opposed": "opposed",
    "ff": "ff",
    "label": "label",
    "ff_true": "ff_true",
    "tissue": "tissue",
    "vertebrae": "vertebrae",
}
#: keys written only by the anatomy-complete phantom (``anatomy="complete"``).
COMPLETE_KEYS: tuple[str, ...] = ("tissue", "vertebrae")


@dataclass
class PhantomSubject:
    """One generated subject, as stored (orientation, truncation, swap and FF scale applied).

    Attributes:
        subject_id: identifier, also the file prefix.
        images: key (``IMAGE_KEYS``) -> array; water/fat/inphase/opposed int16, ff per ``acquisition.ff_scale``,
            label uint8, ff_true float32 fraction (noise-free, unswapped: the exact voxel-wise FF); with
            ``anatomy="complete"`` also tissue (uint8 ids, ``tissue_ids.TISSUE_IDS``) and vertebrae (uint8, 9-13
            vertebral bodies L1-L5, 14 sacrum, 0 elsewhere).
        affine: voxel -> RAS world (mm), shared by all images.
        truth: ground-truth table (one row per label and side, plus L/R means): FF in percent, volume in mL.
        participant: the subject's demographics.
        acquisition: how it was acquired.
        flags: swap region, truncation and other facts a checker needs.
    """

    subject_id: str
    images: dict[str, np.ndarray]
    affine: np.ndarray
    truth: pd.DataFrame
    participant: Participant
    acquisition: Acquisition
    flags: dict = field(default_factory=dict)


def make_anatomy(
    p: Participant, rng: np.random.Generator, texture: str = "smooth", texture_seed: int = 0
) -> SubjectAnatomy:
    """Body and muscle geometry for participant ``p`` (sizes depend on sex, age, activity and BMI); ``texture`` and
    ``texture_seed`` as in ``SubjectAnatomy``."""
    male = p.sex == "M"
    act = ACTIVITY_LEVELS.index(p.activity)
    base = (1.08 if male else 0.93) * (1.0 - 0.003 * (p.age - 45)) * (1.0 + 0.025 * (act - 1.5))
    scale = {}
    for m in MUSCLES:
        mm = base * np.exp(rng.normal(0, 0.07))
        for s in SIDES:
            scale[(m, s)] = float(mm * np.exp(rng.normal(0, 0.035)))
    return SubjectAnatomy(
        sex=p.sex,
        age=p.age,
        bmi=p.bmi,
        height_factor=float(np.exp(rng.normal(0.03 if male else -0.03, 0.04))),
        width_factor=float(np.exp(rng.normal(0.03 if male else -0.03, 0.035))),
        muscle_scale=scale,
        muscle_ff=draw_muscle_ff(p, rng),
        lordosis_mm=float(rng.uniform(6.0, 26.0)),
        offset_mm=(float(rng.normal(0, 6)), float(rng.normal(0, 8)), float(rng.normal(0, 10))),
        marrow_ff=float(np.clip(0.30 + 0.005 * (p.age - 20) + rng.normal(0, 0.05), 0.15, 0.75)),
        marbling=float(rng.uniform(0.5, 1.5)),
        texture=texture,
        texture_seed=int(texture_seed),
    )


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


def _renormalise_labels(
    w0: np.ndarray,
    f0: np.ndarray,
    label: np.ndarray,
    label_frac: np.ndarray,
    targets: dict[int, float],
    muscle_signal: float | None = MUSCLE_SIGNAL,
    iterations: int = 3,
) -> None:
    """Shift each muscle's own FF so that the noise-free mean FF over its label equals the drawn target.

    Partial volume with fascia, bone and neighbours biases a label's mean; moving fat to water in the muscle's
    share ``f`` of a voxel (``F += f S dFF``, ``W -= f S dFF``) changes that voxel's FF by ``f S dFF / (W + F)``
    while keeping its total signal, so one linear solve (repeated to absorb clipping) hits the target. ``S`` is
    ``muscle_signal``, or each voxel's own total signal when None (muscles whose signal grows with their fat).
    """
    for value, target in targets.items():
        idx = np.nonzero(label == value)
        if idx[0].size == 0:
            continue
        w, f, fr = w0[idx].astype(np.float64), f0[idx].astype(np.float64), label_frac[idx].astype(np.float64)
        share = fr * (w + f) if muscle_signal is None else fr * muscle_signal
        for _ in range(iterations):
            tot = np.maximum(w + f, 1e-6)
            cur = float(np.mean(f / tot))
            gain = float(np.mean(share / tot))
            if abs(cur - target) < 1e-5 or gain <= 0:
                break
            delta = (target - cur) / gain
            move = np.clip(share * delta, -f, w)
            f, w = f + move, w - move
        w0[idx], f0[idx] = w, f


def _truth_table(
    sid: str,
    label: np.ndarray,
    water: np.ndarray,
    fat: np.ndarray,
    ff_true: np.ndarray,
    targets: dict[int, float],
    voxel_ml: float,
    swap_mask: np.ndarray | None,
) -> pd.DataFrame:
    rows = []
    nz = label.shape[2]
    for value in range(1, len(LABELS)):
        m = label == value
        n = int(m.sum())
        muscle, side = MUSCLES[(value - 1) // 2], SIDES[(value - 1) % 2]
        row = dict(
            subject=sid,
            label=value,
            muscle=muscle,
            side=side,
            n_voxels=n,
            volume_ml=n * voxel_ml,
            ff_target_pct=100.0 * targets[value],
        )
        if n:
            wv, fv = water[m].astype(np.float64), fat[m].astype(np.float64)
            tot = wv + fv
            ok = tot > 0
            row["ff_mean_pct"] = 100.0 * float(np.mean(fv[ok] / tot[ok]))
            row["ff_true_pct"] = 100.0 * float(np.mean(ff_true[m]))
            ks = np.nonzero(m.any(axis=(0, 1)))[0]
            row["truncated_inferior"] = bool(ks[0] == 0)
            row["truncated_superior"] = bool(ks[-1] == nz - 1)
            row["swapped_fraction"] = float(swap_mask[m].mean()) if swap_mask is not None else 0.0
        else:
            row.update(
                ff_mean_pct=np.nan,
                ff_true_pct=np.nan,
                truncated_inferior=False,
                truncated_superior=False,
                swapped_fraction=0.0,
            )
        rows.append(row)
    df = pd.DataFrame(rows)
    means = []
    for muscle in MUSCLES:
        sub = df[df.muscle == muscle]
        means.append(
            dict(
                subject=sid,
                label=0,
                muscle=muscle,
                side="mean",
                n_voxels=int(sub.n_voxels.sum()),
                volume_ml=float(sub.volume_ml.sum()),
                ff_target_pct=float(sub.ff_target_pct.mean()),
                ff_mean_pct=float(sub.ff_mean_pct.mean()),
                ff_true_pct=float(sub.ff_true_pct.mean()),
                truncated_inferior=bool(sub.truncated_inferior.any()),
                truncated_superior=bool(sub.truncated_superior.any()),
                swapped_fraction=float(sub.swapped_fraction.mean()),
            )
        )
    return pd.concat([df, pd.DataFrame(means)], ignore_index=True)


def generate_subject(
    seed: int,
    acquisition: Acquisition | None = None,
    participant: Participant | None = None,
    subject_id: str | None = None,
    texture: str = "smooth",
    anatomy: str = "default",
) -> PhantomSubject:
    """Generate one subject; the same arguments give byte-identical images.

    Args:
        seed: random seed of the subject (anatomy, FF, noise).
        acquisition: geometry and artefacts; default: the reference geometry, RAS, full coverage, no swap.
        participant: demographics; default drawn from ``seed``.
        subject_id: file prefix; default ``sub-<seed>``.
        texture: ``"smooth"`` (default; the phantom of bundle versions up to 0.11) or ``"septa"`` (fat septa in the
            muscles, mesenteric fat between bowel loops); see ``anatomy.SubjectAnatomy``.
        anatomy: ``"default"`` (the phantom of earlier versions, byte-identical) or ``"complete"`` (adds the
            abdominal wall, back and gluteal muscles, crura, vessels, organs, bowel with gas, realistic vertebrae and
            sacrum, and a psoas growing from T12-L1 in the groove beside the bodies; also returns the tissue-id and
            vertebral label maps); see ``anatomy_complete``.

    Returns:
        the stored subject (see ``PhantomSubject``).
    """
    if anatomy not in ANATOMIES:
        raise ValueError(f"anatomy must be one of {ANATOMIES}, got {anatomy!r}")
    acq = acquisition or Acquisition()
    sid = subject_id or f"sub-{seed:04d}"
    rng = np.random.default_rng([int(seed), 20261125])
    p = participant or draw_participant(sid, rng)
    anat = make_anatomy(p, rng, texture=texture, texture_seed=int(seed))
    grid = acqmod.make_grid(acq)
    n_sub = int(np.ceil(acq.spacing[2] / 1.3))
    if anatomy == "complete":
        canvas = TissueCanvas(grid, n_sub, warp=SmoothWarp(grid, amplitude_mm=5.0, n_modes=3, rng=rng))
        draw_subject_complete(anat, canvas, rng)
    else:
        canvas = Canvas(grid, n_sub, warp=SmoothWarp(grid, amplitude_mm=5.0, n_modes=3, rng=rng))
        draw_subject(anat, canvas, rng)
    w0, f0, label = canvas.water, canvas.fat, canvas.label
    targets = {label_value(m, s): v for (m, s), v in anat.muscle_ff.items()}
    if texture == "smooth":
        # the complete anatomy puts more fat-rich neighbours in partial volume with the labels (wall, bowel fat),
        # so its clipped solve needs more rounds; the default keeps its 3 so its output stays byte-identical
        _renormalise_labels(w0, f0, label, canvas.label_frac, targets, iterations=3 if anatomy == "default" else 40)
    else:
        _renormalise_labels(w0, f0, label, canvas.label_frac, targets, muscle_signal=None, iterations=40)
    tot0 = w0 + f0
    ff_true = np.where(tot0 > 1e-3, f0 / np.maximum(tot0, 1e-6), 0.0).astype(np.float32)

    y_back = float(anat.y_spine(anat.z(100.0)) - 82.0 - anat.sat_mm)
    bias = acqmod.bias_field(grid, acq.bias, y_back, rng)
    sigma = MUSCLE_SIGNAL / acq.snr
    ip, op, water, fat = dixon_out = acqmod.dixon_signals(w0, f0, bias, sigma, rng)
    del dixon_out
    water_i, fat_i = acqmod.to_storage(water), acqmod.to_storage(fat)
    ip_i, op_i = acqmod.to_storage(ip), acqmod.to_storage(op)

    # the written swap is an acquisition artefact: truth keeps the unswapped values
    swap_mask = None
    flags: dict = {"swap": acq.swap}
    if acq.swap == "global":
        swap_mask = np.ones(label.shape, bool)
    elif acq.swap == "regional":
        c = [rng.uniform(0.15, 0.85) * n for n in label.shape]
        r_mm = rng.uniform(50, 90)
        d2 = sum(
            ((np.arange(n) - c[a]) * grid.spacing[a]).reshape([-1 if i == a else 1 for i in range(3)]) ** 2
            for a, n in enumerate(label.shape)
        )
        swap_mask = d2 < r_mm**2
        flags["swap_centre_voxel_ras"] = [float(v) for v in c]
        flags["swap_radius_mm"] = float(r_mm)
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    truth_w, truth_f = water_i, fat_i
    if swap_mask is not None:
        water_i, fat_i = np.where(swap_mask, fat_i, water_i), np.where(swap_mask, water_i, fat_i)

    tot = water_i.astype(np.float32) + fat_i.astype(np.float32)
    ff = np.where(tot > 0, fat_i / np.maximum(tot, 1.0), 0.0).astype(np.float32)
    images = {
        "water": water_i,
        "fat": fat_i,
        "inphase": ip_i,
        "opposed": op_i,
        "ff": ff,
        "label": label,
        "ff_true": ff_true,
    }
    if anatomy == "complete":
        images["tissue"] = canvas.tissue
        images["vertebrae"] = vertebral_labels(canvas.tissue)
    affine = grid.affine
    if acq.coverage == "truncated":
        nz = label.shape[2]
        keep = int(round(nz * rng.uniform(0.45, 0.75)))
        k0 = int(rng.integers(0, nz - keep + 1))
        images = {k: v[:, :, k0 : k0 + keep] for k, v in images.items()}
        truth_w, truth_f = truth_w[:, :, k0 : k0 + keep], truth_f[:, :, k0 : k0 + keep]
        swap_mask = None if swap_mask is None else swap_mask[:, :, k0 : k0 + keep]
        affine = affine.copy()
        affine[:3, 3] += affine[:3, 2] * k0
        flags["truncated_slices"] = [k0, k0 + keep]
    truth = _truth_table(sid, images["label"], truth_w, truth_f, images["ff_true"], targets, voxel_ml, swap_mask)
    if acq.ff_scale == "percent":
        images["ff"] = (images["ff"] * 100.0).astype(np.float32)
    elif acq.ff_scale == "permille":
        images["ff"] = np.rint(images["ff"] * 1000.0).astype(np.int16)
    out_affine = affine
    for k in list(images):
        images[k], out_affine = acqmod.reorient(images[k], affine, acq.orientation)
    flags["muscle_ff_target"] = {f"{m}_{s}": v for (m, s), v in anat.muscle_ff.items()}
    if anatomy != "default":
        flags["anatomy"] = anatomy
    return PhantomSubject(sid, images, out_affine, truth, p, acq, flags)


def _same_on_disk(path: Path, subject: PhantomSubject, key: str) -> bool:
    """Whether ``path`` holds exactly ``subject.images[key]`` on ``subject.affine`` (values, dtype, grid)."""
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception:  # unreadable or truncated: not the same
        return False
    want = subject.images[key]
    return (
        data.shape == want.shape
        and data.dtype == want.dtype
        and np.allclose(img.affine, subject.affine)
        and np.array_equal(data, want)
    )


def write_subject(
    subject: PhantomSubject, out_dir: str | Path, write_ff_true: bool = True, overwrite: bool = False
) -> dict[str, str]:
    """Write a subject's NIfTI files to ``out_dir/<id>/<id>_<key>.nii.gz`` (atomically); the tissue and vertebrae
    maps only when the subject has them (``anatomy="complete"``).

    Returns:
        key -> path relative to ``out_dir`` (the datalist entry).

    Raises:
        FileExistsError: when a file exists with other content and ``overwrite`` is False (earlier outputs are never
            replaced); files that already hold exactly this subject are left as they are.
    """
    out_dir = Path(out_dir)
    sdir = out_dir / subject.subject_id
    sdir.mkdir(parents=True, exist_ok=True)
    keys = [k for k in IMAGE_KEYS if k in subject.images and (write_ff_true or k != "ff_true")]
    paths = {k: sdir / f"{subject.subject_id}_{IMAGE_KEYS[k]}.nii.gz" for k in keys}
    if not overwrite:
        existing = [k for k, p in paths.items() if p.exists()]
        if existing and len(existing) == len(keys) and all(_same_on_disk(paths[k], subject, k) for k in keys):
            # the same command run again: the files already hold this subject
            return {k: str(p.relative_to(out_dir)) for k, p in paths.items()}
        if existing:
            raise FileExistsError(
                f"phantom output exists with other content, refusing to overwrite: "
                f"{paths[existing[0]]} (and {len(existing) - 1} more); pass overwrite=True or use "
                "a new folder"
            )

    def one(k: str) -> None:
        img = nib.Nifti1Image(subject.images[k], subject.affine)
        img.header.set_xyzt_units("mm", "sec")
        img.header.set_qform(subject.affine, code=1)
        img.header.set_sform(subject.affine, code=1)
        if k == "ff":
            img.header["descrip"] = f"fat fraction, scale={subject.acquisition.ff_scale}".encode()
        # the temporary name keeps the .nii.gz suffix so nibabel compresses it
        atomic_write(paths[k], lambda tmp: nib.save(img, tmp), suffix=".tmp.nii.gz")

    # gzip releases the GIL: two writers use both cores
    with ThreadPoolExecutor(max_workers=2) as ex:
        list(ex.map(one, keys))
    return {k: str(p.relative_to(out_dir)) for k, p in paths.items()}


def _cohort_subject(job: tuple) -> tuple[dict, dict, pd.DataFrame]:
    """Generate and write one cohort subject (a process-pool task): its datalist entry, participant row, truth."""
    sseed, sid, geometry, variety, swap_probability, out, write_ff_true, overwrite, texture, anatomy = job
    rng = np.random.default_rng([sseed, 7])
    acq = random_acquisition(rng, geometry=geometry, variety=variety, swap_probability=swap_probability)
    subj = generate_subject(sseed, acq, subject_id=sid, texture=texture, anatomy=anatomy)
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
    return {"subject": sid, "image": rel["inphase"], **rel}, row, subj.truth


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

    Returns:
        paths of the written tables: {"datalist", "participants", "ground_truth"}.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    datalist_path = out / "datalist.json"
    if datalist_path.exists() and not overwrite:
        raise FileExistsError(
            f"{datalist_path} exists: refusing to overwrite an earlier cohort; "
            "choose a new out_dir or pass overwrite=True"
        )
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
        )
        for i in range(n)
    ]
    with ProcessPoolExecutor(max_workers=min(workers, n)) if workers > 1 else nullcontext() as pool:
        done = (pool.map if pool else map)(_cohort_subject, jobs)
        results = list(tqdm(done, total=n, desc="phantom cohort", disable=not progress))
    entries = [r[0] for r in results]
    parts = [r[1] for r in results]
    truths = [r[2] for r in results]
    n_train = n - n_val - n_testing
    datalist = {
        "description": f"lumbar Dixon phantom cohort, seed {seed}"
        + ("" if texture == "smooth" else f", texture {texture}")
        + ("" if anatomy == "default" else f", anatomy {anatomy}"),
        "labels": {str(k): v for k, v in LABELS.items()},
        "training": entries[:n_train],
        "validation": entries[n_train : n_train + n_val],
        "testing": entries[n_train + n_val :],
    }
    pdf = pd.DataFrame(parts)
    gt = pd.concat(truths, ignore_index=True)
    atomic_write_text(out / "participants.tsv", pdf.to_csv(sep="\t", index=False, na_rep="n/a"), overwrite=True)
    atomic_write_text(out / "ground_truth.csv", gt.to_csv(index=False, float_format="%.4f"), overwrite=True)
    atomic_write_text(datalist_path, json.dumps(datalist, indent=4), overwrite=True)
    logger.info("wrote %d subjects to %s", n, out)
    return {
        "datalist": str(datalist_path),
        "participants": str(out / "participants.tsv"),
        "ground_truth": str(out / "ground_truth.csv"),
    }
