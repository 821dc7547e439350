"""The anatomy-complete phantom (``anatomy="complete"``): the default anatomy's targets among the structures a
network confuses with them on real scans.

Beyond the default phantom (``anatomy_default.draw_subject``) it draws the abdominal wall muscles, latissimus
dorsi, serratus posterior inferior, diaphragm crura, aorta, IVC and iliac vessels, kidneys with perirenal and
renal-sinus fat, liver and spleen tips, bowel loops with gas, fluid and fat-containing content, ascending and
descending colon, the 11th and 12th ribs, the lung bases in the diaphragm, gluteus maximus and medius, vertebrae
with kidney-bean bodies, discs and posterior elements, and a sacrum with alae (``organs``, ``spine``). The psoas is
drawn as it is in life: small at its T12-L1 origin, growing caudally, its medial side in the groove beside the
vertebral bodies (the bodies, painted after it, carve the groove) and in front of the transverse processes.

QL and iliacus keep the default anatomy's courses; ES+MF keeps it from L3 down and above it is the flat, wide band
of real scans (``COMPLETE_BACK_MUSCLE_KEYFRAMES``). Every structure gets an id in the tissue map
(``tissue_ids.TISSUE_IDS``); target-muscle voxels carry their label value. Coordinates: RAS world millimetres.
"""

from __future__ import annotations

import copy

import numpy as np
from scripts.labels import label_value
from scripts.phantom.anatomy import (
    BACK_MUSCLE_KEYFRAMES,
    ILIACUS_KEYFRAMES,
    MUSCLE_SIGNAL,
    TISSUES,
    KeyframeBuilder,
    SubjectAnatomy,
    muscle_ff_field,
)
from scripts.phantom.organs import (
    BodyWall,
    draw_colon,
    draw_lung_bases,
    draw_organs,
    draw_ribs,
    draw_trunk,
    draw_vessels_and_crura,
    draw_wall_muscles,
)
from scripts.phantom.render import Structure, Tissue
from scripts.phantom.spine import draw_body_sizes, draw_pelvis_bones, draw_spine
from scripts.phantom.textures import SmoothNoise
from scripts.phantom.tissue_canvas import TissueCanvas
from scripts.phantom.tissue_ids import tissue_id

__all__ = ["ANATOMIES", "COMPLETE_BACK_MUSCLE_KEYFRAMES", "draw_subject_complete", "psoas_keyframes"]

#: generator anatomies: the default phantom (byte-identical to earlier versions) and the anatomy-complete one.
ANATOMIES = ("default", "complete")

#: the back muscles of the complete anatomy: the default courses, except ES+MF at and above L2 (z_rel 130-290).
#: Two real upper-abdominal label maps (TotalSegmentator's CT and MR samples, ``scripts.studies.phantom_real_upper``)
#: agree there: the erector spinae spreads laterally over the ribs into a flat band, its centroid 40-45 mm from the
#: midline with an equivalent semi-major axis of 37-42 mm and a semi-minor of 10-17 mm, where the default course
#: stays a compact oval (27-31 mm, 24-28 mm, 19 mm). The number of keyframes is unchanged, so every later draw of
#: the subject's random stream is too.
COMPLETE_BACK_MUSCLE_KEYFRAMES: dict[str, tuple[dict, dict]] = copy.deepcopy(BACK_MUSCLE_KEYFRAMES)
COMPLETE_BACK_MUSCLE_KEYFRAMES["erector_spinae_multifidus"][0].update(
    cx=[30, 38, 41, 38, 34, 34, 31, 25, 18, 13, 10],
    # the anterior edge (cy + b) moves back by half the thinning, the posterior edge forward by the other half
    cy=[-42.5, -42.5, -45.5, -48, -51, -52, -50, -43, -30, -22, -20],
    a=[28, 35, 40, 37, 34, 34, 30, 23, 16, 10, 4],
    b=[12, 13, 16, 19, 23, 23, 22, 17, 12, 8, 3],
)

