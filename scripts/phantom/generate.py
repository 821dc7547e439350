"""Generate and write one phantom subject: anatomy, Dixon acquisition, exact truth (``python -m scripts.phantom
subject``); cohorts of them are in ``cohort``."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.io.atomic import atomic_write
from scripts.labels import LABELS, MUSCLES, SIDES, label_value
from scripts.phantom import acquisition as acqmod
from scripts.phantom.acquisition import Acquisition
from scripts.phantom.anatomy import MUSCLE_SIGNAL, SubjectAnatomy
from scripts.phantom.anatomy_complete import ANATOMIES, draw_subject_complete
from scripts.phantom.anatomy_default import draw_subject
from scripts.phantom.population import ACTIVITY_LEVELS, Participant, draw_muscle_ff, draw_participant
from scripts.phantom.render import Canvas, RenderGrid
from scripts.phantom.textures import SmoothWarp
from scripts.phantom.tissue_canvas import TissueCanvas
from scripts.phantom.tissue_ids import vertebral_labels

__all__ = [
    "PhantomSubject",
    "CREST_HEIGHTS",
    "CREST_SHIFT_RANGE_MM",
    "crest_shift",
    "make_anatomy",
    "generate_subject",
    "write_subject",
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


def _paint_anatomy(
    anat: SubjectAnatomy, acq: Acquisition, grid: RenderGrid, rng: np.random.Generator, anatomy: str
) -> Canvas:
    """The subject's noise-free water, fat and labels on ``grid`` (z sub-sampled to ~1.3 mm), through a smooth warp."""
    n_sub = int(np.ceil(acq.spacing[2] / 1.3))
    if anatomy == "complete":
        canvas = TissueCanvas(grid, n_sub, warp=SmoothWarp(grid, amplitude_mm=5.0, n_modes=3, rng=rng))
        draw_subject_complete(anat, canvas, rng)
    else:
        canvas = Canvas(grid, n_sub, warp=SmoothWarp(grid, amplitude_mm=5.0, n_modes=3, rng=rng))
        draw_subject(anat, canvas, rng)
    return canvas


def _match_label_ff(canvas: Canvas, targets: dict[int, float], texture: str, anatomy: str) -> np.ndarray:
    """Move each label's mean FF onto its target (in place on the canvas); returns the exact voxel-wise FF map."""
    w0, f0 = canvas.water, canvas.fat
    if texture == "smooth":
        # the complete anatomy puts more fat-rich neighbours in partial volume with the labels (wall, bowel fat),
        # so its clipped solve needs more rounds; the default keeps its 3 so its output stays byte-identical
        iterations = 3 if anatomy == "default" else 40
        _renormalise_labels(w0, f0, canvas.label, canvas.label_frac, targets, iterations=iterations)
    else:
        _renormalise_labels(w0, f0, canvas.label, canvas.label_frac, targets, muscle_signal=None, iterations=40)
    tot0 = w0 + f0
    return np.where(tot0 > 1e-3, f0 / np.maximum(tot0, 1e-6), 0.0).astype(np.float32)


def _acquire(
    anat: SubjectAnatomy, acq: Acquisition, grid: RenderGrid, canvas: Canvas, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Noisy Dixon images under the acquisition's bias field, as stored integers: key -> int16 array."""
    y_back = float(anat.y_spine(anat.z(100.0)) - 82.0 - anat.sat_mm)
    bias = acqmod.bias_field(grid, acq.bias, y_back, rng)
    sigma = MUSCLE_SIGNAL / acq.snr
    ip, op, water, fat = acqmod.dixon_signals(canvas.water, canvas.fat, bias, sigma, rng)
    return {
        "water": acqmod.to_storage(water),
        "fat": acqmod.to_storage(fat),
        "inphase": acqmod.to_storage(ip),
        "opposed": acqmod.to_storage(op),
    }


def _swap_mask(
    acq: Acquisition, grid: RenderGrid, shape: tuple[int, ...], rng: np.random.Generator, flags: dict
) -> np.ndarray | None:
    """Where water and fat are written exchanged (None: nowhere); a regional swap's centre and radius go to
    ``flags``."""
    if acq.swap == "global":
        return np.ones(shape, bool)
    if acq.swap != "regional":
        return None
    c = [rng.uniform(0.15, 0.85) * n for n in shape]
    r_mm = rng.uniform(50, 90)
    d2 = sum(
        ((np.arange(n) - c[a]) * grid.spacing[a]).reshape([-1 if i == a else 1 for i in range(3)]) ** 2
        for a, n in enumerate(shape)
    )
    flags["swap_centre_voxel_ras"] = [float(v) for v in c]
    flags["swap_radius_mm"] = float(r_mm)
    return d2 < r_mm**2


def _written_images(
    stored: dict[str, np.ndarray], swap_mask: np.ndarray | None, canvas: Canvas, ff_true: np.ndarray, anatomy: str
) -> dict[str, np.ndarray]:
    """The images as written (RAS, full coverage, FF as a fraction): swap applied, FF from the stored integers."""
    water_i, fat_i = stored["water"], stored["fat"]
    if swap_mask is not None:
        water_i, fat_i = np.where(swap_mask, fat_i, water_i), np.where(swap_mask, water_i, fat_i)
    tot = water_i.astype(np.float32) + fat_i.astype(np.float32)
    ff = np.where(tot > 0, fat_i / np.maximum(tot, 1.0), 0.0).astype(np.float32)
    images = {
        "water": water_i,
        "fat": fat_i,
        "inphase": stored["inphase"],
        "opposed": stored["opposed"],
        "ff": ff,
        "label": canvas.label,
        "ff_true": ff_true,
    }
    if anatomy == "complete":
        images["tissue"] = canvas.tissue
        images["vertebrae"] = vertebral_labels(canvas.tissue)
    return images


def _truncate(
    images: dict[str, np.ndarray],
    truth_arrays: dict[str, np.ndarray | None],
    affine: np.ndarray,
    rng: np.random.Generator,
    flags: dict,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray | None], np.ndarray]:
    """Keep a random slab of 45-75 % of the slices of the images and of the truth's arrays (None stays None).

    Returns:
        the cut images, the cut truth arrays and the slab's affine; the kept slice range goes to ``flags``.
    """
    nz = images["label"].shape[2]
    keep = int(round(nz * rng.uniform(0.45, 0.75)))
    k0 = int(rng.integers(0, nz - keep + 1))
    images = {k: v[:, :, k0 : k0 + keep] for k, v in images.items()}
    truth_arrays = {k: None if v is None else v[:, :, k0 : k0 + keep] for k, v in truth_arrays.items()}
    affine = affine.copy()
    affine[:3, 3] += affine[:3, 2] * k0
    flags["truncated_slices"] = [k0, k0 + keep]
    return images, truth_arrays, affine


