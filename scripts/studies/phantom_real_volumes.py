"""The two sides of the phantom-vs-real comparison as :class:`~scripts.studies.phantom_real_measures.Volume`
objects with spine-relative slice positions: the real MuscleMap lumbar sample (levels from the intervertebral discs
found in its image) and phantom subjects (levels exact, from the subject's anatomy). The method is described in
:mod:`scripts.studies.compare_phantom_real`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scripts.labels import label_value
from scripts.phantom import Acquisition, generate_subject
from scripts.phantom.anatomy import SubjectAnatomy
from scripts.phantom.generate import make_anatomy
from scripts.phantom.population import draw_participant
from scripts.studies.phantom_real_measures import (
    COMPARED_MUSCLES,
    DISC_CENTRE_REL,
    DISC_NAMES,
    LEVEL_MM,
    Volume,
    spine_reference,
)

__all__ = [
    "REAL_SAMPLE_DIR",
    "REAL_IMAGE",
    "REAL_LABEL",
    "MUSCLEMAP_TO_BUNDLE",
    "vertebral_body_profile",
    "detect_discs",
    "load_real_sample",
    "phantom_anatomy",
    "phantom_volume",
]

#: the MuscleMap lumbar sample beside the checkout (``<checkout>/../shared``).
REAL_SAMPLE_DIR: Path = Path(__file__).resolve().parents[3] / "shared" / "real-samples" / "musclemap_lumbar_sub0001"
REAL_IMAGE = "sub0001_lumbar_axial_mri.nii.gz"
REAL_LABEL = "sub0001_lumbar_axial_mri_dseg_musclemap_abdomen_v0.nii.gz"

#: MuscleMap abdomen labels -> bundle labels (multifidus and erector spinae merge per side).
MUSCLEMAP_TO_BUNDLE: dict[int, int] = {
    1: label_value("erector_spinae_multifidus", "right"),  # R multifidus
    2: label_value("erector_spinae_multifidus", "left"),  # L multifidus
    3: label_value("erector_spinae_multifidus", "right"),  # R erector spinae
    4: label_value("erector_spinae_multifidus", "left"),  # L erector spinae
    5: label_value("psoas", "right"),
    6: label_value("psoas", "left"),
    7: label_value("quadratus_lumborum", "right"),
    8: label_value("quadratus_lumborum", "left"),
}
#: bounds of the spine-reference box searched for discs (mm in front of the ES+MF anterior edge, mm either side).
_BODY_BOX_MM: tuple[float, float, float] = (20.0, 45.0, 8.0)


# ---- the real sample ------------------------------------------------------------------------------------------------
def vertebral_body_profile(image: np.ndarray, label: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Per slice, the median intensity of a box where the vertebral body lies (NaN without a spine reference).

    The box spans 20-45 mm in front of the ES+MF anterior edge and 8 mm either side of the midline.
    """
    lo, hi, half = _BODY_BOX_MM
    out = np.full(image.shape[2], np.nan)
    for k in range(image.shape[2]):
        ref = spine_reference(label[:, :, k], spacing[:2])
        if ref is None:
            continue
        x0, y0 = ref
        xs = slice(max(int(round((x0 - half) / spacing[0])), 0), int(round((x0 + half) / spacing[0])) + 1)
        ys = slice(max(int(round((y0 + lo) / spacing[1])), 0), int(round((y0 + hi) / spacing[1])) + 1)
        box = image[xs, ys, k]
        if box.size:
            out[k] = float(np.median(box))
    return out


def detect_discs(profile: np.ndarray, dark_fraction: float = 0.5) -> list[float]:
    """Centres (fractional slice index) of the intervertebral discs seen as dips of ``profile``.

    A run of consecutive slices darker than ``dark_fraction`` times the profile's median is one disc; its centre is
    the darkness-weighted mean slice. Runs touching the first or last slice are incomplete and are left out.
    """
    p = np.asarray(profile, dtype=np.float64)
    thr = dark_fraction * float(np.nanmedian(p))
    dark = np.nan_to_num(p, nan=np.inf) < thr
    centres: list[float] = []
    k = 0
    n = p.size
    while k < n:
        if not dark[k]:
            k += 1
            continue
        j = k
        while j + 1 < n and dark[j + 1]:
            j += 1
        if k > 0 and j < n - 1:
            idx = np.arange(k, j + 1)
            w = thr - p[idx]
            centres.append(float(np.sum(idx * w) / np.sum(w)))
        k = j + 1
    return centres


