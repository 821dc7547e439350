"""Bones of the anatomy-complete phantom: lumbar vertebrae with their posterior elements, sacrum, pelvis.

Coordinates follow ``anatomy.SubjectAnatomy``: keyframes are spine-relative (``z_rel`` mm above the L5/S1 disc for a
36-mm level; x mm from the midline, mirrored per side; y mm from the vertebral-body centre ``y_spine``) and become
RAS world millimetres through ``anatomy.KeyframeBuilder`` (width and height factors, subject offset).

Per lumbar vertebra (``z0``-``z1`` is its body, the disc lies 9 mm below ``z0``): a body with a kidney-bean
cross-section (a box-like superellipse whose posterior wall is notched by the epidural fat of the canal), the disc
below it, pedicles from the upper half of the body to the articular pillars, laminae running postero-medially to the
spinous process (which slopes caudally), transverse processes from the pedicle-lamina junction (longest at L3), and
the facet joints at disc height. The sacrum has an S1 body, alae reaching the sacro-iliac joints, a triangular
sacral canal and a dorsal plate with the median crest, narrowing to the coccyx and following the sacral curve.
"""

from __future__ import annotations

import numpy as np
from scripts.phantom.anatomy import TISSUES, KeyframeBuilder, SubjectAnatomy, femoral_head, iliac_wing
from scripts.phantom.render import Structure, Tissue
from scripts.phantom.tissue_canvas import TissueCanvas
from scripts.phantom.tissue_ids import tissue_id

__all__ = ["LEVELS", "draw_spine", "draw_pelvis_bones", "body_size", "draw_body_sizes"]

#: vertebrae from caudal to cranial; level k's body spans z_rel 5 + 36 k to 32 + 36 k.
LEVELS: tuple[str, ...] = ("L5", "L4", "L3", "L2", "L1", "T12", "T11")
#: transverse-process length (mm from the pedicle-lamina junction), longest at L3 as in life.
_TP_LENGTH: dict[str, float] = {"L5": 17.0, "L4": 21.0, "L3": 25.0, "L2": 20.0, "L1": 14.0, "T12": 6.0, "T11": 6.0}


def body_size(k: int) -> tuple[float, float]:
    """Nominal vertebral-body semi-axes (mm, lateral and antero-posterior) of level index ``k`` (0 = L5)."""
    return 25.0 - 0.9 * k, 17.0 - 0.4 * k


