"""Anatomy of the lumbar Dixon phantom: from T12 to the hip joints, in RAS world millimetres.

Everything is laid out relative to the spine: ``z = 0`` is the L5/S1 disc (before the subject's offset), each
lumbar level is 36 mm tall (27 mm body, 9 mm disc) times the subject's height factor, and ``y_spine(z)`` is the
antero-posterior centre of the vertebral body, curved by the lordosis above S1 and by the sacral slope below it.
Soft tissues of the pelvis hang from the S1 position (``y_ref``), not from the sacrum, which bends backwards.

Muscle courses (keyframes below) follow textbook anatomy and the real MuscleMap lumbar sample in
``shared/real-samples`` (cross-sections compared in docs/guides/phantom.md):
- psoas from the T12-L1 bodies, growing caudally and moving antero-laterally into the pelvis;
- iliacus on the inner surface of the iliac wing, joining psoas below the pelvic brim;
- quadratus lumborum from the 12th rib to the iliac crest, lateral to the transverse processes;
- erector spinae + multifidus behind the laminae, largest at L3-L5, multifidus alone over the sacrum.
The default anatomy is painted by ``anatomy_default.draw_subject``, the anatomy-complete one by
``anatomy_complete.draw_subject_complete``; both build their shapes from this module's ``KeyframeBuilder``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scripts.phantom.render import Canvas, Shape, Structure, Tissue
from scripts.phantom.textures import SmoothNoise

__all__ = [
    "TISSUES",
    "TEXTURES",
    "MUSCLE_SIGNAL",
    "SubjectAnatomy",
    "KeyframeBuilder",
    "muscle_ff_field",
    "iliac_wing",
    "femoral_head",
]

#: phantom textures: see ``SubjectAnatomy.texture``.
TEXTURES = ("smooth", "septa")

#: Dixon signal (in-phase magnitude, fat = 1.0) and apparent FF of the unlabelled tissues.
TISSUES: dict[str, Tissue] = {
    "skin": Tissue("skin", 0.55, 0.10),
    "subcutaneous_fat": Tissue("subcutaneous_fat", 1.0, 0.93),
    "visceral_fat": Tissue("visceral_fat", 0.95, 0.92),
    "fascia": Tissue("fascia", 0.85, 0.85),
    "bowel": Tissue("bowel", 0.45, 0.05),
    "muscle_other": Tissue("muscle_other", 0.40, 0.09),
    "kidney": Tissue("kidney", 0.50, 0.02),
    "liver": Tissue("liver", 0.55, 0.05),
    "cortical_bone": Tissue("cortical_bone", 0.04, 0.30),
    "disc": Tissue("disc", 0.35, 0.0),
    "csf": Tissue("csf", 0.25, 0.0),
}
#: signal of labelled muscle (its FF comes from the subject's draw).
MUSCLE_SIGNAL = 0.40


@dataclass
class SubjectAnatomy:
    """The drawn anatomy of one subject.

    Args:
        sex: "F" or "M".
        age: years.
        bmi: body-mass index (kg/m^2); drives subcutaneous and visceral fat.
        height_factor: cranio-caudal scale of the spine (1 = a 36 mm lumbar level).
        width_factor: in-plane scale of the bones and trunk.
        muscle_scale: (muscle, side) -> in-plane scale of the muscle cross-section (area scales with its square).
        muscle_ff: (muscle, side) -> target mean FF (0-1) over the label.
        lordosis_mm: anterior bulge of the lumbar spine at L3 relative to the L1-S1 chord.
        offset_mm: position of the anatomy in the field of view (x, y, z).
        marrow_ff: fat fraction of vertebral marrow.
        marbling: strength (0-1) of intramuscular fat streaks.
        jitter: per-keyframe shape variation (relative SD of semi-axes).
        texture: ``"smooth"`` (blob-like fat streaks, smooth bowel: the phantom up to bundle 0.11) or ``"septa"``
            (adds thin fat septa between muscle fascicles, denser in the lateral erector spinae, and mesenteric fat
            between bowel loops of varied signal, as in real lumbar scans; see docs/guides/phantom.md).
        texture_seed: seed of the ``"septa"`` fields, drawn apart from the subject's stream so that ``"smooth"``
            subjects stay byte-identical to earlier versions.
        crest_shift_mm: cranio-caudal shift (mm along the spine, before ``height_factor``) of the iliac crest from
            its default height (``z_rel`` 50, the lower L4 body); 0 keeps earlier phantoms byte-identical. The wing,
            the iliacus, the gluteus medius and the lower end of the QL (which inserts on the crest) follow it,
            stretched between a fixed point and the crest (``crest_z_rel``); the sacrum and hips stay.
    """

    sex: str
    age: float
    bmi: float
    height_factor: float
    width_factor: float
    muscle_scale: dict[tuple[str, str], float]
    muscle_ff: dict[tuple[str, str], float]
    lordosis_mm: float
    offset_mm: tuple[float, float, float]
    marrow_ff: float
    marbling: float
    jitter: float = 0.06
    other_muscle_ff: float = 0.09
    texture: str = "smooth"
    texture_seed: int = 0
    crest_shift_mm: float = 0.0
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.texture not in TEXTURES:
            raise ValueError(f"texture must be one of {TEXTURES}, got {self.texture!r}")

    # -- spine geometry ---------------------------------------------------------------------------------------------
    def crest_z_rel(self, z_rel: float | np.ndarray, fixed_at: float, crest_at: float) -> np.ndarray:
        """Spine-relative heights of a structure that hangs from the iliac crest, after the subject's crest shift.

        A keyframe at ``crest_at`` moves by ``crest_shift_mm``, one at or beyond ``fixed_at`` (away from the crest)
        stays, and those between move in proportion, so the keyframes keep their order for any shift smaller than
        their spacing.
        """
        z_rel = np.asarray(z_rel, dtype=np.float64)
        weight = np.clip((z_rel - fixed_at) / (crest_at - fixed_at), 0.0, 1.0)
        return z_rel + self.crest_shift_mm * weight

    def z(self, z_rel: float | np.ndarray) -> np.ndarray:
        """World z of a spine-relative position (mm above the L5/S1 disc, before scaling)."""
        return np.asarray(z_rel, dtype=np.float64) * self.height_factor + self.offset_mm[2]

    def y_spine(self, zw: np.ndarray) -> np.ndarray:
        """World y of the vertebral-body (or sacral) centre at world z."""
        t = (np.asarray(zw, dtype=np.float64) - self.offset_mm[2]) / self.height_factor
        lumbar = self.lordosis_mm * np.sin(np.pi * np.clip(t, 0, 230) / 230.0)
        sacral = -0.55 * np.abs(np.minimum(t, 0)) - 0.0012 * np.minimum(t, 0) ** 2
        return np.where(t >= 0, lumbar, sacral) + self.offset_mm[1]

    def y_ref(self, zw: np.ndarray) -> np.ndarray:
        """World y reference for soft tissue: the spine above S1, the S1 position below."""
        t = (np.asarray(zw, dtype=np.float64) - self.offset_mm[2]) / self.height_factor
        return self.y_spine(self.z(np.maximum(t, 0.0)))

    @property
    def sat_mm(self) -> float:
        """Subcutaneous fat thickness (mm) from BMI and sex."""
        return float(np.clip(6.0 + (self.bmi - 18.0) * (2.6 if self.sex == "F" else 1.9), 4.0, 60.0))

    @property
    def visceral(self) -> float:
        """Visceral fat amount (0 lean - 1.5 obese), larger in men at equal BMI."""
        return float(np.clip((self.bmi - 19.0) / 12.0 * (1.25 if self.sex == "M" else 0.85), 0.0, 1.5))


def _mirror(side: str) -> float:
    # RAS: +x is the patient's right, so left-sided structures sit at negative x
    return 1.0 if side == "right" else -1.0


class KeyframeBuilder:
    """Turns spine-relative keyframes into world-space Shapes with per-subject jitter."""

    def __init__(self, anat: SubjectAnatomy, rng: np.random.Generator) -> None:
        self.anat = anat
        self.rng = rng

    def shape(
        self,
        z_rel,
        cx,
        cy,
        a,
        b,
        theta=0.0,
        p=2.0,
        side: str | None = None,
        scale: float = 1.0,
        y_mode: str = "ref",
        jitter: float | None = None,
        crest: tuple[float, float] | None = None,
    ) -> Shape:
        """A world-space shape from keyframes at spine-relative heights ``z_rel``: x mirrored for ``side``, y from
        ``SubjectAnatomy.y_ref`` or ``y_spine`` (``y_mode``), sizes scaled by the subject's width and ``scale``,
        centres and semi-axes jittered per keyframe (``jitter``, default the subject's; 0 keeps the keyframes exact).
        ``crest`` = (fixed_at, crest_at) makes the heights follow the subject's iliac crest
        (``SubjectAnatomy.crest_z_rel``)."""
        an = self.anat
        z_rel = np.asarray(z_rel, dtype=np.float64)
        if crest is not None:
            z_rel = an.crest_z_rel(z_rel, *crest)
        n = z_rel.size
        jit = an.jitter if jitter is None else jitter
        zw = an.z(z_rel)
        order = np.argsort(zw)
        sgn = _mirror(side) if side else 1.0
        w = an.width_factor
        cx = np.broadcast_to(np.asarray(cx, np.float64), (n,)) * w + self.rng.normal(0, 1.5 * (jit > 0), n)
        cy = np.broadcast_to(np.asarray(cy, np.float64), (n,)) * w + self.rng.normal(0, 1.5 * (jit > 0), n)
        a = np.broadcast_to(np.asarray(a, np.float64), (n,)) * w * scale * np.exp(self.rng.normal(0, jit, n))
        b = np.broadcast_to(np.asarray(b, np.float64), (n,)) * w * scale * np.exp(self.rng.normal(0, jit, n))
        th = np.broadcast_to(np.asarray(theta, np.float64), (n,))
        yb = {"ref": an.y_ref, "spine": an.y_spine}[y_mode](zw)
        x = sgn * cx + an.offset_mm[0]
        # mirroring x turns an axis at angle theta into one at pi - theta
        th = th if sgn > 0 else np.pi - th
        return Shape(
            z=zw[order],
            cx=x[order],
            cy=(cy + yb)[order],
            a=np.maximum(a, 0.5)[order],
            b=np.maximum(b, 0.5)[order],
            theta=th[order],
            p=p,
        )


def muscle_ff_field(
    anat: SubjectAnatomy,
    canvas: Canvas,
    marbling: SmoothNoise,
    base: float,
    caudal_gradient: float,
    z_mid: float,
    septa: SmoothNoise | None = None,
    lateral_gradient: float = 0.0,
):
    """Voxel-wise muscle FF: the subject's value with a cranio-caudal gradient and fat streaks along the fibres.

    The streak threshold is set so the streak volume grows with the muscle's FF (fattier muscles marble more).
    With ``septa`` (the ``"septa"`` texture), thin fat sheets follow the zero level set of that noise: a network of
    1-2 mm septa between fascicles, elongated along z like the fibres, their strength growing with the muscle's FF
    and, by ``lateral_gradient``, with the distance from the midline (real erector spinae is fattier laterally).
    The label mean is renormalised afterwards, so these shape the texture, not the muscle's mean.
    """
    frac = float(np.clip(0.04 + 0.5 * base * anat.marbling, 0.01, 0.4))
    if septa is not None:
        # fat there is as bright as subcutaneous fat, so fewer blobs; the septa carry the rest
        frac *= 0.4
    thr = float(np.quantile(np.random.default_rng(0).standard_normal(20000), 1 - frac))
    septa_strength = float(np.clip(anat.marbling * (0.35 + 3.0 * base), 0.0, 1.0))
    boundary_mm = 27.0 * anat.width_factor

    def field(sl: tuple[slice, slice, slice]) -> np.ndarray:
        zz = canvas.z[sl[2]][None, None, :]
        ff = base * (1.0 + caudal_gradient * np.clip((z_mid - zz) / 150.0, -1, 1))
        streak = 1.0 / (1.0 + np.exp(-(marbling.sample_bbox(sl) - thr) / 0.12))
        out = ff * (1 - streak) + 0.8 * streak
        if septa is not None:
            lateral = np.abs(canvas.x[sl[0]][:, None, None] - anat.offset_mm[0])
            weight = septa_strength * (1.0 + lateral_gradient * (np.clip((lateral - 15.0) / 45.0, 0, 1) - 0.5))
            sheet = np.exp(-((septa.sample_bbox(sl) / 0.22) ** 2)) * np.clip(weight, 0.0, 1.0)
            if lateral_gradient > 0:
                # the fat plane between multifidus and the erector spinae, a few mm from its mean course
                plane = boundary_mm + 4.0 * septa.sample_bbox(sl)[::-1, ::-1, :]
                sheet = np.maximum(sheet, 0.8 * np.exp(-(((lateral - plane) / 1.0) ** 2)))
            out = out * (1 - sheet) + 0.95 * sheet
        return out.astype(np.float32)

    return field


#: keyframes (world mm; see ``KeyframeBuilder.shape``) and course of the two back muscles, which the default and the
#: complete anatomy draw alike: name -> (shape arguments, muscle() keyword arguments)
BACK_MUSCLE_KEYFRAMES: dict[str, tuple[dict, dict]] = {
    "erector_spinae_multifidus": (
        dict(
            z_rel=[290, 215, 170, 130, 90, 50, 15, -15, -40, -62, -72],
            cx=[22, 24, 28, 32, 34, 34, 31, 25, 18, 13, 10],
            cy=[-45, -45, -47, -49, -51, -52, -50, -43, -30, -22, -20],
            a=[21, 23, 27, 31, 34, 34, 30, 23, 16, 10, 4],
            b=[17, 18, 19, 21, 23, 23, 22, 17, 12, 8, 3],
            theta=0.05,
            p=2.6,
            y_mode="spine",
        ),
        dict(caudal_gradient=0.30, z_mid_rel=110, lateral_gradient=1.2),
    ),
    "quadratus_lumborum": (
        dict(
            z_rel=[212, 195, 160, 120, 85, 55, 35, 18],
            cx=[50, 56, 62, 66, 68, 68, 72, 76],
            cy=[-28, -30, -32, -33, -33, -33, -33, -33],
            a=[5, 13, 18, 21, 23, 22, 21, 10],
            b=[3, 5.5, 7, 7.5, 7, 6, 8.5, 4.5],
            theta=[-0.1, -0.15, -0.2, -0.25, -0.25, -0.25, -0.25, -0.25],
            # the lower end inserts on the iliac crest (and the iliolumbar ligament)
            crest=(85.0, 18.0),
        ),
        dict(caudal_gradient=0.1, z_mid_rel=120),
    ),
}


#: the iliacus's keyframes and course (shape arguments, muscle() keyword arguments), shared by both anatomies
ILIACUS_KEYFRAMES: tuple[dict, dict] = (
    dict(
        z_rel=[50, 40, 20, -5, -35, -65, -95, -125, -150],
        cx=[74, 72, 70, 68, 67, 68, 70, 72, 73],
        cy=[-8, -4, 2, 8, 16, 25, 34, 38, 40],
        a=[4, 15, 24, 29, 29, 25, 19, 15, 13],
        b=[2.5, 5, 8, 10, 12, 13, 13, 12, 11],
        theta=[0.75, 0.8, 0.85, 0.9, 1.0, 1.15, 1.3, 1.4, 1.45],
        crest=(-35.0, 50.0),
    ),
    dict(caudal_gradient=0.0, z_mid_rel=-20),
)


def iliac_wing(builder: KeyframeBuilder, side: str, marrow: Tissue) -> Structure:
    """The iliac wing of ``side``: marrow in a 1.5 mm cortical shell, from the crest down to the acetabulum."""
    wing = builder.shape(
        [50, 38, 20, 0, -30, -60, -85, -105],
        [86, 88, 88, 86, 84, 82, 84, 88],
        [-22, -20, -18, -14, -6, 2, 10, 16],
        [20, 36, 44, 46, 40, 30, 22, 20],
        [3, 4, 4.5, 5, 6, 9, 14, 16],
        [0.55, 0.58, 0.62, 0.66, 0.75, 0.9, 1.1, 1.2],
        side=side,
        jitter=0.03,
        crest=(-60.0, 50.0),
    )
    return Structure(f"iliac_wing_{side}", wing, marrow, shell_mm=1.5, shell_tissue=TISSUES["cortical_bone"])


def femoral_head(builder: KeyframeBuilder, anat: SubjectAnatomy, side: str) -> Structure:
    """The femoral head of ``side``: a sphere of 23 mm radius (scaled with the subject's width) in cortical bone."""
    r = 23.0 * anat.width_factor
    t = np.array([-1, -0.9, -0.6, 0, 0.6, 0.9, 1])
    head = builder.shape(
        -102 + r * t / anat.height_factor,
        88,
        38,
        r * np.sqrt(np.maximum(1 - t**2, 0.02)),
        r * np.sqrt(np.maximum(1 - t**2, 0.02)),
        side=side,
        jitter=0.0,
    )
    return Structure(
        f"femoral_head_{side}",
        head,
        Tissue("femoral_marrow", 0.8, 0.8),
        shell_mm=2.0,
        shell_tissue=TISSUES["cortical_bone"],
    )