def load_real_sample(directory: str | Path = REAL_SAMPLE_DIR, lowest_disc: str = "L5/S1") -> Volume:
    """Load the MuscleMap lumbar sample as RAS (``as_closest_canonical``) with bundle labels and spine levels.

    Args:
        directory: folder holding the image and its MuscleMap abdomen labels.
        lowest_disc: name of the lowest complete disc found by :func:`detect_discs` (the sample's slices 0-2 show
            the sacral alae and sacro-iliac joints, so the lowest disc is L5/S1).

    Returns:
        the scan as a :class:`Volume`; ``info`` holds the disc positions and the real level height.

    Raises:
        FileNotFoundError: when the files are absent.
        ValueError: when the labels' left and right are inconsistent with the RAS x axis, or no disc is found.
    """
    d = Path(directory)
    img = nib.as_closest_canonical(nib.load(str(d / REAL_IMAGE)))
    lab = nib.as_closest_canonical(nib.load(str(d / REAL_LABEL)))
    image = np.asarray(img.dataobj, dtype=np.float32)
    mm = np.asarray(lab.dataobj).astype(np.int64)
    lut = np.zeros(max(MUSCLEMAP_TO_BUNDLE) + 1, np.uint8)
    for src, dst in MUSCLEMAP_TO_BUNDLE.items():
        lut[src] = dst
    label = lut[np.clip(mm, 0, lut.size - 1)]
    spacing = tuple(float(v) for v in img.header.get_zooms()[:3])
    # RAS: +x is the patient's right, so every right-sided muscle must lie at larger x than its left partner
    for muscle in COMPARED_MUSCLES:
        xl = np.argwhere(label == label_value(muscle, "left"))[:, 0].mean()
        xr = np.argwhere(label == label_value(muscle, "right"))[:, 0].mean()
        if not xr > xl:
            raise ValueError(f"{muscle}: right label at x index {xr:.1f} is not right of left at {xl:.1f}")
    profile = vertebral_body_profile(image, label, spacing)  # type: ignore[arg-type]
    discs = detect_discs(profile)
    if not discs:
        raise ValueError("no intervertebral disc found in the real scan's vertebral-body profile")
    first = DISC_NAMES.index(lowest_disc)
    level_mm = float(np.median(np.diff(discs))) * spacing[2] if len(discs) > 1 else LEVEL_MM
    height_factor = level_mm / LEVEL_MM
    k = np.arange(image.shape[2], dtype=np.float64)
    z_mm = (k - discs[0]) * spacing[2] + (DISC_CENTRE_REL[lowest_disc] - DISC_CENTRE_REL["L5/S1"]) * height_factor
    z_rel = DISC_CENTRE_REL["L5/S1"] + z_mm / height_factor
    info: dict[str, object] = {
        "discs": {DISC_NAMES[first + i]: round(c, 2) for i, c in enumerate(discs)},
        "level_mm": level_mm,
        "height_factor": height_factor,
        "body_profile": profile,
        "orientation_on_disk": "".join(nib.aff2axcodes(nib.load(str(d / REAL_IMAGE)).affine)),
    }
    return Volume("real", image, label, spacing, z_mm, z_rel, info=info)  # type: ignore[arg-type]


# ---- phantom subjects ------------------------------------------------------------------------------------------------
def phantom_anatomy(seed: int, subject_id: str | None = None) -> SubjectAnatomy:
    """The anatomy (height factor, offsets, muscle scales) that :func:`generate_subject` draws for ``seed``.

    It repeats the first draws of ``generate_subject`` (participant, then anatomy) from the same generator, so it
    holds for subjects generated with the default participant.
    """
    sid = subject_id or f"sub-{seed:04d}"
    rng = np.random.default_rng([int(seed), 20261125])
    return make_anatomy(draw_participant(sid, rng), rng)


def phantom_volume(
    seed: int,
    geometry: str = "reference",
    extra_keys: Sequence[str] = ("water", "fat", "ff"),
    texture: str = "smooth",
    anatomy: str = "default",
) -> Volume:
    """Generate phantom subject ``seed`` (RAS, full coverage) and attach its spine-relative slice positions.

    Args:
        seed: subject seed.
        geometry: acquisition preset ("reference", "low" or "tiny").
        extra_keys: other images kept in ``Volume.extra`` (of "water", "fat", "ff", "opposed"; FF as stored; with
            ``anatomy="complete"`` also "tissue" and "vertebrae").
        texture: the phantom's texture, "smooth" or "septa" (see :func:`scripts.phantom.generate_subject`).
        anatomy: "default" or "complete" (see :func:`scripts.phantom.generate_subject`).

    Returns:
        the subject as a :class:`Volume` (image = in-phase).
    """
    subj = generate_subject(seed, Acquisition.preset(geometry), texture=texture, anatomy=anatomy)
    anat = phantom_anatomy(seed, subj.subject_id)
    canon = nib.as_closest_canonical(nib.Nifti1Image(subj.images["label"], subj.affine))
    if not np.allclose(canon.affine, subj.affine):
        raise ValueError("phantom subject is not stored RAS; pass an RAS acquisition")
    aff = subj.affine
    k = np.arange(subj.images["label"].shape[2], dtype=np.float64)
    zw = aff[2, 2] * k + aff[2, 3]
    z_rel = (zw - anat.offset_mm[2]) / anat.height_factor
    z_mm = zw - float(anat.z(DISC_CENTRE_REL["L5/S1"]))
    spacing = tuple(float(v) for v in np.sqrt((aff[:3, :3] ** 2).sum(0)))
    extra = {key: subj.images[key] for key in extra_keys}
    info: dict[str, object] = {
        "seed": seed,
        "height_factor": anat.height_factor,
        "width_factor": anat.width_factor,
        "sex": anat.sex,
        "bmi": anat.bmi,
        "sat_mm": anat.sat_mm,
        "muscle_scale": {f"{m}_{s}": round(v, 3) for (m, s), v in anat.muscle_scale.items()},
    }
    return Volume(
        subj.subject_id,
        subj.images["inphase"].astype(np.float32),
        subj.images["label"],
        spacing,
        z_mm,
        z_rel,
        extra=extra,
        info=info,
    )  # type: ignore[arg-type]