#: psoas keyframe heights (z_rel, mm above L5/S1) and the vertebral level whose body it lies against there.
_PSOAS_Z = (214, 200, 180, 155, 125, 90, 55, 20, -10, -35, -75, -115, -150)
_PSOAS_LEVEL = ("T12", "T12", "L1", "L1", "L2", "L3", "L4", "L5")


def psoas_keyframes(sizes: dict[str, tuple[float, float]]) -> dict:
    """Psoas cross-sections (``KeyframeBuilder.shape`` arguments, right side) for the subject's vertebral bodies.

    Above the sacrum the centre sits 0.65 (T12-L3) to 1.1 (L5) semi-axis lateral of the body's side (``sizes`` ->
    body semi-axes, mm), so the body cuts a groove in its medial side. Semi-axes grow from 2.5-3 mm in the middle
    of T12 (0.24 cm^2) to 15.5 x 20 mm at L5 (~10 cm^2); below S1 the muscle moves antero-laterally towards the
    iliacus as in the default anatomy.
    """
    a = [2.5, 4, 5.5, 7, 9.5, 12, 14, 15.5, 16, 16.5, 17.5, 16, 15]
    b = [3, 4.5, 6.5, 9, 12.5, 16, 18.5, 20, 19, 16.5, 15, 14, 13]
    # deep in the groove up to L3, leaving it antero-laterally at L4-L5 (the lateral offsets of the real sample)
    lateral = [0.65, 0.65, 0.65, 0.65, 0.65, 0.7, 0.85, 1.1]
    cx = [sizes[lv][0] + f * ai for lv, f, ai in zip(_PSOAS_LEVEL, lateral, a)] + [50, 58, 66, 72, 76]
    # just in front of the transverse processes (whose anterior surface lies ~5 mm behind the body's back wall)
    cy = [-6, -6, -6, -5, -4, -4, -3, 1, 14, 26, 39, 45, 46]
    theta = [0.3, 0.3, 0.3, 0.2, 0.2, 0.17, 0.17, 0.17, 0.3, 0.35, 0.35, 0.35, 0.35]
    return dict(z_rel=list(_PSOAS_Z), cx=cx, cy=cy, a=a, b=b, theta=theta)


def _gluteals(builder: KeyframeBuilder, canvas: TissueCanvas, muscle: Tissue) -> None:
    """Gluteus medius on the outer face of the iliac wing, gluteus maximus behind the wing and sacrum."""
    for side in ("left", "right"):
        med = builder.shape(
            [45, 25, 0, -30, -60, -90],
            [96, 104, 106, 104, 100, 98],
            [-28, -30, -30, -26, -20, -12],
            [8, 20, 26, 28, 24, 18],
            [4, 11, 15, 17, 15, 11],
            [0.5, 0.55, 0.62, 0.7, 0.8, 0.9],
            side=side,
            crest=(-60.0, 45.0),
        )
        canvas.draw_id(
            Structure(f"gluteus_medius_{side}", med, muscle, shell_mm=1.2, shell_tissue=TISSUES["fascia"]),
            tissue_id(f"gluteus_medius_{side}"),
            shell_tid=tissue_id("muscle_fascia"),
        )
        mx = builder.shape(
            [-5, -25, -50, -80, -110, -150],
            [58, 70, 80, 86, 90, 94],
            [-58, -60, -60, -56, -50, -44],
            [8, 22, 32, 38, 38, 34],
            [5, 13, 19, 23, 23, 21],
            [0.45, 0.5, 0.55, 0.6, 0.65, 0.7],
            side=side,
        )
        canvas.draw_id(
            Structure(f"gluteus_maximus_{side}", mx, muscle, shell_mm=1.2, shell_tissue=TISSUES["fascia"]),
            tissue_id(f"gluteus_maximus_{side}"),
            shell_tid=tissue_id("muscle_fascia"),
        )


