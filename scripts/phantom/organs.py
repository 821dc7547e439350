"""Soft tissue of the anatomy-complete phantom: body wall, abdominal muscles, viscera, organs, vessels, crura.

Keyframes are spine-relative as in ``anatomy`` (``z_rel`` mm above the L5/S1 disc for a 36-mm level; x mm from the
midline, mirrored per side, so left structures lie at negative RAS x; y mm from the vertebral-body centre or, below
S1, from the S1 position). Positions and sizes per level follow textbook cross-sectional anatomy and the real CHAOS
and MuscleMap samples in ``shared/real-samples`` (see docs/guides/phantom.md, "Anatomy-complete phantom"):

- body wall: skin, subcutaneous fat, then the muscle sheets, each a band a few mm thick following the body contour:
  rectus abdominis beside the linea alba, external oblique, internal oblique and transversus abdominis laterally
  (separated by thin fat planes, ending in tapering aponeuroses), latissimus dorsi posterolaterally above L4 and
  serratus posterior inferior under it at T11-L2;
- viscera: bowel loops (wall, fluid, gas or fat-containing content) separated by mesenteric fat, in front of the
  retroperitoneum; ascending and descending colon in the flanks with mottled stool and gas; kidneys (T12-L3, the
  right one lower) in perirenal fat with renal-sinus fat at the hilum; the
  liver tip (right) and spleen tip (left) at the upper levels;
- the 11th and 12th ribs in the posterolateral wall at the upper levels;
- the lung bases in the posterior costophrenic recesses from about the T12/L1 disc up, each wrapped in the
  diaphragm's muscle (the real scans' dark air beside and in front of the upper erector spinae);
- vessels: aorta left-anterior of the bodies down to its bifurcation at L4, common iliac arteries, IVC right-anterior
  down to its confluence at L5, common iliac veins; diaphragm crura beside the aorta at T12-L3.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scripts.phantom.anatomy import TISSUES, KeyframeBuilder, SubjectAnatomy
from scripts.phantom.render import Shape, Structure, Tissue
from scripts.phantom.textures import SmoothNoise
from scripts.phantom.tissue_canvas import SheetFrame, TissueCanvas, draw_sheet
from scripts.phantom.tissue_ids import tissue_id

__all__ = [
    "BodyWall",
    "draw_trunk",
    "draw_colon",
    "draw_ribs",
    "draw_wall_muscles",
    "draw_organs",
    "draw_lung_bases",
    "draw_vessels_and_crura",
]

#: (in-phase signal, apparent FF) of bowel contents and organs not in ``anatomy.TISSUES``.
_BOWEL = {
    "bowel_wall": (0.42, 0.05),
    "bowel_fluid": (0.28, 0.0),
    "bowel_gas": (0.02, 0.0),
    "bowel_fatty_content": (0.65, 0.45),
    "mesenteric_fat": (0.95, 0.92),
}
SPLEEN = Tissue("spleen", 0.45, 0.02)
#: aerated lung: almost no signal in any Dixon image.
LUNG = Tissue("lung", 0.03, 0.0)
#: lung-base keyframes (right side; mirrored): z_rel, x from the midline, y from the body centre, semi-axes (mm).
#: From TotalSegmentator's real CT sample (docs/guides/phantom.md, "Upper lumbar levels"): the lower lobes appear at
#: the T12/L1 disc, 65-85 mm from the midline with their back at the erector spinae's anterior edge, and grow to
#: 30-60 cm^2 per side within one level.
_LUNG_BASE = dict(
    z_rel=[172, 185, 200, 225, 260, 300],
    cx=[80, 80, 82, 82, 80, 76],
    cy=[-28, -24, -18, -8, 2, 10],
    a=[4, 22, 38, 48, 52, 54],
    b=[2, 9, 22, 34, 44, 48],
)
#: the bases' height varies between subjects (the costophrenic recess reaches L1 in some adults, T12 in others).
LUNG_SHIFT_RANGE_MM: tuple[float, float] = (-12.0, 18.0)


class BodyWall:
    """The trunk outline and the thickness of the subject's abdominal wall layers (mm).

    Args:
        anat: the subject.
        builder: its keyframe builder (draws the per-subject jitter).
        rng: the subject's random stream (wall muscle bulk).
    """

    def __init__(self, anat: SubjectAnatomy, builder: KeyframeBuilder, rng: np.random.Generator) -> None:
        vis = anat.visceral
        sat = anat.sat_mm
        zk = np.array([-150, -100, -40, 20, 60, 110, 160, 210, 290])
        rx = np.array([170, 172, 165, 148, 135, 128, 128, 132, 138]) + 18 * vis
        ry = np.array([95, 98, 100, 100, 98, 100, 102, 106, 110]) + np.array([0, 5, 10, 20, 30, 35, 30, 25, 20]) * vis
        back = 82.0  # vertebral-body centre to the posterior muscle surface, as in the default anatomy
        self.sat = sat
        self.trunk: Shape = builder.shape(
            zk, 0.0, -back + ry - sat / 2.0, rx + sat + 2.0, ry + (sat + 2.0) / 2.0, p=2.3, jitter=0.03
        )
        # wall muscles are thicker in men and in younger, more active people; the subject's own bulk varies
        self.bulk = float(
            (1.2 if anat.sex == "M" else 1.0) * (1.0 - 0.004 * (anat.age - 45)) * np.exp(rng.normal(0, 0.12))
        )
        self.eo, self.io, self.ta, self.gap = 4.5 * self.bulk, 6.0 * self.bulk, 3.8 * self.bulk, 1.2

    @property
    def muscle_start(self) -> float:
        """Depth (mm below the skin surface) of the outer surface of the wall muscles."""
        return 2.0 + self.sat

    @property
    def cavity_inset(self) -> float:
        """Depth of the abdominal cavity (inside the transversus abdominis)."""
        return self.muscle_start + self.eo + self.io + self.ta + 3 * self.gap


def _bowel_fill(anat: SubjectAnatomy, canvas: TissueCanvas, rng: np.random.Generator) -> Callable:
    """Viscera fill: bowel loops with varied content between mesenteric fat, anterior to the retroperitoneum.

    Returns a callable(bbox slices) -> (water, fat, tissue ids), each of the bbox's shape.
    """
    grid = canvas.grid
    bulk = SmoothNoise(grid, (14.0, 14.0, 20.0), rng)
    loops = SmoothNoise(grid, (9.0, 9.0, 9.0), rng)
    content = SmoothNoise(grid, (7.0, 7.0, 10.0), rng)
    vis = anat.visceral
    ids = {k: tissue_id(k) for k in _BOWEL}

    def fill(sl: tuple[slice, slice, slice]):
        xx = canvas.x[sl[0]][:, None, None] - anat.offset_mm[0]
        yy = canvas.y[sl[1]][None, :, None]
        zz = canvas.z[sl[2]][None, None, :]
        # bowel lies in front of the vertebral bodies; laterally (colon) it reaches back beside the kidneys
        front = yy - anat.y_ref(zz) - 10.0 + 0.5 * np.clip(np.abs(xx) - 55.0, 0, 60)
        zrel = (zz - anat.offset_mm[2]) / anat.height_factor
        region = np.clip(front / 12.0, 0, 1) * np.clip((zrel + 80.0) / 20.0, 0, 1)
        m = region / (1.0 + np.exp(-(bulk.sample_bbox(sl) - (vis - 1.0)) / 0.25))
        lp = np.abs(loops.sample_bbox(sl))
        m = m * np.clip((lp - 0.08) / 0.08, 0, 1)  # mesenteric fat along the loops' zero level set
        inner = np.clip((lp - 0.32) / 0.1, 0, 1)  # content inside a ~2-3 mm wall
        c = content.sample_bbox(sl)
        kind = np.where(c > 1.0, 2, np.where(c < -1.1, 3, 1))  # 1 fluid, 2 gas, 3 fat-containing content
        names = ("bowel_wall", "bowel_fluid", "bowel_gas", "bowel_fatty_content")
        sig = np.choose(kind, [_BOWEL[n][0] for n in names]).astype(np.float32)
        sig = np.where(kind == 1, sig * np.exp(0.35 * c), sig)  # fluid from watery to chyme-like
        ffc = np.choose(kind, [_BOWEL[n][1] for n in names]).astype(np.float32)
        sw, ff_w = _BOWEL["bowel_wall"]
        sm, ff_m = _BOWEL["mesenteric_fat"]
        bw = (1 - inner) * sw * (1 - ff_w) + inner * sig * (1 - ffc)
        bf = (1 - inner) * sw * ff_w + inner * sig * ffc
        w = m * bw + (1 - m) * sm * (1 - ff_m)
        f = m * bf + (1 - m) * sm * ff_m
        kid = np.choose(kind, [ids[n] for n in names])
        tid = np.where(m < 0.5, ids["mesenteric_fat"], np.where(inner < 0.5, ids["bowel_wall"], kid))
        return w.astype(np.float32), f.astype(np.float32), tid.astype(np.uint8)

    return fill


def draw_trunk(anat: SubjectAnatomy, wall: BodyWall, canvas: TissueCanvas, rng: np.random.Generator) -> None:
    """Skin, subcutaneous fat, extraperitoneal fat inside it, and the bowel in the abdominal cavity."""
    canvas.draw_layers_id(
        wall.trunk,
        [
            (0.0, TISSUES["skin"], tissue_id("skin")),
            (2.0, TISSUES["subcutaneous_fat"], tissue_id("subcutaneous_fat")),
            (wall.muscle_start, TISSUES["visceral_fat"], tissue_id("extraperitoneal_fat")),
            (wall.cavity_inset + 3.0, _bowel_fill(anat, canvas, rng), 0),
        ],
    )


def _abdominal_sheets(anat: SubjectAnatomy, wall: BodyWall) -> list[tuple]:
    """Keyframes of the anterolateral wall muscles, each ``(name, z, inner depth, thickness, start, end)`` as
    ``draw_sheet`` takes them, in painting order (the rectus last, so it covers the others' medial ends)."""
    m = wall.bulk
    s0 = wall.muscle_start
    zw = anat.z
    z5 = zw(np.array([-70, -25, 40, 120, 300]))
    eo_i0 = np.full(5, s0)
    io_i0 = eo_i0 + wall.eo * np.array([0.45, 0.8, 1, 1, 1]) + wall.gap
    ta_i0 = io_i0 + wall.io * np.array([0.5, 0.85, 1, 1, 1]) + wall.gap
    # the lateral muscles start under the rectus' lateral edge (their aponeuroses form its sheath) and the
    # rectus, painted last, covers them there; it is thicker and lens-shaped (wide rounded ends)
    return [
        (
            "external_oblique",
            z5,
            eo_i0,
            np.array([0.45, 0.8, 1, 1, 1]) * wall.eo,
            np.array([10, 14, 18, 20, 20]),
            np.array([45, 80, 110, 115, 118]),
        ),
        (
            "internal_oblique",
            z5,
            io_i0,
            np.array([0.5, 0.85, 1, 0.95, 0.8]) * wall.io,
            np.array([11, 15, 19, 21, 21]),
            np.array([45, 85, 118, 122, 122]),
        ),
        (
            "transversus_abdominis",
            z5,
            ta_i0,
            np.array([0.5, 0.8, 1, 1, 1]) * wall.ta,
            np.array([12, 16, 20, 22, 22]),
            np.array([45, 90, 128, 132, 132]),
        ),
        # rectus abdominis beside the linea alba (~1 cm wide), from the pubis up past the top of the field
        (
            "rectus_abdominis",
            zw(np.array([-110, -40, 40, 150, 300])),
            np.full(5, s0),
            np.array([6, 8.5, 10, 10, 9]) * m,
            np.full(5, 2.0),
            np.array([12, 17, 22, 24, 24]),
        ),
    ]


def _draw_back_sheets(anat: SubjectAnatomy, wall: BodyWall, frame: SheetFrame, side: str, muscle: Tissue) -> None:
    """Latissimus dorsi (muscular above L4, superficial and posterolateral) and serratus posterior inferior deep
    to it, on ``side``."""
    m = wall.bulk
    s0 = wall.muscle_start
    zl = anat.z(np.array([50, 90, 150, 220, 300]))
    ld = np.array([1.5, 3.0, 5.0, 7.0, 8.0]) * m
    draw_sheet(
        frame,
        side,
        zl,
        np.full(5, s0),
        ld,
        np.array([118, 110, 100, 95, 90]),
        np.array([128, 136, 142, 146, 150]),
        muscle,
        tissue_id(f"latissimus_dorsi_{side}"),
    )
    zs = anat.z(np.array([125, 160, 220, 300]))
    draw_sheet(
        frame,
        side,
        zs,
        s0 + np.interp(zs, zl, ld) + 1.0,
        np.array([1.0, 2.5, 3.0, 3.0]) * m,
        np.array([134, 132, 130, 128]),
        np.array([150, 152, 155, 155]),
        muscle,
        tissue_id(f"serratus_posterior_inferior_{side}"),
    )


def draw_wall_muscles(anat: SubjectAnatomy, wall: BodyWall, canvas: TissueCanvas) -> None:
    """Rectus abdominis, the three lateral wall muscles, latissimus dorsi and serratus posterior inferior."""
    muscle = Tissue("muscle_wall", TISSUES["muscle_other"].signal, anat.other_muscle_ff)
    frame = SheetFrame(canvas, wall.trunk, (float(anat.z(-110)), float(anat.z(300))))
    sheets = _abdominal_sheets(anat, wall)
    for side in ("left", "right"):
        for name, z, i0, th, p0, p1 in sheets:
            draw_sheet(
                frame,
                side,
                z,
                i0,
                th,
                p0,
                p1,
                muscle,
                tissue_id(f"{name}_{side}"),
                ramp_mm=18.0 if name == "rectus_abdominis" else 6.0,
            )
        _draw_back_sheets(anat, wall, frame, side, muscle)


def _cavity_clip(canvas: TissueCanvas, wall: BodyWall) -> Callable:
    """Occupancy of the abdominal cavity on a bbox, so organs never reach into the wall or the fat."""

    def clip(sl):
        d = canvas.signed_distance(wall.trunk, sl)
        return canvas.occupancy(d, -wall.cavity_inset)

    return clip


def draw_colon(
    anat: SubjectAnatomy, wall: BodyWall, builder: KeyframeBuilder, canvas: TissueCanvas, rng: np.random.Generator
) -> None:
    """Ascending (right) and descending (left) colon in the flanks: a thin wall around mottled stool and gas, the
    dark-and-bright lateral loops of real abdominal scans that lie next to QL and the lateral wall."""
    stool = SmoothNoise(canvas.grid, (4.0, 4.0, 6.0), rng)
    clip = _cavity_clip(canvas, wall)
    names = ("bowel_fatty_content", "bowel_fluid", "bowel_gas")
    ids = np.array([tissue_id(n) for n in names], np.uint8)
    sig = np.array([_BOWEL[n][0] for n in names], np.float32)
    ffs = np.array([_BOWEL[n][1] for n in names], np.float32)
    gas_level = float(rng.uniform(0.2, 0.9))  # how much gas the subject's colon holds
    courses = {
        "right": ([-20, 20, 80, 140, 185], [75, 86, 92, 92, 85], [35, 25, 16, 12, 14], [15, 19, 21, 19, 15]),
        "left": ([-30, 30, 90, 150, 205], [80, 92, 96, 92, 82], [20, 10, 4, 2, 6], [11, 13, 14, 14, 12]),
    }
    for side, (z, cx, cy, r) in courses.items():
        shape = builder.shape(z, cx, cy, r, np.asarray(r) * 0.85, side=side)
        sl = canvas._bbox(shape, 3.0 * canvas._h + (8.0 if canvas.warp is not None else 0.0))
        if sl is None:
            continue
        d = canvas.signed_distance(shape, sl)
        lim = clip(sl)
        w_wall, f_wall = _BOWEL["bowel_wall"][0] * (1 - _BOWEL["bowel_wall"][1]), _BOWEL["bowel_wall"][0] * 0.05
        canvas.paint_id(sl, canvas.occupancy(d) * lim, w_wall, f_wall, tissue_id("bowel_wall"))
        n = stool.sample_bbox(sl)
        kind = np.where(n > gas_level, 2, np.where(n < -0.8, 1, 0))
        canvas.paint_id(
            sl, canvas.occupancy(d, -2.5) * lim, sig[kind] * (1 - ffs[kind]), sig[kind] * ffs[kind], ids[kind]
        )


def draw_ribs(anat: SubjectAnatomy, builder: KeyframeBuilder, canvas: TissueCanvas) -> None:
    """The 11th and 12th ribs: running laterally and caudally from the T11/T12 transverse processes, so an axial
    slice cuts each one as a small oval in the posterolateral wall that moves outwards as it descends."""
    marrow = Tissue("marrow", 0.70, anat.marrow_ff)
    for side in ("left", "right"):
        for z_top, z_low, reach in ((214, 150, 105), (250, 165, 125)):
            z = np.linspace(z_low, z_top, 5)
            t = (z_top - z) / (z_top - z_low)
            rib = builder.shape(
                z, 40 + (reach - 40) * t, -38 + 30 * t**1.5, 9.0, 4.0, -0.3 + 0.9 * t, side=side, jitter=0.03
            )
            canvas.draw_id(
                Structure(f"rib_{side}", rib, marrow, shell_mm=1.2, shell_tissue=TISSUES["cortical_bone"]),
                tissue_id("rib"),
            )


def draw_organs(anat: SubjectAnatomy, wall: BodyWall, builder: KeyframeBuilder, canvas: TissueCanvas) -> None:
    """Liver tip (right), spleen tip (left), kidneys in perirenal fat with renal-sinus fat at the hilum."""
    clip = _cavity_clip(canvas, wall)
    liver = builder.shape(
        [105, 130, 165, 210, 300],
        [92, 86, 76, 62, 55],
        [10, 14, 18, 20, 20],
        [8, 22, 40, 55, 62],
        [7, 18, 33, 45, 52],
        0.3,
        side="right",
    )
    canvas.draw_id(Structure("liver", liver, TISSUES["liver"]), tissue_id("liver"), clip=clip)
    spleen = builder.shape(
        [180, 205, 245, 300], [80, 84, 82, 78], [-22, -18, -12, -6], [8, 26, 36, 40], [5, 12, 16, 18], 2.2, side="left"
    )
    canvas.draw_id(Structure("spleen", spleen, SPLEEN), tissue_id("spleen"), clip=clip)
    for side, dz in (("left", 12.0), ("right", 0.0)):
        kz = np.array([88, 105, 140, 180, 205]) + dz
        kid = builder.shape(
            kz, [64, 70, 72, 70, 62], [-2, -4, -6, -9, -12], [10, 18, 27, 24, 12], [8, 13, 18, 16, 8], -0.6, side=side
        )
        canvas.draw_id(
            Structure(f"kidney_{side}", kid, TISSUES["kidney"], shell_mm=8.0, shell_tissue=TISSUES["visceral_fat"]),
            tissue_id(f"kidney_{side}"),
            shell_tid=tissue_id("perirenal_fat"),
        )
        sinus = builder.shape(
            kz[1:4] + np.array([8, 0, -8]), [56, 57, 56], [2, 1, -1], [6, 8, 6], [4, 6, 4], -0.6, side=side
        )
        canvas.draw_id(Structure(f"renal_sinus_{side}", sinus, TISSUES["visceral_fat"]), tissue_id("renal_sinus_fat"))


def draw_lung_bases(anat: SubjectAnatomy, wall: BodyWall, canvas: TissueCanvas, rng: np.random.Generator) -> None:
    """Left and right lung bases in the posterior costophrenic recesses, inside the trunk, each in a 4-mm shell of
    diaphragm muscle; shifted along the spine by one draw per subject from ``LUNG_SHIFT_RANGE_MM``.

    ``rng`` is a stream of the lungs' own, so adding them moved no other draw of the subject.
    """
    builder = KeyframeBuilder(anat, rng)
    shift = float(rng.uniform(*LUNG_SHIFT_RANGE_MM))
    clip = _cavity_clip(canvas, wall)
    for side in ("left", "right"):
        kf = dict(_LUNG_BASE, z_rel=[z + shift for z in _LUNG_BASE["z_rel"]])
        lung = builder.shape(side=side, theta=0.5, **kf)  # the lateral end curves forward with the wall
        canvas.draw_id(
            Structure(f"lung_{side}", lung, LUNG, shell_mm=4.0, shell_tissue=TISSUES["muscle_other"]),
            tissue_id(f"lung_{side}"),
            shell_tid=tissue_id("diaphragm"),
            clip=clip,
        )


def draw_vessels_and_crura(
    anat: SubjectAnatomy, builder: KeyframeBuilder, canvas: TissueCanvas, rng: np.random.Generator, bv: float
) -> None:
    """Diaphragm crura, aorta and common iliac arteries, IVC and common iliac veins.

    ``bv`` is the antero-posterior semi-axis (mm) of the L3 body: the vessels lie on the bodies' anterior surface.
    Flowing blood is dark (flow void) or bright (inflow) on gradient echo: its signal is drawn per subject.
    """
    muscle = Tissue("crus", TISSUES["muscle_other"].signal, anat.other_muscle_ff)
    art = Tissue("arterial_blood", float(rng.uniform(0.08, 0.8)), 0.0)
    ven = Tissue("venous_blood", float(rng.uniform(0.15, 0.7)), 0.0)
    f = bv - 16.0  # shift with the subject's body depth
    for side, z_low, cx0 in (("right", 105, 13), ("left", 140, 20)):
        zc = np.linspace(z_low, 300, 6)
        crus = builder.shape(
            zc,
            cx0 + np.array([0, 0, 1, 3, 6, 10]),
            f + np.array([11, 12, 13, 15, 18, 22]),
            [4, 6, 9, 11, 12, 12],
            [2.5, 3.5, 4.5, 5.5, 6, 5],
            [1.35, 1.3, 1.2, 1.1, 1.0, 0.9],
            side=side,
            y_mode="spine",
        )
        canvas.draw_id(Structure(f"crus_{side}", crus, muscle), tissue_id(f"diaphragm_crus_{side}"))
    aorta = builder.shape(
        [58, 70, 120, 200, 300],
        [6, 8, 10, 10, 8],
        f + np.array([23, 25, 27, 27, 25]),
        [7.5, 8.5, 9.5, 10.5, 11.5],
        [7.5, 8.5, 9.5, 10.5, 11.5],
        side="left",
        y_mode="spine",
        jitter=0.04,
    )
    canvas.draw_id(Structure("aorta", aorta, art), tissue_id("aorta"))
    ivc = builder.shape(
        [22, 40, 100, 180, 300],
        [15, 18, 20, 22, 24],
        f + np.array([19, 21, 20, 19, 18]),
        [8, 11, 12, 12, 13],
        [6, 7, 8, 9, 10],
        side="right",
        y_mode="spine",
        jitter=0.05,
    )
    canvas.draw_id(Structure("ivc", ivc, ven), tissue_id("inferior_vena_cava"))
    for side in ("left", "right"):
        # common then external iliac artery: from the bifurcation along the medial border of psoas into the pelvis
        ia = builder.shape(
            [-100, -70, -45, -25, -10, 10, 40, 64],
            [62, 58, 52, 45, 38, 28, 15, 7],
            [44, 40, 33, 28, 26, 25, 25, 24],
            [4, 4, 4.5, 4.5, 5, 5, 5.5, 6],
            [4, 4, 4.5, 4.5, 5, 5, 5.5, 6],
            side=side,
            jitter=0.04,
        )
        canvas.draw_id(Structure(f"iliac_artery_{side}", ia, art), tissue_id(f"common_iliac_artery_{side}"))
        iv = builder.shape(
            [-100, -70, -40, -15, 5, 26],
            [68, 62, 54, 42, 28, 14],
            [37, 33, 25, 18, 16, 17],
            [5, 5.5, 6, 6.5, 7, 7],
            [4.5, 5, 5.5, 6, 6, 6],
            side=side,
            jitter=0.04,
        )
        canvas.draw_id(Structure(f"iliac_vein_{side}", iv, ven), tissue_id(f"common_iliac_vein_{side}"))
