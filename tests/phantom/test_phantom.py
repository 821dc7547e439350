"""Phantom: determinism, labels, world-space sides, ground truth consistency, cohort statistics, options."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import binary_erosion
from scripts.labels import LABELS, MUSCLES, SIDES, label_value
from scripts.phantom import (
    PAPER_REFERENCE,
    Acquisition,
    draw_muscle_ff,
    draw_participant,
    generate_subject,
    write_subject,
)
from scripts.phantom.render import Canvas, RenderGrid, Shape, Structure, Tissue

TINY = Acquisition.preset("tiny")


def _world_centroid_x(label: np.ndarray, affine: np.ndarray, value: int) -> float:
    ijk = np.argwhere(label == value)
    return float((affine[:3, :3] @ ijk.mean(0) + affine[:3, 3])[0])


def test_same_seed_same_bytes_and_other_seed_differs():
    a = generate_subject(3, TINY)
    b = generate_subject(3, TINY)
    c = generate_subject(4, TINY)
    for k in a.images:
        assert a.images[k].tobytes() == b.images[k].tobytes(), k
    assert not np.array_equal(a.images["inphase"], c.images["inphase"])
    pd.testing.assert_frame_equal(a.truth, b.truth)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_nine_label_values_present(seed):
    s = generate_subject(seed, TINY)
    assert set(np.unique(s.images["label"])) == set(LABELS)


@pytest.mark.parametrize("orientation", ["RAS", "LPS"])
def test_left_labels_on_patient_left_in_world(orientation):
    s = generate_subject(5, Acquisition.preset("tiny", orientation=orientation))
    codes = nib.aff2axcodes(s.affine)
    assert "".join(codes) == orientation
    for muscle in MUSCLES:
        xl = _world_centroid_x(s.images["label"], s.affine, label_value(muscle, "left"))
        xr = _world_centroid_x(s.images["label"], s.affine, label_value(muscle, "right"))
        # RAS world: +x is the patient's right
        assert xl < xr - 20.0, (muscle, xl, xr)


def test_lps_and_ras_storage_hold_the_same_world_anatomy():
    ras = generate_subject(6, Acquisition.preset("tiny", orientation="RAS"))
    lps = generate_subject(6, Acquisition.preset("tiny", orientation="LPS"))
    assert not np.array_equal(ras.images["label"], lps.images["label"])
    for v in range(1, 9):
        cr = _world_centroid_x(ras.images["label"], ras.affine, v)
        cl = _world_centroid_x(lps.images["label"], lps.affine, v)
        assert cr == pytest.approx(cl, abs=1e-6)


def test_truth_mean_ff_equals_ff_from_written_water_and_fat(tmp_path):
    s = generate_subject(8, Acquisition.preset("tiny", orientation="LPS", ff_scale="percent"))
    paths = write_subject(s, tmp_path)
    water = nib.load(tmp_path / paths["water"]).get_fdata()
    fat = nib.load(tmp_path / paths["fat"]).get_fdata()
    label = np.asarray(nib.load(tmp_path / paths["label"]).dataobj)
    ff_map = nib.load(tmp_path / paths["ff"]).get_fdata()
    for v in range(1, 9):
        m = label == v
        expected = 100.0 * np.mean(fat[m] / (fat[m] + water[m]))
        row = s.truth[s.truth.label == v].iloc[0]
        assert row.ff_mean_pct == pytest.approx(expected, abs=1e-6)
        # the stored FF map (percent here) is the same quantity
        assert np.mean(ff_map[m]) == pytest.approx(expected, abs=1e-3)
        assert row.volume_ml == pytest.approx(m.sum() * np.prod(TINY.spacing) / 1000.0)
    mean_rows = s.truth[s.truth.side == "mean"].set_index("muscle")
    for muscle in MUSCLES:
        sides = s.truth[(s.truth.muscle == muscle) & (s.truth.side != "mean")]
        assert mean_rows.loc[muscle, "ff_mean_pct"] == pytest.approx(sides.ff_mean_pct.mean())


def test_label_mean_reaches_drawn_target_at_realistic_resolution():
    s = generate_subject(11, Acquisition.preset("low", snr=1e6, bias=0.0))
    t = s.truth[s.truth.side != "mean"]
    # noise-free truth is renormalised to the drawn target; at SNR 1e6 the written images agree too
    np.testing.assert_allclose(t.ff_true_pct, t.ff_target_pct, atol=0.05)
    np.testing.assert_allclose(t.ff_mean_pct, t.ff_target_pct, atol=0.3)


def test_noise_bias_of_written_ff_is_small_at_default_snr():
    s = generate_subject(12, Acquisition.preset("low"))
    t = s.truth[s.truth.side != "mean"]
    # Rician noise inflates the small fat signal (Liu 2007); anterior muscles far from the posterior coil see a
    # lower SNR, so their bias is the largest, but it stays around a percentage point at SNR 30
    assert np.max(np.abs(t.ff_mean_pct - t.ff_true_pct)) < 1.5
    assert np.median(t.ff_mean_pct - t.ff_true_pct) > -0.1


def test_two_hundred_subjects_reproduce_paper_medians_and_iqrs():
    rng = np.random.default_rng(2026)
    rows = []
    for i in range(200):
        p = draw_participant(f"s{i}", rng)
        ff = draw_muscle_ff(p, rng)
        for m in MUSCLES:
            rows.append(dict(sex=p.sex, activity=p.activity, muscle=m, ff=50.0 * (ff[(m, "left")] + ff[(m, "right")])))
    df = pd.DataFrame(rows)
    for m, (q1, med, q3) in PAPER_REFERENCE.items():
        v = df[df.muscle == m].ff
        # sampling error with n = 200: about 3 % on the median and 4-5 % on the quartiles
        assert v.median() == pytest.approx(med, rel=0.08), m
        assert v.quantile(0.25) == pytest.approx(q1, rel=0.10), m
        assert v.quantile(0.75) == pytest.approx(q3, rel=0.10), m
        women, men = df[(df.muscle == m) & (df.sex == "F")].ff, df[(df.muscle == m) & (df.sex == "M")].ff
        assert women.median() > men.median()
        inactive = df[(df.muscle == m) & (df.activity == "inactive")].ff
        active = df[(df.muscle == m) & (df.activity == "active")].ff
        assert inactive.median() > active.median()


def test_global_swap_exchanges_water_and_fat_and_truth_keeps_true_values():
    plain = generate_subject(9, TINY)
    swapped = generate_subject(9, Acquisition.preset("tiny", swap="global"))
    np.testing.assert_array_equal(plain.images["water"], swapped.images["fat"])
    pd.testing.assert_series_equal(plain.truth.ff_mean_pct, swapped.truth.ff_mean_pct)
    assert (swapped.truth.swapped_fraction == 1.0).all()


def test_regional_swap_flags_part_of_the_volume():
    s = generate_subject(10, Acquisition.preset("low", swap="regional"))
    assert s.flags["swap_radius_mm"] > 0
    frac = s.truth[s.truth.side != "mean"].swapped_fraction
    assert frac.max() <= 1.0 and frac.min() >= 0.0
    changed = s.images["water"] != generate_subject(10, Acquisition.preset("low")).images["water"]
    assert 0.001 < changed.mean() < 0.5


def test_truncated_coverage_cuts_slices_and_flags_labels():
    full = generate_subject(13, TINY)
    cut = generate_subject(13, Acquisition.preset("tiny", coverage="truncated"))
    assert cut.images["label"].shape[2] < full.images["label"].shape[2]
    k0 = cut.flags["truncated_slices"][0]
    np.testing.assert_allclose(cut.affine[:3, 3], full.affine[:3, 3] + k0 * full.affine[:3, 2])
    t = cut.truth[(cut.truth.side != "mean") & (cut.truth.n_voxels > 0)]
    assert (t.truncated_inferior | t.truncated_superior).any()


@pytest.mark.parametrize(
    "scale,dtype,top", [("fraction", np.float32, 1.0), ("percent", np.float32, 100.0), ("permille", np.int16, 1000)]
)
def test_ff_map_scales(scale, dtype, top):
    s = generate_subject(14, Acquisition.preset("tiny", ff_scale=scale))
    ff = s.images["ff"]
    assert ff.dtype == dtype
    assert ff.max() <= top and ff.max() > 0.8 * top


def test_spacing_changes_shape_but_not_anatomy_size():
    a = generate_subject(15, Acquisition.preset("low"))
    b = generate_subject(15, Acquisition.from_spacing((1.6, 1.6, 3.5)))
    va = a.truth[a.truth.side == "mean"].volume_ml.to_numpy()
    vb = b.truth[b.truth.side == "mean"].volume_ml.to_numpy()
    np.testing.assert_allclose(va, vb, rtol=0.06)


def test_reference_geometry_shape():
    acq = Acquisition.preset("reference")
    assert acq.shape == (400, 320, 145)
    assert acq.spacing[2] == 2.6


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(orientation="RAI"), "orientation"),
        (dict(swap="partial"), "swap"),
        (dict(ff_scale="pct"), "ff_scale"),
        (dict(coverage="half"), "coverage"),
        (dict(snr=0), "snr"),
        (dict(bias=-1), "bias"),
        (dict(shape=(4, 64, 32)), "shape"),
        (dict(spacing=(1, 0, 1)), "spacing"),
    ],
)
def test_invalid_acquisition_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Acquisition(**kwargs)


def test_partial_volume_occupancy_sums_to_disc_area():
    grid = RenderGrid((40, 40, 4), (1.5, 1.5, 4.0), (-30.0, -30.0, 0.0))
    canvas = Canvas(grid, n_sub=4)
    r = 10.3
    shape = Shape(z=[-10.0, 30.0], cx=0.2, cy=-0.4, a=r, b=r)
    canvas.draw(Structure("disc", shape, Tissue("t", 1.0, 0.25)))
    total = canvas.water + canvas.fat
    area = total[:, :, 1].sum() * 1.5 * 1.5
    assert area == pytest.approx(np.pi * r * r, rel=0.01)
    frac = canvas.fat / np.where(total > 0, total, 1)
    assert np.allclose(frac[total > 0], 0.25)
    # boundary voxels are partial, not binary
    assert ((total > 0.05) & (total < 0.95)).sum() > 20


def test_write_refuses_to_overwrite(tmp_path):
    s = generate_subject(1, TINY)
    write_subject(s, tmp_path)
    other = generate_subject(2, TINY)
    other.subject_id = s.subject_id
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_subject(other, tmp_path)


def test_septa_texture_reaches_targets_and_puts_bright_fat_inside_the_muscles():
    """The "septa" texture: label means still hit the drawn targets (voxel-signal renormalisation), and fat inside
    ES+MF is about as bright as subcutaneous fat in the in-phase image (a fat volume fraction), where the "smooth"
    texture keeps intramuscular fat at the muscle's total signal (well under half of subcutaneous fat)."""
    acq = Acquisition.preset("low", snr=1e6, bias=0.0)
    septa, smooth = generate_subject(11, acq, texture="septa"), generate_subject(11, acq, texture="smooth")
    t = septa.truth[septa.truth.side != "mean"]
    np.testing.assert_allclose(t.ff_true_pct, t.ff_target_pct, atol=0.05)
    np.testing.assert_allclose(t.ff_mean_pct, t.ff_target_pct, atol=0.3)
    # same anatomy and labels: the texture draws from its own stream
    assert np.array_equal(septa.images["label"], smooth.images["label"])

    def brightest_es_mf_relative_to_fat(s) -> float:
        ip, ff, label = s.images["inphase"].astype(float), s.images["ff_true"], s.images["label"]
        # the interior only: voxels at the label edge share their signal with the fascia
        es = binary_erosion(
            np.isin(label, [label_value("erector_spinae_multifidus", side) for side in SIDES]), iterations=2
        )
        sat = (label == 0) & (ff > 0.9) & (ip > 0)
        return float(np.percentile(ip[es], 99) / np.median(ip[sat]))

    assert brightest_es_mf_relative_to_fat(septa) > 0.8
    assert brightest_es_mf_relative_to_fat(smooth) < 0.5
    with pytest.raises(ValueError, match="texture"):
        generate_subject(11, TINY, texture="marbled")


def test_writing_the_same_subject_again_is_a_no_op_and_other_content_is_refused(tmp_path):
    # a documented command run twice (README and model card both show `phantom subject --out_dir one`) must not fail
    from scripts.phantom.generate import write_subject

    subj = generate_subject(7, Acquisition.preset("tiny"))
    first = write_subject(subj, tmp_path)
    mtimes = {k: (tmp_path / p).stat().st_mtime_ns for k, p in first.items()}
    assert write_subject(subj, tmp_path) == first
    assert {k: (tmp_path / p).stat().st_mtime_ns for k, p in first.items()} == mtimes
    other = generate_subject(8, Acquisition.preset("tiny"))
    other.subject_id = subj.subject_id
    with pytest.raises(FileExistsError, match="other content"):
        write_subject(other, tmp_path)


def test_storage_refuses_non_finite_signal():
    from scripts.phantom.acquisition import STORAGE_SCALE, to_storage

    assert to_storage(np.array([0.0, 1.0, -1.0], np.float32)).tolist() == [0, int(round(STORAGE_SCALE)), 0]
    with pytest.raises(ValueError, match="2 non-finite voxels"):
        to_storage(np.array([np.nan, 1.0, np.inf], np.float32))
