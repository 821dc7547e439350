"""The default anatomy of the lumbar Dixon phantom (``anatomy="default"``), painted group by group.

Trunk and visceral cavity, kidneys and liver, the gluteals and the labelled muscles (courses in ``anatomy``), then
the pelvis, the vertebrae T11-L5 and the spinal canal. Muscles are painted before bones, so vertebrae, transverse
processes and the iliac wing carve them as in life; each labelled muscle carries a thin fat shell, so neighbours are
separated by fat planes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scripts.labels import label_value
from scripts.phantom.anatomy import (
    BACK_MUSCLE_KEYFRAMES,
    ILIACUS_KEYFRAMES,
    MUSCLE_SIGNAL,
    TISSUES,
    KeyframeBuilder,
    SubjectAnatomy,
    femoral_head,
    iliac_wing,
    muscle_ff_field,
)
from scripts.phantom.render import Canvas, Shape, Structure, Tissue
from scripts.phantom.textures import SmoothNoise

__all__ = ["draw_subject"]


@dataclass
class _Textures:
    """The subject's noise fields, drawn once before anything is painted (their draw order fixes the stream).

    Attributes:
        bowel: bowel versus visceral fat in the abdominal cavity.
        marbling: intramuscular fat streaks.
        septa: fat septa between muscle fascicles (``"septa"`` texture only).
        loops: mesenteric fat between bowel loops (``"septa"`` texture only).
        loop_signal: signal of the bowel loops' content (``"septa"`` texture only).
    """

    bowel: SmoothNoise
    marbling: SmoothNoise
    septa: SmoothNoise | None = None
    loops: SmoothNoise | None = None
    loop_signal: SmoothNoise | None = None


def _draw_textures(anat: SubjectAnatomy, canvas: Canvas, rng: np.random.Generator) -> _Textures:
    """The subject's noise fields; the ``"septa"`` ones come from their own stream (see ``SubjectAnatomy``)."""
    grid = canvas.grid
    tex = _Textures(bowel=SmoothNoise(grid, (14.0, 14.0, 20.0), rng), marbling=SmoothNoise(grid, (2.5, 2.5, 14.0), rng))
    if anat.texture == "septa":
        trng = np.random.default_rng([anat.texture_seed, 20261126])
        tex.septa = SmoothNoise(grid, (6.0, 6.0, 30.0), trng)
        tex.loops = SmoothNoise(grid, (9.0, 9.0, 9.0), trng)
        tex.loop_signal = SmoothNoise(grid, (12.0, 12.0, 12.0), trng)
    return tex


def _viscera_fill(anat: SubjectAnatomy, canvas: Canvas, tex: _Textures) -> Callable:
    """Abdominal cavity fill: bowel in front, retroperitoneal and visceral fat behind and between.

    Returns a callable(bbox slices) -> (water, fat), each of the bbox's shape.
    """
    vis = anat.visceral

    def viscera(sl: tuple[slice, slice, slice]):
        n = tex.bowel.sample_bbox(sl)
        yy = canvas.y[sl[1]][None, :, None]
        zz = canvas.z[sl[2]][None, None, :]
        # retroperitoneum next to the spine is fat, bowel fills the anterior cavity; more visceral fat, less bowel
        post = np.clip((yy - anat.y_spine(zz) - 5.0) / 40.0, 0, 1)
        m = post / (1.0 + np.exp(-(n - (vis - 0.3)) / 0.25))
        gas = (n > 2.2).astype(np.float32)
        bw, bf = TISSUES["bowel"].signal * (1 - TISSUES["bowel"].ff), TISSUES["bowel"].signal * TISSUES["bowel"].ff
        if tex.loops is not None:
            # loops of varied content separated by mesenteric fat, reaching back to the psoas
            post = np.clip((yy - anat.y_spine(zz) + 5.0) / 30.0, 0, 1)
            m = post / (1.0 + np.exp(-(n - (vis - 0.3)) / 0.25))
            m = m * (1.0 - np.exp(-((tex.loops.sample_bbox(sl) / 0.3) ** 2)))
            gain = np.clip(np.exp(0.6 * tex.loop_signal.sample_bbox(sl)), 0.3, 2.2)
            bw, bf = bw * gain, bf * gain
        vw, vf = (
            TISSUES["visceral_fat"].signal * (1 - TISSUES["visceral_fat"].ff),
            TISSUES["visceral_fat"].signal * TISSUES["visceral_fat"].ff,
        )
        w = (m * bw + (1 - m) * vw) * (1 - 0.9 * gas * m)
        f = (m * bf + (1 - m) * vf) * (1 - 0.9 * gas * m)
        return w.astype(np.float32), f.astype(np.float32)

    return viscera