def draw_body_sizes(rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """The subject's vertebral-body semi-axes (mm, before the width factor) per level, drawn before the muscles so
    that psoas can be placed against the bodies."""
    out = {}
    for k, name in enumerate(LEVELS):
        a0, b0 = body_size(k)
        out[name] = (float(a0 * np.exp(rng.normal(0, 0.04))), float(b0 * np.exp(rng.normal(0, 0.04))))
    return out


def _bone(name: str, shape, marrow: Tissue, shell: float = 1.5) -> Structure:
    return Structure(name, shape, marrow, shell_mm=shell, shell_tissue=TISSUES["cortical_bone"])


def _posterior_elements(
    builder: KeyframeBuilder,
    canvas: TissueCanvas,
    marrow: Tissue,
    name: str,
    z0: float,
    z1: float,
    av: float,
    bv: float,
) -> None:
    """Pedicles, transverse processes, facet pillars, laminae and spinous process of one lumbar vertebra."""
    tp_len = _TP_LENGTH[name]
    for side in ("left", "right"):
        ped = builder.shape(
            [z1 - 22, z1 - 18, z1 - 8, z1 - 4],
            0.55 * av + 2.5,
            -bv - 6,
            [3, 4.5, 4.5, 3],
            7.5,
            0.15,
            side=side,
            y_mode="spine",
            jitter=0.0,
        )
        canvas.draw_id(_bone(f"{name}_pedicle_{side}", ped, marrow, 1.0), tissue_id("pedicle"))
        tp = builder.shape(
            [z1 - 17, z1 - 14, z1 - 7, z1 - 4],
            0.55 * av + 4 + 0.5 * tp_len,
            -bv - 9,
            0.5 * tp_len + 2,
            [3, 4, 4, 3],
            -0.12,
            side=side,
            y_mode="spine",
            jitter=0.0,
        )
        canvas.draw_id(_bone(f"{name}_transverse_{side}", tp, marrow, 1.0), tissue_id("transverse_process"))
        # the facet joint at the disc below: this vertebra's inferior and the next one's superior process
        facet = builder.shape(
            [z0 - 12, z0 - 8, z0 + 2, z0 + 6],
            0.55 * av + 3,
            -bv - 17,
            [4, 6, 6, 4],
            5.0,
            0.6,
            side=side,
            y_mode="spine",
            jitter=0.0,
        )
        canvas.draw_id(_bone(f"{name}_facet_{side}", facet, marrow, 1.0), tissue_id("articular_process"))
        lam = builder.shape(
            [z0 - 6, z0 - 2, z1 - 10, z1 - 6],
            8.0,
            -bv - 20,
            10.5,
            [2.5, 3.2, 3.2, 2.5],
            0.75,
            side=side,
            y_mode="spine",
            jitter=0.0,
        )
        canvas.draw_id(_bone(f"{name}_lamina_{side}", lam, marrow, 1.0), tissue_id("lamina"))
    # the spinous process slopes caudally: it starts at the lamina junction and ends at the disc below
    spin = builder.shape(
        [z0 - 6, z0 - 2, z1 - 10, z1 - 6], 0.0, -bv - 36, 3.0, [10, 13, 13, 10], p=3.0, y_mode="spine", jitter=0.0
    )
    canvas.draw_id(_bone(f"{name}_spinous", spin, marrow, 1.2), tissue_id("spinous_process"))


def draw_spine(
    anat: SubjectAnatomy,
    builder: KeyframeBuilder,
    canvas: TissueCanvas,
    sizes: dict[str, tuple[float, float]],
    landmarks: dict[str, tuple[float, float]],
) -> None:
    """Paint vertebrae T11-L5 (bodies, discs, posterior elements) and the spinal canal; ``sizes`` from
    ``draw_body_sizes``; each body's world z range is added to ``landmarks``."""
    marrow = Tissue("marrow", 0.70, anat.marrow_ff)
    canal_z, canal_cy = [], []
    for k, name in enumerate(LEVELS):
        z0, z1 = 5 + 36 * k, 32 + 36 * k
        av, bv = sizes[name]
        zz = [z0, z0 + 1.5, (z0 + z1) / 2, z1 - 1.5, z1]
        # waisted body (narrower at mid-height) with a flat posterior wall: a boxy superellipse
        body = builder.shape(
            zz,
            0.0,
            0.0,
            [av - 1.5, av, av - 1.5, av, av - 1.5],
            [bv - 1.5, bv, bv - 0.8, bv, bv - 1.5],
            p=2.4,
            y_mode="spine",
            jitter=0.0,
        )
        bid = tissue_id(f"vertebral_body_{name}")
        canvas.draw_id(_bone(f"{name}_body", body, marrow), bid)
        landmarks[name] = body.z_range
        disc = builder.shape(
            [z0 - 9.5, z0 - 4.5, z0 + 0.5], 0.0, 0.0, av + 1.0, bv + 1.0, p=2.4, y_mode="spine", jitter=0.0
        )
        canvas.draw_id(Structure(f"disc_below_{name}", disc, TISSUES["disc"]), tissue_id("intervertebral_disc"))
        _posterior_elements(builder, canvas, marrow, name, z0, z1, av, bv)
        canal_z += [z0 - 4.0, (z0 + z1) / 2]
        canal_cy += [-bv - 6.0, -bv - 6.5]
    # epidural fat notches the posterior body wall (the kidney-bean outline), the thecal sac lies within it
    cz = np.array([-60.0, -30.0] + canal_z)
    ccy = np.array([-24.0, -22.0] + canal_cy)
    epi = builder.shape(
        cz,
        0.0,
        ccy,
        np.r_[6, 9, np.full(len(canal_z), 12.0)],
        np.r_[4, 6, np.full(len(canal_z), 8.0)],
        y_mode="spine",
        jitter=0.0,
    )
    canvas.draw_id(Structure("epidural_fat", epi, TISSUES["visceral_fat"]), tissue_id("epidural_fat"))
    sac = builder.shape(
        cz,
        0.0,
        ccy - 1.0,
        np.r_[3, 6, np.full(len(canal_z), 8.5)],
        np.r_[2, 4, np.full(len(canal_z), 6.0)],
        y_mode="spine",
        jitter=0.0,
    )
    canvas.draw_id(Structure("thecal_sac", sac, TISSUES["csf"]), tissue_id("spinal_canal_csf"))


def draw_pelvis_bones(
    anat: SubjectAnatomy, builder: KeyframeBuilder, canvas: TissueCanvas, landmarks: dict[str, tuple[float, float]]
) -> None:
    """Paint the iliac wings, femoral heads and a sacrum with body, alae, canal and dorsal plate."""
    marrow = Tissue("marrow", 0.70, anat.marrow_ff)
    iliac, femoral, sac = tissue_id("iliac_bone"), tissue_id("femoral_head"), tissue_id("sacrum")
    for side in ("left", "right"):
        canvas.draw_id(iliac_wing(builder, side, marrow), iliac)  # the default anatomy's wing
        canvas.draw_id(femoral_head(builder, anat, side), femoral)
        # the ala: a lateral mass from the S1 body to the sacro-iliac joint, its lateral end posterior
        ala = builder.shape(
            [-5, -9, -20, -32, -45, -60],
            [30, 35, 38, 36, 30, 22],
            [-5, -7, -9, -11, -11, -9],
            [9, 19, 22, 21, 15, 9],
            [7, 11, 13, 12, 9, 6],
            -0.25,
            side=side,
            y_mode="spine",
            jitter=0.03,
        )
        canvas.draw_id(_bone(f"sacral_ala_{side}", ala, marrow), sac)
    body = builder.shape(
        [-4.5, -2.5, -15, -30, -50, -70, -90, -110],
        0.0,
        [0, 0, -1, -2, -2, -2, -2, -1],
        [23, 24, 22, 19, 15, 11, 7, 3.5],
        [14, 15, 13, 11, 9, 7, 5, 3],
        p=2.4,
        y_mode="spine",
        jitter=0.03,
    )
    canvas.draw_id(_bone("sacral_body", body, marrow), sac)
    plate = builder.shape(
        [-6, -20, -40, -60, -80, -100],
        0.0,
        [-28, -26, -22, -18, -14, -10],
        [19, 19, 16, 12, 8, 5],
        [5, 5, 4.5, 4, 3, 2.5],
        p=2.2,
        y_mode="spine",
        jitter=0.03,
    )
    canvas.draw_id(_bone("sacral_dorsal_plate", plate, marrow), sac)
    crest = builder.shape([-8, -30, -60, -85], 0.0, [-34, -31, -24, -17], 3.0, [5, 5, 4, 3], y_mode="spine", jitter=0.0)
    canvas.draw_id(_bone("median_sacral_crest", crest, marrow, 1.0), sac)
    canal = builder.shape(
        [-8, -30, -55, -80, -95],
        0.0,
        [-21, -19, -16, -12, -9],
        [11, 10, 8, 6, 4],
        [5, 4.5, 3.5, 3, 2],
        y_mode="spine",
        jitter=0.0,
    )
    canvas.draw_id(Structure("sacral_canal", canal, TISSUES["visceral_fat"]), tissue_id("epidural_fat"))
    landmarks["sacrum"] = body.z_range