def _target_muscles(
    anat: SubjectAnatomy,
    builder: KeyframeBuilder,
    canvas: TissueCanvas,
    marbling: SmoothNoise,
    septa: SmoothNoise | None,
    sizes: dict[str, tuple[float, float]],
) -> None:
    """ES+MF, QL (default courses), psoas (against the bodies) and iliacus, labelled 1-8 in label and tissue map."""

    def muscle(
        name: str, side: str, shape_args: dict, caudal_gradient: float, z_mid_rel: float, lateral_gradient: float = 0.0
    ) -> None:
        ff = anat.muscle_ff[(name, side)]
        shp = builder.shape(side=side, scale=anat.muscle_scale[(name, side)], **shape_args)
        fld = muscle_ff_field(
            anat, canvas, marbling, ff, caudal_gradient, float(anat.z(z_mid_rel)), septa, lateral_gradient
        )
        value = label_value(name, side)
        canvas.draw_id(
            Structure(
                f"{name}_{side}",
                shp,
                Tissue(name, MUSCLE_SIGNAL, ff),
                label=value,
                shell_mm=1.2,
                shell_tissue=TISSUES["fascia"],
                ff_field=fld,
                fat_signal=None if septa is None else TISSUES["subcutaneous_fat"].signal,
            ),
            value,
            shell_tid=tissue_id("muscle_fascia"),
        )

    for side in ("left", "right"):
        for name, (shape_args, muscle_kwargs) in COMPLETE_BACK_MUSCLE_KEYFRAMES.items():
            muscle(name, side, copy.deepcopy(shape_args), **muscle_kwargs)
        muscle("psoas", side, psoas_keyframes(sizes), caudal_gradient=0.0, z_mid_rel=80)
        muscle("iliacus", side, copy.deepcopy(ILIACUS_KEYFRAMES[0]), **ILIACUS_KEYFRAMES[1])


def draw_subject_complete(
    anat: SubjectAnatomy, canvas: TissueCanvas, rng: np.random.Generator
) -> dict[str, tuple[float, float]]:
    """Paint the anatomy-complete subject onto ``canvas``; returns landmark z ranges (world mm).

    Painting order is the occlusion order: trunk and viscera, organs, vessels and crura, wall muscles, gluteals and
    target muscles, then bones (which carve the muscles, e.g. the psoas groove). Afterwards every labelled voxel
    gets its muscle's tissue id, so the tissue map agrees with the label map by construction.
    """
    builder = KeyframeBuilder(anat, rng)
    landmarks: dict[str, tuple[float, float]] = {}
    marbling = SmoothNoise(canvas.grid, (2.5, 2.5, 14.0), rng)
    septa = None
    if anat.texture == "septa":
        septa = SmoothNoise(canvas.grid, (6.0, 6.0, 30.0), np.random.default_rng([anat.texture_seed, 20261126]))
    wall = BodyWall(anat, builder, rng)
    draw_trunk(anat, wall, canvas, rng)
    draw_colon(anat, wall, builder, canvas, rng)
    draw_organs(anat, wall, builder, canvas)
    # a stream of their own (from the subject's seed): the lungs came after the other draws and must not move them
    draw_lung_bases(anat, wall, canvas, np.random.default_rng([anat.texture_seed, 20261207]))
    sizes = draw_body_sizes(rng)
    draw_vessels_and_crura(anat, builder, canvas, rng, sizes["L3"][1])
    draw_wall_muscles(anat, wall, canvas)
    _gluteals(builder, canvas, Tissue("gluteal", TISSUES["muscle_other"].signal, anat.other_muscle_ff))
    _target_muscles(anat, builder, canvas, marbling, septa, sizes)
    draw_pelvis_bones(anat, builder, canvas, landmarks)
    draw_spine(anat, builder, canvas, sizes, landmarks)
    draw_ribs(anat, builder, canvas)
    lab = canvas.label > 0
    canvas.tissue[lab] = canvas.label[lab]
    return landmarks