def _draw_trunk(anat: SubjectAnatomy, canvas: Canvas, builder: KeyframeBuilder, tex: _Textures) -> None:
    """Skin, subcutaneous fat, the abdominal and back muscle wall, and the visceral cavity inside it."""
    vis = anat.visceral
    sat = anat.sat_mm
    zk = np.array([-150, -100, -40, 20, 60, 110, 160, 210, 290])
    rx = np.array([170, 172, 165, 148, 135, 128, 128, 132, 138]) + 18 * vis
    ry = np.array([95, 98, 100, 100, 98, 100, 102, 106, 110]) + np.array([0, 5, 10, 20, 30, 35, 30, 25, 20]) * vis
    back = 82.0  # distance from the vertebral-body centre to the posterior muscle surface
    outer = rx + sat + 2.0, ry + (sat + 2.0) / 2.0
    # the trunk centre sits anterior to the spine so that the back surface lies ``back`` mm behind it
    trunk = builder.shape(zk, 0.0, -back + ry - sat / 2.0, outer[0], outer[1], p=2.3, jitter=0.03)
    wall = 10.0 + 3.0 * (anat.sex == "M")
    canvas.draw_layers(
        trunk,
        [
            (0.0, TISSUES["skin"]),
            (2.0, TISSUES["subcutaneous_fat"]),
            (2.0 + sat, Tissue("muscle_wall", TISSUES["muscle_other"].signal, anat.other_muscle_ff)),
            (2.0 + sat + wall, _viscera_fill(anat, canvas, tex)),
        ],
    )


def _draw_organs(canvas: Canvas, builder: KeyframeBuilder) -> None:
    """The kidneys (the left one higher) in perirenal fat, and the liver tip on the right."""
    for side, dz in (("left", 12.0), ("right", 0.0)):
        kz = np.array([95, 115, 150, 190, 215]) + dz
        canvas.draw(
            Structure(
                f"kidney_{side}",
                builder.shape(
                    kz,
                    [74, 78, 80, 76, 70],
                    [10, 12, 14, 12, 8],
                    [12, 24, 29, 24, 10],
                    [10, 19, 22, 19, 8],
                    0.5,
                    side=side,
                ),
                TISSUES["kidney"],
                shell_mm=7.0,
                shell_tissue=TISSUES["visceral_fat"],
            )
        )
    canvas.draw(
        Structure(
            "liver",
            builder.shape(
                [150, 185, 230, 300],
                [70, 72, 70, 68],
                [35, 40, 40, 40],
                [25, 60, 75, 80],
                [20, 45, 60, 65],
                0.2,
                side="right",
            ),
            TISSUES["liver"],
        )
    )


def _draw_labelled_muscle(
    anat: SubjectAnatomy,
    canvas: Canvas,
    builder: KeyframeBuilder,
    tex: _Textures,
    name: str,
    side: str,
    shape_args: dict,
    caudal_gradient: float,
    z_mid_rel: float,
    lateral_gradient: float = 0.0,
) -> None:
    """One labelled muscle of ``side`` in its fascia shell, its FF field per ``muscle_ff_field``."""
    sc = anat.muscle_scale[(name, side)]
    ff = anat.muscle_ff[(name, side)]
    shp = builder.shape(side=side, scale=sc, **shape_args)
    fld = muscle_ff_field(
        anat, canvas, tex.marbling, ff, caudal_gradient, float(anat.z(z_mid_rel)), tex.septa, lateral_gradient
    )
    canvas.draw(
        Structure(
            f"{name}_{side}",
            shp,
            Tissue(name, MUSCLE_SIGNAL, ff),
            label=label_value(name, side),
            shell_mm=1.2,
            shell_tissue=TISSUES["fascia"],
            ff_field=fld,
            fat_signal=None if tex.septa is None else TISSUES["subcutaneous_fat"].signal,
        )
    )


