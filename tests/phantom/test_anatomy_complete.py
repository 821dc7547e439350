"""Anatomy-complete phantom (``anatomy="complete"``): structures present and placed like real anatomy relative to the
spine (RAS world coordinates), psoas growth, vertebral labels, tissue map consistent with the label map, files and
datalist keys, and the default anatomy unchanged."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.ndimage import binary_dilation
from scripts.labels import label_value
from scripts.phantom import Acquisition, generate_cohort, generate_subject, write_subject
from scripts.phantom.tissue_ids import TISSUE_IDS, TISSUE_NAMES, VERTEBRA_LABELS, tissue_id

from tests.conftest import BUNDLE_ROOT

TINY = Acquisition.preset("tiny")
#: coarse but fine enough for 5-mm vessels and 3-mm sheets to own voxels (~3 s per subject on one core)
SMALL = Acquisition(shape=(110, 88, 46), spacing=(4.0, 4.0, 8.0), bias=0.0)

NEW_STRUCTURES = (
    "rectus_abdominis",
    "external_oblique",
    "internal_oblique",
    "transversus_abdominis",
    "latissimus_dorsi",
    "serratus_posterior_inferior",
    "diaphragm_crus",
    "gluteus_maximus",
    "gluteus_medius",
    "kidney",
    "common_iliac_artery",
    "common_iliac_vein",
    "lung",
)
SINGLE_STRUCTURES = (
    "aorta",
    "inferior_vena_cava",
    "liver",
    "spleen",
    "perirenal_fat",
    "renal_sinus_fat",
    "bowel_wall",
    "bowel_fluid",
    "bowel_gas",
    "bowel_fatty_content",
    "mesenteric_fat",
    "intervertebral_disc",
    "pedicle",
    "lamina",
    "spinous_process",
    "transverse_process",
    "articular_process",
    "spinal_canal_csf",
    "epidural_fat",
    "iliac_bone",
    "femoral_head",
    "rib",
    "diaphragm",
)


@pytest.fixture(scope="module")
def subj():
    return generate_subject(5, SMALL, anatomy="complete")


@pytest.fixture(scope="module")
def world(subj):
    """World (RAS mm) coordinates of every voxel centre along each axis (the grid is stored RAS, axis-aligned)."""
    aff = subj.affine
    assert np.allclose(aff[:3, :3], np.diag(np.diag(aff[:3, :3]))) and np.all(np.diag(aff)[:3] > 0)
    return [aff[i, i] * np.arange(n) + aff[i, 3] for i, n in enumerate(subj.images["label"].shape)]


def _centroid(mask: np.ndarray, world) -> np.ndarray:
    ijk = np.argwhere(mask)
    assert ijk.size, "structure absent"
    return np.array([world[a][ijk[:, a]].mean() for a in range(3)])


def _spine(subj, world) -> dict[str, np.ndarray]:
    """Centroid (x, y, z) of each vertebral body L1-L5 and the sacrum, from the vertebral label map."""
    v = subj.images["vertebrae"]
    return {name: _centroid(v == value, world) for value, name in VERTEBRA_LABELS.items()}


def test_default_anatomy_is_unchanged_and_has_no_new_maps():
    a = generate_subject(2, TINY)
    b = generate_subject(2, TINY, anatomy="default")
    assert set(a.images) == set(b.images) == {"water", "fat", "inphase", "opposed", "ff", "label", "ff_true"}
    for k in a.images:
        assert a.images[k].tobytes() == b.images[k].tobytes(), k
    c = generate_subject(2, TINY, anatomy="complete")
    assert not np.array_equal(a.images["inphase"], c.images["inphase"])
    with pytest.raises(ValueError, match="anatomy"):
        generate_subject(2, TINY, anatomy="ellipses")


def test_same_seed_same_bytes_and_subjects_vary():
    a = generate_subject(4, TINY, anatomy="complete")
    b = generate_subject(4, TINY, anatomy="complete")
    c = generate_subject(9, TINY, anatomy="complete")
    for k in a.images:
        assert a.images[k].tobytes() == b.images[k].tobytes(), k
    assert not np.array_equal(a.images["tissue"], c.images["tissue"])
    # anatomical variability: wall-muscle and kidney volumes differ between subjects
    for name in ("rectus_abdominis_left", "kidney_right", "liver"):
        assert (a.images["tissue"] == tissue_id(name)).sum() != (c.images["tissue"] == tissue_id(name)).sum(), name


def test_tissue_and_vertebral_maps_agree_with_labels(subj):
    tis, lab, ver = subj.images["tissue"], subj.images["label"], subj.images["vertebrae"]
    assert tis.dtype == np.uint8 and ver.dtype == np.uint8 and tis.shape == lab.shape == ver.shape
    assert set(np.unique(tis).tolist()) <= set(TISSUE_IDS)
    # every target voxel carries its muscle's tissue id, and all eight muscles are labelled
    assert np.array_equal(tis[lab > 0], lab[lab > 0])
    assert set(np.unique(lab).tolist()) == set(range(9))
    assert set(np.unique(ver).tolist()) == {0, *VERTEBRA_LABELS}
    assert np.array_equal(ver, np.where((tis >= 9) & (tis <= 14), tis, 0))


def test_target_ff_is_reached_as_in_the_default_anatomy(subj):
    t = subj.truth[subj.truth.side != "mean"]
    assert (t.n_voxels > 0).all()
    np.testing.assert_allclose(t.ff_true_pct, t.ff_target_pct, atol=0.05)


def test_every_new_structure_is_present(subj):
    present = set(np.unique(subj.images["tissue"]).tolist())
    names = [f"{s}_{side}" for s in NEW_STRUCTURES for side in ("left", "right")] + list(SINGLE_STRUCTURES)
    missing = [n for n in names if TISSUE_NAMES[n] not in present]
    assert not missing, missing


def test_vertebral_labels_run_l1_to_l5_then_sacrum_cranio_caudally(subj, world):
    sp = _spine(subj, world)
    z = [sp[VERTEBRA_LABELS[v]][2] for v in range(9, 15)]
    assert all(a > b for a, b in zip(z, z[1:])), z
    # one level is ~36 mm (times the height factor)
    assert 25 < float(np.mean(-np.diff(z[:5]))) < 45


def test_paired_structures_left_on_the_left(subj, world):
    tis = subj.images["tissue"]
    x_mid = float(np.mean([c[0] for c in _spine(subj, world).values()]))
    for base in NEW_STRUCTURES + ("psoas", "quadratus_lumborum", "erector_spinae_multifidus", "iliacus"):
        xl = _centroid(tis == TISSUE_NAMES[f"{base}_left"], world)[0]
        xr = _centroid(tis == TISSUE_NAMES[f"{base}_right"], world)[0]
        assert xl < x_mid < xr, (base, xl, x_mid, xr)
    # aorta left of the midline, IVC and liver right, spleen left
    assert _centroid(tis == tissue_id("aorta"), world)[0] < x_mid
    assert _centroid(tis == tissue_id("inferior_vena_cava"), world)[0] > x_mid
    assert _centroid(tis == tissue_id("liver"), world)[0] > x_mid + 30
    assert _centroid(tis == tissue_id("spleen"), world)[0] < x_mid - 30


def test_structures_sit_where_they_do_relative_to_the_spine(subj, world):
    tis = subj.images["tissue"]
    sp = _spine(subj, world)
    body_y = float(np.mean([sp[f"vertebral_body_L{i}"][1] for i in range(1, 6)]))

    def c(name: str) -> np.ndarray:
        return _centroid(np.isin(tis, [v for k, v in TISSUE_NAMES.items() if k.startswith(name)]), world)

    assert c("rectus_abdominis")[1] > body_y + 60  # anterior wall
    for name in ("external_oblique", "internal_oblique", "transversus_abdominis"):
        assert abs(c(f"{name}_right")[0] - sp["vertebral_body_L3"][0]) > 80, name  # lateral wall
    assert c("latissimus_dorsi")[1] < body_y
    assert abs(c("latissimus_dorsi_left")[0] - c("latissimus_dorsi_right")[0]) > 120
    assert c("serratus_posterior_inferior")[1] < body_y
    for name in ("aorta", "inferior_vena_cava"):
        assert c(name)[1] > body_y + 10, name  # on the front of the bodies
    # crura, liver and spleen tips, kidneys: upper levels; gluteals and femoral heads: pelvis
    for name in ("diaphragm_crus", "liver", "spleen"):
        assert c(name)[2] > sp["vertebral_body_L2"][2], name
    assert sp["vertebral_body_L4"][2] < c("kidney")[2] < sp["vertebral_body_L1"][2] + 40
    for name in ("gluteus_maximus", "gluteus_medius", "femoral_head"):
        assert c(name)[2] < sp["vertebral_body_L5"][2], name
    # posterior elements and canal behind the bodies, spinous processes behind the canal
    for name in ("pedicle", "lamina", "spinous_process", "transverse_process", "spinal_canal_csf"):
        assert c(name)[1] < body_y - 10, name
    assert c("spinous_process")[1] < c("spinal_canal_csf")[1] - 15
    # bowel in front of the spine
    assert c("bowel_")[1] > body_y + 20
    # the sacral alae make the sacrum wider than the L5 body
    xs = world[0][np.argwhere(tis == 14)[:, 0]]
    x5 = world[0][np.argwhere(tis == 13)[:, 0]]
    assert np.ptp(xs) > 1.5 * np.ptp(x5)


def test_lung_bases_sit_in_the_posterior_recesses_above_l1(subj, world):
    tis = subj.images["tissue"]
    sp = _spine(subj, world)
    lungs = np.isin(tis, [tissue_id("lung_left"), tissue_id("lung_right")])
    lowest = world[2][np.nonzero(lungs.any(axis=(0, 1)))[0].min()]
    # they start between the L1 body and one level above it (the costophrenic recess at T12-L1)
    assert sp["vertebral_body_L2"][2] < lowest < sp["vertebral_body_L1"][2] + 45
    body_y = sp["vertebral_body_L1"][1]
    for side in ("left", "right"):
        lung = _centroid(tis == tissue_id(f"lung_{side}"), world)
        esmf = _centroid(subj.images["label"] == label_value("erector_spinae_multifidus", side), world)
        assert abs(lung[0] - sp["vertebral_body_L1"][0]) > abs(esmf[0] - sp["vertebral_body_L1"][0])  # lateral
        assert lung[1] < body_y + 30  # in the back half of the trunk, not in front of the organs
    # each lies inside its shell of diaphragm muscle, which is never a target label
    dia = tis == tissue_id("diaphragm")
    assert (binary_dilation(lungs, iterations=2) & dia).sum() > 0.5 * dia.sum()
    assert not np.any(subj.images["label"][dia])


def _level_slices(subj, world, value: int) -> np.ndarray:
    return np.nonzero((subj.images["vertebrae"] == value).any(axis=(0, 1)))[0]


def test_psoas_lies_against_the_vertebral_body_antero_laterally(subj, world):
    lab, tis = subj.images["label"], subj.images["tissue"]
    body = (tis >= 9) & (tis <= 13)
    for side in ("left", "right"):
        ps = lab == label_value("psoas", side)
        touching, n = 0, 0
        for value in (10, 11, 12):  # L2-L4
            ks = _level_slices(subj, world, value)
            nb = body[:, :, ks].sum(axis=(0, 1))
            # slices through the body itself, not the rim of an endplate
            for k in ks[nb >= 0.5 * nb.max()]:
                if not ps[:, :, k].any():
                    continue
                n += 1
                touching += bool((binary_dilation(ps[:, :, k], iterations=1) & body[:, :, k]).any())
                p = _centroid(ps[:, :, k : k + 1], world[:2] + [world[2][k : k + 1]])
                b = _centroid(body[:, :, k : k + 1], world[:2] + [world[2][k : k + 1]])
                assert abs(p[0] - b[0]) > 20, (side, k)  # lateral to the body
                assert p[1] > b[1] - 12, (side, k)  # beside it (posterior half at L1-L2) or in front, never behind
        assert n >= 4 and touching / n >= 0.75, (side, touching, n)
    # in front of the transverse processes (the QL lies behind them)
    tp_y = _centroid(tis == tissue_id("transverse_process"), world)[1]
    assert _centroid((lab == 1) | (lab == 2), world)[1] > tp_y + 10


def test_psoas_grows_caudally_from_t12_l1(subj, world):
    lab = subj.images["label"]
    ps = (lab == label_value("psoas", "left")) | (lab == label_value("psoas", "right"))
    area = ps.sum(axis=(0, 1)) * subj.affine[0, 0] * subj.affine[1, 1] / 100.0  # cm^2, both sides
    per_level = [float(area[_level_slices(subj, world, v)].mean()) for v in (9, 10, 11, 12, 13)]  # L1..L5
    assert all(a < b for a, b in zip(per_level, per_level[1:])), per_level
    assert per_level[0] < 0.4 * per_level[4], per_level
    # it starts at T12-L1: no psoas above ~one level over the L1 body
    top = np.nonzero(ps.any(axis=(0, 1)))[0].max()
    assert world[2][top] < _spine(subj, world)["vertebral_body_L1"][2] + 60


def test_lps_and_truncated_storage_carry_the_maps():
    ras = generate_subject(6, TINY, anatomy="complete")
    lps = generate_subject(6, Acquisition.preset("tiny", orientation="LPS"), anatomy="complete")
    assert np.array_equal(lps.images["tissue"][::-1, ::-1, :], ras.images["tissue"])
    assert np.array_equal(lps.images["vertebrae"][::-1, ::-1, :], ras.images["vertebrae"])
    tr = generate_subject(6, Acquisition.preset("tiny", coverage="truncated"), anatomy="complete")
    k0, k1 = tr.flags["truncated_slices"]
    assert np.array_equal(tr.images["tissue"], ras.images["tissue"][:, :, k0:k1])


def test_files_and_datalist_keys(tmp_path):
    s = generate_subject(1, TINY, anatomy="complete")
    rel = write_subject(s, tmp_path / "one")
    assert rel["tissue"].endswith("sub-0001_tissue.nii.gz") and rel["vertebrae"].endswith("_vertebrae.nii.gz")
    d = generate_subject(1, TINY)
    assert "tissue" not in write_subject(d, tmp_path / "default")
    out = generate_cohort(
        tmp_path / "c", n=1, seed=3, geometry="tiny", variety=False, n_validation=0, progress=False, anatomy="complete"
    )
    entry = json.loads(open(out["datalist"]).read())["training"][0]
    assert {"image", "label", "tissue", "vertebrae"} <= set(entry)
    out = generate_cohort(tmp_path / "d", n=1, seed=3, geometry="tiny", variety=False, n_validation=0, progress=False)
    entry = json.loads(open(out["datalist"]).read())["training"][0]
    assert "tissue" not in entry and "vertebrae" not in entry


def test_cli_anatomy_flag(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.phantom",
            "subject",
            "--out_dir",
            str(tmp_path),
            "--seed",
            "2",
            "--geometry",
            "tiny",
            "--anatomy",
            "complete",
        ],
        cwd=BUNDLE_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "sub-0002" / "sub-0002_tissue.nii.gz").exists()
    assert (tmp_path / "sub-0002" / "sub-0002_vertebrae.nii.gz").exists()


def test_sheets_paint_nothing_above_the_trunk():
    """A grid reaching above the trunk's top keyframe (a sheet's keyframes reach higher) keeps finite water and fat:
    before the fix those slices became NaN, stored as 0 (seed-2 held-out subject 12's upper slices)."""
    from scripts.phantom.render import RenderGrid, Shape, Tissue
    from scripts.phantom.tissue_canvas import SheetFrame, TissueCanvas, draw_sheet

    grid = RenderGrid(shape=(40, 30, 12), spacing=(4.0, 4.0, 5.0), origin=(-80.0, -60.0, 0.0))
    canvas = TissueCanvas(grid, n_sub=2)
    trunk = Shape(z=[0.0, 30.0], cx=0.0, cy=0.0, a=60.0, b=40.0)  # the trunk ends at z 30 mm; the grid goes to 55
    frame = SheetFrame(canvas, trunk, (0.0, 60.0))
    z = np.array([0.0, 60.0])
    draw_sheet(
        frame,
        "left",
        z,
        np.full(2, 2.0),
        np.full(2, 5.0),
        np.full(2, 40.0),
        np.full(2, 140.0),
        Tissue("m", 0.5, 0.1),
        40,
    )
    assert np.isfinite(canvas.water).all() and np.isfinite(canvas.fat).all()
    assert canvas.water[..., :6].max() > 0.4  # painted where the trunk is
    assert canvas.water[..., 8:].max() == 0.0  # nothing above it