def _scale_ff(ff: np.ndarray, ff_scale: str) -> np.ndarray:
    """The FF map (a fraction) in the acquisition's stored scale."""
    if ff_scale == "percent":
        return (ff * 100.0).astype(np.float32)
    if ff_scale == "permille":
        return np.rint(ff * 1000.0).astype(np.int16)
    return ff


#: ``crest_height`` choices of ``generate_subject``.
CREST_HEIGHTS = ("fixed", "varied")
#: range (mm along the spine, before the height factor) of the crest shift that ``crest_height="varied"`` draws:
#: the top of the iliac crests from the middle of L5 (-30) to the L3/L4 disc (+18) around the default lower L4
#: body. The intercrestal (Tuffier's) line lies at L4/L5 or L4 in most adults and at L5 or L3/L4 in the rest
#: (lower in women); the real MuscleMap sample's crest is at the lower L5 body.
CREST_SHIFT_RANGE_MM = (-30.0, 18.0)


def crest_shift(seed: int, crest_height: str) -> float:
    """The subject's iliac-crest shift (mm) for ``crest_height``; drawn from its own stream so that every other
    draw of the subject stays as it was."""
    if crest_height not in CREST_HEIGHTS:
        raise ValueError(f"crest_height must be one of {CREST_HEIGHTS}, got {crest_height!r}")
    if crest_height == "fixed":
        return 0.0
    return float(np.random.default_rng([int(seed), 20261206]).uniform(*CREST_SHIFT_RANGE_MM))


def generate_subject(
    seed: int,
    acquisition: Acquisition | None = None,
    participant: Participant | None = None,
    subject_id: str | None = None,
    texture: str = "smooth",
    anatomy: str = "default",
    crest_height: str = "fixed",
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
        crest_height: ``"fixed"`` (default; the iliac crest at the lower L4 body, as in earlier versions) or
            ``"varied"`` (the crest, and the wing, iliacus, gluteus medius and QL end with it, shifted by a draw
            from ``CREST_SHIFT_RANGE_MM``; recorded in ``flags["crest_shift_mm"]``).

    Returns:
        the stored subject (see ``PhantomSubject``).
    """
    if anatomy not in ANATOMIES:
        raise ValueError(f"anatomy must be one of {ANATOMIES}, got {anatomy!r}")
    acq = acquisition or Acquisition()
    sid = subject_id or f"sub-{seed:04d}"
    # one stream, drawn in a fixed order (participant, anatomy, warp, drawing, bias, noise, swap, truncation)
    rng = np.random.default_rng([int(seed), 20261125])
    p = participant or draw_participant(sid, rng)
    anat = make_anatomy(p, rng, texture=texture, texture_seed=int(seed))
    anat.crest_shift_mm = crest_shift(seed, crest_height)
    grid = acqmod.make_grid(acq)
    canvas = _paint_anatomy(anat, acq, grid, rng, anatomy)
    targets = {label_value(m, s): v for (m, s), v in anat.muscle_ff.items()}
    ff_true = _match_label_ff(canvas, targets, texture, anatomy)
    stored = _acquire(anat, acq, grid, canvas, rng)
    # the written swap is an acquisition artefact: truth keeps the unswapped values
    flags: dict = {"swap": acq.swap}
    swap_mask = _swap_mask(acq, grid, canvas.label.shape, rng, flags)
    images = _written_images(stored, swap_mask, canvas, ff_true, anatomy)
    truth_arrays = {"water": stored["water"], "fat": stored["fat"], "swap": swap_mask}
    affine = grid.affine
    if acq.coverage == "truncated":
        images, truth_arrays, affine = _truncate(images, truth_arrays, affine, rng, flags)
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    truth = _truth_table(
        sid,
        images["label"],
        truth_arrays["water"],
        truth_arrays["fat"],
        images["ff_true"],
        targets,
        voxel_ml,
        truth_arrays["swap"],
    )
    images["ff"] = _scale_ff(images["ff"], acq.ff_scale)
    out_affine = affine
    for k in list(images):
        images[k], out_affine = acqmod.reorient(images[k], affine, acq.orientation)
    flags["muscle_ff_target"] = {f"{m}_{s}": v for (m, s), v in anat.muscle_ff.items()}
    if anatomy != "default":
        flags["anatomy"] = anatomy
    if crest_height != "fixed":
        flags["crest_shift_mm"] = round(anat.crest_shift_mm, 2)
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