def _draw_muscles(anat: SubjectAnatomy, canvas: Canvas, builder: KeyframeBuilder, tex: _Textures) -> None:
    """The unlabelled gluteals, then the labelled muscles side by side (the bones painted later carve them)."""
    for side in ("left", "right"):
        canvas.draw(
            Structure(
                f"gluteal_{side}",
                builder.shape(
                    [45, 10, -30, -70, -110, -150],
                    [92, 100, 102, 98, 95, 95],
                    [-45, -58, -62, -58, -48, -42],
                    [12, 33, 45, 50, 46, 42],
                    [7, 18, 28, 34, 30, 28],
                    0.5,
                    side=side,
                    crest=(-70.0, 45.0),
                ),
                Tissue("gluteal", TISSUES["muscle_other"].signal, anat.other_muscle_ff),
                shell_mm=1.5,
                shell_tissue=TISSUES["fascia"],
            )
        )
    for side in ("left", "right"):
        for name, (shape_args, muscle_kwargs) in BACK_MUSCLE_KEYFRAMES.items():
            _draw_labelled_muscle(anat, canvas, builder, tex, name, side, copy.deepcopy(shape_args), **muscle_kwargs)
        _draw_labelled_muscle(
            anat,
            canvas,
            builder,
            tex,
            "psoas",
            side,
            dict(
                z_rel=[212, 195, 160, 120, 80, 40, 5, -35, -75, -115, -150],
                cx=[25, 28, 33, 34, 38, 42, 48, 58, 66, 72, 76],
                cy=[1, 2, 4, -2, -4, 0, 14, 33, 41, 45, 46],
                a=[3, 6.5, 10.5, 11, 12.5, 15.5, 18, 19.5, 17.5, 16, 15],
                b=[3, 7.5, 11.5, 16, 18, 20.5, 19, 16.5, 15, 14, 13],
                theta=[0.35, 0.35, 0.3, 0.17, 0.17, 0.17, 0.17, 0.35, 0.35, 0.35, 0.35],
            ),
            caudal_gradient=0.0,
            z_mid_rel=80,
        )
        # iliacus lies on the inner (antero-medial) face of the iliac wing and joins psoas below the brim
        _draw_labelled_muscle(
            anat, canvas, builder, tex, "iliacus", side, copy.deepcopy(ILIACUS_KEYFRAMES[0]), **ILIACUS_KEYFRAMES[1]
        )


def _draw_pelvis(anat: SubjectAnatomy, canvas: Canvas, builder: KeyframeBuilder, marrow: Tissue) -> Shape:
    """Iliac wings, femoral heads and the sacrum; returns the sacrum's shape (for its landmark)."""
    for side in ("left", "right"):
        canvas.draw(iliac_wing(builder, side, marrow))
        canvas.draw(femoral_head(builder, anat, side))
    sacrum = builder.shape(
        [6, -10, -30, -50, -70, -90, -108],
        0.0,
        [0, -2, -3, -3, -3, -3, -3],
        [26, 48, 42, 32, 22, 14, 6],
        [16, 16, 14, 12, 10, 8, 4],
        p=3.0,
        y_mode="spine",
        jitter=0.03,
    )
    canvas.draw(Structure("sacrum", sacrum, marrow, shell_mm=1.5, shell_tissue=TISSUES["cortical_bone"]))
    return sacrum


def _draw_vertebra(
    canvas: Canvas, builder: KeyframeBuilder, rng: np.random.Generator, marrow: Tissue, k: int, name: str
) -> Shape:
    """Vertebra ``name`` (``k`` levels above L5): body, the disc below it, arch, spinous and transverse processes.

    Returns the body's shape (for its landmark).
    """
    z0, z1 = 5 + 36 * k, 32 + 36 * k
    av = (25.0 - 0.9 * k) * np.exp(rng.normal(0, 0.03))
    bv = (17.0 - 0.4 * k) * np.exp(rng.normal(0, 0.03))
    zz = [z0, z0 + 1.5, (z0 + z1) / 2, z1 - 1.5, z1]
    body = builder.shape(
        zz,
        0.0,
        0.0,
        [av - 2, av, av - 0.5, av, av - 2],
        [bv - 2, bv, bv - 0.5, bv, bv - 2],
        y_mode="spine",
        jitter=0.0,
    )
    canvas.draw(Structure(f"{name}_body", body, marrow, shell_mm=1.5, shell_tissue=TISSUES["cortical_bone"]))
    disc = builder.shape([z0 - 9.5, z0 - 4.5, z0 + 0.5], 0.0, 0.0, av + 0.5, bv + 0.5, y_mode="spine", jitter=0.0)
    canvas.draw(Structure(f"disc_below_{name}", disc, TISSUES["disc"]))
    arch = builder.shape(
        [z0 + 4, z0 + 8, z1 + 2, z1 + 6], 0.0, -bv - 13, 16, [9, 12, 12, 9], y_mode="spine", jitter=0.0
    )
    canvas.draw(Structure(f"{name}_arch", arch, marrow, shell_mm=1.5, shell_tissue=TISSUES["cortical_bone"]))
    spin = builder.shape(
        [z0 + 1, z0 + 5, z1 - 1, z1 + 3], 0.0, -bv - 36, 3.5, [14, 18, 18, 14], p=4.0, y_mode="spine", jitter=0.0
    )
    canvas.draw(Structure(f"{name}_spinous", spin, marrow, shell_mm=1.2, shell_tissue=TISSUES["cortical_bone"]))
    tp_len = 15.0 + (4.0 if k in (1, 2, 3) else 0.0) - (5.0 if k >= 5 else 0.0)
    for side in ("left", "right"):
        tp = builder.shape(
            [z1 - 16, z1 - 13, z1 - 6, z1 - 3],
            av + 0.6 * tp_len,
            -bv - 2,
            tp_len,
            [3, 4.5, 4.5, 3],
            0.12,
            side=side,
            y_mode="spine",
            jitter=0.0,
        )
        canvas.draw(
            Structure(f"{name}_transverse_{side}", tp, marrow, shell_mm=1.0, shell_tissue=TISSUES["cortical_bone"])
        )
    return body


def _draw_spinal_canal(canvas: Canvas, builder: KeyframeBuilder) -> None:
    """The CSF-filled spinal canal from the sacrum to the top of the field."""
    canal = builder.shape(
        [-70, -40, 0, 60, 120, 180, 240, 300],
        0.0,
        [-18, -22, -27, -27, -27, -26, -26, -26],
        [4, 7, 10, 10.5, 11, 10.5, 10, 10],
        [3, 5, 7.5, 8, 8.5, 8, 8, 8],
        y_mode="spine",
        jitter=0.0,
    )
    canvas.draw(Structure("spinal_canal", canal, TISSUES["csf"]))


def draw_subject(anat: SubjectAnatomy, canvas: Canvas, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """Paint the whole subject onto ``canvas``; returns landmark z ranges (world mm) for the record.

    Each group is painted in a fixed order (later ones overwrite earlier ones, and each draws from ``rng`` in turn),
    so the same ``rng`` state always gives the same subject.
    """
    builder = KeyframeBuilder(anat, rng)
    tex = _draw_textures(anat, canvas, rng)
    _draw_trunk(anat, canvas, builder, tex)
    _draw_organs(canvas, builder)
    _draw_muscles(anat, canvas, builder, tex)
    marrow = Tissue("marrow", 0.70, anat.marrow_ff)
    landmarks: dict[str, tuple[float, float]] = {"sacrum": _draw_pelvis(anat, canvas, builder, marrow).z_range}
    # T11-L5, from the bottom up
    for k, name in enumerate(["L5", "L4", "L3", "L2", "L1", "T12", "T11"]):
        landmarks[name] = _draw_vertebra(canvas, builder, rng, marrow, k, name).z_range
    _draw_spinal_canal(canvas, builder)
    return landmarks
