"""Tests of scripts/io/dixon_inputs.py: discovery of Dixon sets, one test per refused input, FF with known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scripts.io.dixon_inputs import (
    DixonInputError,
    compute_ff,
    discover_subjects,
    dixon_set_of,
    load_dixon,
    recognise_role,
)
from scripts.phantom import Acquisition, generate_cohort, generate_subject, write_subject

SHAPE = (12, 10, 6)
SPACING = (2.0, 2.0, 5.0)  # thick slices along array axis 2: a 2D axial acquisition


def _affine(spacing: tuple[float, float, float] = SPACING) -> np.ndarray:
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = (-10.0, -20.0, 30.0)
    return aff


def _write(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), _affine() if affine is None else affine), str(path))
    return str(path)


def _water_fat(tmp_path: Path, water=80.0, fat=20.0) -> dict:
    """A water/fat entry; each of ``water``/``fat`` is a constant, an array, or ``(array, affine)``."""
    entry: dict = {"subject": "S1"}
    for role, value in (("water", water), ("fat", fat)):
        data, aff = value if isinstance(value, tuple) else (value, None)
        if np.isscalar(data):
            data = np.full(SHAPE, data, np.float32)
        entry[role] = _write(tmp_path / f"S1_{role}.nii.gz", data, aff)
    return entry


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Two tiny phantom subjects (one in "testing") written by the phantom's own cohort writer."""
    out = tmp_path_factory.mktemp("cohort")
    generate_cohort(out, n=2, geometry="tiny", variety=False, n_testing=1, progress=False)
    return out


# ---------------------------------------------------------------------------------------------------------------
# refused inputs: each message names the file and the problem
# ---------------------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    entry = _water_fat(tmp_path)
    entry["fat"] = str(tmp_path / "S1_nofat.nii.gz")
    with pytest.raises(DixonInputError, match=r"fat image '.*S1_nofat\.nii\.gz': file not found") as info:
        load_dixon(entry)
    assert info.value.file == entry["fat"]


def test_garbage_bytes_are_not_nifti(tmp_path):
    entry = _water_fat(tmp_path)
    (tmp_path / "S1_garbage.nii.gz").write_bytes(b"this is not a NIfTI file at all" * 20)
    entry["water"] = str(tmp_path / "S1_garbage.nii.gz")
    with pytest.raises(DixonInputError, match=r"water image '.*S1_garbage\.nii\.gz': not a NIfTI file"):
        load_dixon(entry)


def test_uncompressed_garbage_and_wrong_extension_are_not_nifti(tmp_path):
    entry = _water_fat(tmp_path)
    (tmp_path / "S1_raw.nii").write_bytes(bytes(400))
    entry["water"] = str(tmp_path / "S1_raw.nii")
    with pytest.raises(DixonInputError, match=r"S1_raw\.nii': not a NIfTI file \(no NIfTI-1/NIfTI-2 magic"):
        load_dixon(entry)
    (tmp_path / "S1_water.mha").write_bytes(b"ObjectType = Image\n")
    entry["water"] = str(tmp_path / "S1_water.mha")
    with pytest.raises(DixonInputError, match=r"S1_water\.mha': not a NIfTI file \(extension '\.mha'"):
        load_dixon(entry)


def test_4d_refused_but_trailing_singleton_accepted(tmp_path):
    entry = _water_fat(tmp_path, water=np.full((*SHAPE, 3), 80.0, np.float32))
    with pytest.raises(DixonInputError, match=r"water image '.*S1_water\.nii\.gz': is 4D with 3 volumes"):
        load_dixon(entry)
    entry = _water_fat(tmp_path, water=np.full((*SHAPE, 1), 80.0, np.float32))
    scan = load_dixon(entry)
    assert scan.images["water"].shape == SHAPE and scan.shape == SHAPE


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_non_finite_refused(tmp_path, bad, word):
    fat = np.full(SHAPE, 20.0, np.float32)
    fat[3, 4, 2] = bad
    entry = _water_fat(tmp_path, fat=fat)
    with pytest.raises(DixonInputError, match=rf"fat image '.*S1_fat\.nii\.gz': contains 1 {word}"):
        load_dixon(entry)


def test_negative_magnitude_refused_small_negatives_clipped(tmp_path):
    rng = np.random.default_rng(0)
    phase_like = rng.uniform(-np.pi, np.pi, SHAPE).astype(np.float32)  # about half the voxels far below zero
    entry = _water_fat(tmp_path, water=phase_like)
    with pytest.raises(DixonInputError, match=r"water image '.*S1_water\.nii\.gz': has negative intensities: "):
        load_dixon(entry)
    # one voxel slightly negative, as noise gives in a signed (GE) reconstruction: clipped with a warning
    water = np.full(SHAPE, 80.0, np.float32)
    water[0, 0, 0] = -3.0
    entry = _water_fat(tmp_path, water=water)
    with pytest.warns(RuntimeWarning, match="1 negative value"):
        scan = load_dixon(entry)
    assert scan.images["water"].min() == 0.0
    assert any("clipped to 0" in w and "S1_water.nii.gz" in w for w in scan.warnings)


def test_all_zero_refused(tmp_path):
    entry = _water_fat(tmp_path, fat=np.zeros(SHAPE, np.float32))
    with pytest.raises(DixonInputError, match=r"fat image '.*S1_fat\.nii\.gz': is all zero"):
        load_dixon(entry)


def test_shape_mismatch_refused(tmp_path):
    entry = _water_fat(tmp_path, fat=np.full((12, 10, 5), 20.0, np.float32))
    with pytest.raises(
        DixonInputError,
        match=r"grid mismatch between water image '.*S1_water\.nii\.gz' and fat "
        r"image '.*S1_fat\.nii\.gz': shape \(12, 10, 6\) vs \(12, 10, 5\)",
    ):
        load_dixon(entry)


def test_spacing_mismatch_one_percent_refused_five_hundredths_accepted(tmp_path):
    fat = np.full(SHAPE, 20.0, np.float32)
    entry = _water_fat(tmp_path, fat=(fat, _affine((2.0 * 1.01, 2.0, 5.0))))
    with pytest.raises(DixonInputError, match=r"S1_fat\.nii\.gz'.*voxel spacing .*relative difference 0\.990%"):
        load_dixon(entry)
    entry = _water_fat(tmp_path, fat=(fat, _affine((2.0 * 1.0005, 2.0, 5.0))))
    scan = load_dixon(entry)
    np.testing.assert_array_equal(scan.affine, _affine())  # the reference (water) affine is the common one


def test_non_axial_refused_and_oblique_warned(tmp_path):
    def rotated(deg: float) -> np.ndarray:
        c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
        rot = np.eye(4)
        rot[1:3, 1:3] = [[c, -s], [s, c]]  # about world x
        return rot @ _affine()

    water, fat = np.full(SHAPE, 80.0, np.float32), np.full(SHAPE, 20.0, np.float32)
    entry = _water_fat(tmp_path, water=(water, rotated(45)), fat=(fat, rotated(45)))
    with pytest.raises(
        DixonInputError,
        match=r"water image '.*S1_water\.nii\.gz': slices are not axial: .* 45\.0 " r"degrees from world z",
    ):
        load_dixon(entry)
    entry = _water_fat(tmp_path, water=(water, rotated(20)), fat=(fat, rotated(20)))
    with pytest.warns(RuntimeWarning, match="oblique slices"):
        scan = load_dixon(entry)
    assert scan.slice_axis == 2 and abs(scan.slice_tilt_deg - 20.0) < 1e-4  # NIfTI stores the affine as float32
    assert scan.corrections == ["oblique_slices"]  # tolerated, and said so in the tables' flags


def test_field_of_view_smaller_than_minimum(tmp_path):
    entry = _water_fat(tmp_path)  # FOV 24 x 20 x 30 mm
    expected = (
        r"water image '.*S1_water\.nii\.gz': field of view 24\.0 x 20\.0 x 30\.0 mm .* smaller than the "
        r"minimum 20\.0 x 20\.0 x 40\.0 mm along z"
    )
    with pytest.raises(DixonInputError, match=expected):
        load_dixon(entry, min_shape_mm=(20.0, 20.0, 40.0))
    assert load_dixon(entry, min_shape_mm=20.0).shape == SHAPE


def test_incomplete_set_refused(tmp_path):
    entry = _water_fat(tmp_path)
    entry["fat"] = None
    with pytest.raises(DixonInputError, match=r"subject 'S1': no usable Dixon set: found water \(S1_water\.nii\.gz\)"):
        load_dixon(entry)


# ---------------------------------------------------------------------------------------------------------------
# discovery
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, role, prefix",
    [
        ("P01_W.nii.gz", "water", "P01"),
        ("sub-0001_water.nii.gz", "water", "sub-0001"),
        ("P01_dixon_W.nii", "water", "P01"),
        ("P01_F.NII.GZ", "fat", "P01"),
        ("P01_IP.nii.gz", "inphase", "P01"),
        ("P01_in-phase.nii.gz", "inphase", "P01"),
        ("P01_OP.nii.gz", "opposed", "P01"),
        ("P01_out_phase.nii.gz", "opposed", "P01"),
        ("P01_fat_fraction.nii.gz", "ff", "P01"),
        ("P01_PDFF.nii.gz", "ff", "P01"),
        ("P01_seg.nii.gz", "label", "P01"),
        ("water.nii.gz", "water", ""),
        ("sub-0001_ff_true.nii.gz", None, "sub-0001_ff_true"),
        ("P01W.nii.gz", None, "P01W"),
        ("notes_w.txt", None, "notes_w.txt"),
    ],
)
def test_recognise_role(name, role, prefix):
    assert recognise_role(name) == (role, prefix)


def test_discover_from_phantom_datalist(cohort):
    entries = discover_subjects(cohort, datalist=cohort / "datalist.json", datalist_key="testing")
    assert [e["subject"] for e in entries] == ["sub-0002"]
    e = entries[0]
    assert e["dixon_set"] == "water_fat+inphase"
    for role in ("water", "fat", "inphase", "opposed", "ff", "label"):
        assert Path(e[role]).is_absolute() and Path(e[role]).is_file()
        assert Path(e[role]).name == f"sub-0002_{role}.nii.gz"
    assert e["image"] == e["inphase"]
    # an absent key falls back to every section, with a warning in the log
    assert [x["subject"] for x in discover_subjects(None, cohort / "datalist.json", "holdout")] == [
        "sub-0001",
        "sub-0002",
    ]


def test_discover_folder_with_subject_subfolders(cohort):
    entries = discover_subjects(cohort)  # datalist.json, csv and tsv at the top are not NIfTI; ff_true is ignored
    assert [e["subject"] for e in entries] == ["sub-0001", "sub-0002"]
    assert all(e["dixon_set"] == "water_fat+inphase" for e in entries)
    assert Path(entries[0]["ff"]).name == "sub-0001_ff.nii.gz"
    assert Path(entries[0]["label"]).name == "sub-0001_label.nii.gz"


def test_discover_flat_folder_and_network_input(tmp_path):
    data = np.full(SHAPE, 50.0, np.float32)
    for name in ("P01_W", "P01_F", "P01_IP", "P02_W", "P02_F", "P03_IP", "P03_OP", "P04_IP", "P04_FF"):
        _write(tmp_path / f"{name}.nii.gz", data)
    (tmp_path / "README.txt").write_text("scans")
    entries = {e["subject"]: e for e in discover_subjects(tmp_path)}
    assert sorted(entries) == ["P01", "P02", "P03", "P04"]
    assert entries["P01"]["dixon_set"] == "water_fat+inphase"
    assert entries["P01"]["image"] == str(tmp_path / "P01_IP.nii.gz")  # in-phase when present
    assert entries["P02"]["dixon_set"] == "water_fat" and entries["P02"]["inphase"] is None
    assert entries["P02"]["image"] == [str(tmp_path / "P02_W.nii.gz"), str(tmp_path / "P02_F.nii.gz")]
    assert entries["P03"]["dixon_set"] == "inphase_opposed"
    assert entries["P04"]["dixon_set"] == "ff_map+inphase"
    assert dixon_set_of(["water", "ff"]) is None


def test_discover_with_explicit_mapping(tmp_path):
    data = np.full(SHAPE, 50.0, np.float32)
    for sid in ("A7", "B9"):
        for echo in ("e3", "e4"):
            _write(tmp_path / sid / f"{sid}_mag_{echo}.nii.gz", data)
    with pytest.raises(ValueError, match="no Dixon images recognised"):
        discover_subjects(tmp_path)  # echo numbers say nothing about water or fat
    # a pattern without "/" matches file names at any depth; one with "/" matches the path under dataset_dir
    mapping = {"water": "*_mag_e3.nii.gz", "fat": "*/*_MAG_E4.nii.gz"}
    for given in (mapping, _json(tmp_path.parent / "mapping.json", mapping)):
        entries = discover_subjects(tmp_path, mapping=given)
        assert [e["subject"] for e in entries] == ["A7", "B9"]
        assert entries[1]["water"] == str(tmp_path / "B9" / "B9_mag_e3.nii.gz")
        assert entries[1]["fat"] == str(tmp_path / "B9" / "B9_mag_e4.nii.gz")
        assert entries[1]["dixon_set"] == "water_fat"
        assert entries[1]["image"] == [entries[1]["water"], entries[1]["fat"]]


def _json(path: Path, obj: dict) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def test_ambiguous_names_raise_naming_both_files(tmp_path):
    data = np.full(SHAPE, 50.0, np.float32)
    for name in ("P01_W", "P01_water", "P01_F"):
        _write(tmp_path / f"{name}.nii.gz", data)
    with pytest.raises(
        ValueError,
        match=r"ambiguous water image for subject 'P01'.*P01_W\.nii\.gz' and " r"'.*P01_water\.nii\.gz' both match",
    ):
        discover_subjects(tmp_path)


def test_unrecognisable_folder(tmp_path):
    data = np.full(SHAPE, 50.0, np.float32)
    _write(tmp_path / "scan_series3.nii.gz", data)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(
        ValueError,
        match=r"no Dixon images recognised in .*found 1 NIfTI file\(s\) "
        r"\(scan_series3\.nii\.gz\) and 1 other file\(s\) \(notes\.txt\).*mapping=",
    ):
        discover_subjects(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# fat fraction
# ---------------------------------------------------------------------------------------------------------------


def test_constant_water_fat_gives_known_ff(tmp_path):
    result = compute_ff(load_dixon(_water_fat(tmp_path, water=80.0, fat=20.0)))
    np.testing.assert_allclose(result.ff, 0.2, rtol=0, atol=1e-7)
    p = result.provenance
    assert p["ff_method"] == "water_fat" and p["ff_scale_detected"] is None and p["ff_scale_override"] is False
    assert p["ff_source"] == "water=S1_water.nii.gz; fat=S1_fat.nii.gz"
    assert p["min_denominator"] == pytest.approx(0.05 * 100.0)
    np.testing.assert_array_equal(result.affine, _affine())


def test_inphase_opposed_matches_water_fat_where_water_dominant(tmp_path):
    rng = np.random.default_rng(1)
    water = rng.uniform(40.0, 100.0, SHAPE).astype(np.float32)
    fat = (water * rng.uniform(0.02, 0.9, SHAPE)).astype(np.float32)  # FF 2-47 %: water-dominant
    fat[0] = water[0] * 3.0  # fat-dominant slab: the IP/OP assumption reads 1 - FF there
    wf = compute_ff(load_dixon(_water_fat(tmp_path, water=water, fat=fat)))
    io_entry = {
        "subject": "S1",
        "inphase": _write(tmp_path / "S1_IP.nii.gz", water + fat),
        "opposed": _write(tmp_path / "S1_OP.nii.gz", np.abs(water - fat)),
    }
    io = compute_ff(load_dixon(io_entry))
    assert io.provenance["ff_method"] == "inphase_opposed_water_dominant"
    assert "FF < 50 %" in io.provenance["assumption"]
    np.testing.assert_allclose(io.ff[1:], wf.ff[1:], atol=1e-6)
    np.testing.assert_allclose(io.ff[0], 1.0 - wf.ff[0], atol=1e-6)


def test_vendor_map_in_percent_detected_and_divided(tmp_path):
    subj = generate_subject(5, Acquisition.preset("tiny", ff_scale="percent"))
    rel = write_subject(subj, tmp_path, write_ff_true=False)
    entry = {"subject": subj.subject_id, "inphase": str(tmp_path / rel["inphase"]), "ff": str(tmp_path / rel["ff"])}
    scan = load_dixon(entry)
    assert scan.dixon_set == "ff_map+inphase"
    result = compute_ff(scan)
    p = result.provenance
    assert p["ff_method"] == "vendor_map" and p["ff_scale"] == "percent" and p["ff_scale_detected"] == "percent"
    valid = np.isfinite(result.ff)
    assert valid.sum() > 1000
    np.testing.assert_allclose(result.ff[valid], subj.images["ff"][valid] / 100.0, atol=1e-6)
    forced = compute_ff(scan, method="vendor_map", ff_scale="percent").provenance
    assert forced["ff_scale_override"] is True


def test_undecidable_ff_scale_names_the_file(tmp_path):
    entry = {
        "subject": "S1",
        "inphase": _write(tmp_path / "S1_IP.nii.gz", np.full(SHAPE, 100.0, np.float32)),
        "ff": _write(tmp_path / "S1_FF.nii.gz", np.full(SHAPE, 0.01, np.float32)),
    }  # 1 %? 0.01 %? unknown
    scan = load_dixon(entry)
    with pytest.raises(
        DixonInputError,
        match=r"FF map image '.*S1_FF\.nii\.gz': the scale of the FF map cannot " r"be decided: .*ambiguous.*ff_scale=",
    ):
        compute_ff(scan)
    assert compute_ff(scan, ff_scale="fraction").provenance["ff_scale_override"] is True


def test_magnitude_discrimination_needs_inphase(tmp_path):
    scan = load_dixon(_water_fat(tmp_path))
    with pytest.raises(
        DixonInputError,
        match=r"subject 'S1': method 'magnitude_discrimination' needs water, fat, "
        r"in-phase images; available: water \(S1_water\.nii\.gz\), fat",
    ):
        compute_ff(scan, method="magnitude_discrimination")


def test_phantom_ff_matches_truth_per_label(cohort):
    entry = discover_subjects(cohort, datalist=cohort / "datalist.json")[0]
    result = compute_ff(load_dixon(entry))
    assert result.provenance["ff_method"] == "water_fat"
    labels = np.asarray(nib.load(entry["label"]).dataobj)
    truth = pd.read_csv(cohort / "ground_truth.csv")
    truth = truth[(truth.subject == entry["subject"]) & (truth.side != "mean")].set_index("label")
    for value in range(1, 9):
        inside = result.ff[labels == value]
        assert np.isfinite(inside).all(), value
        # the CSV stores percent with 4 decimals: 5e-7 as a fraction, well inside the 1e-4 tolerance
        assert float(np.mean(inside)) == pytest.approx(truth.loc[value, "ff_mean_pct"] / 100.0, abs=1e-4)


def test_real_ge_sample_is_accepted(shared_dir):
    folder = shared_dir / "real-samples" / "ge_thigh_dixon_ff"
    (entry,) = discover_subjects(folder)
    assert entry["dixon_set"] == "water_fat" and Path(entry["ff"]).name == "fatfraction.nii.gz"
    assert Path(entry["label"]).name == "mask.nii.gz"
    with pytest.warns(RuntimeWarning, match="clipped to 0"):
        scan = load_dixon(entry)  # signed GE reconstruction: 1.4 % of water voxels below -10 % of P99
    vendor = compute_ff(scan, method="vendor_map")
    assert vendor.provenance["ff_scale_detected"] == "percent"


# ---------------------------------------------------------------------------------------------------------------
# reliability battery (docs/studies/reliability.md): corrections made visible, overrides, discovery
# ---------------------------------------------------------------------------------------------------------------


def test_half_negative_water_is_refused_and_small_clipping_is_recorded(tmp_path):
    # failed check 6: half the voxels slightly negative (each above -10 % of P99) used to be clipped silently
    water = np.full(SHAPE, 80.0, np.float32)
    water.reshape(-1)[::2] = -2.0
    with pytest.raises(DixonInputError, match=r"50\.0% of the non-zero voxels are negative.*refused"):
        load_dixon(_water_fat(tmp_path, water=water))
    water = np.full(SHAPE, 80.0, np.float32)
    water[0, 0, 0] = -3.0
    with pytest.warns(RuntimeWarning, match="clipped to 0"):
        scan = load_dixon(_water_fat(tmp_path, water=water))
    assert scan.corrections == ["negatives_clipped_water"]


def test_origin_only_mismatch_names_the_override_which_adopts_the_trusted_header(tmp_path):
    # failed check 8: water and fat differing only in origin were refused with no way forward
    shifted = _affine()
    shifted[:3, 3] += (3.0, 0.0, 0.0)
    entry = _water_fat(tmp_path, fat=(np.full(SHAPE, 20.0, np.float32), shifted))
    with pytest.raises(DixonInputError, match="--trust_voxel_grid water"):
        load_dixon(entry)
    with pytest.warns(RuntimeWarning, match="header replaced"):
        scan = load_dixon(entry, trust_voxel_grid="water")
    np.testing.assert_array_equal(scan.affine, _affine())
    assert scan.corrections == ["grid_adopted_from_water"]
    # the override never hides a real difference of shape
    entry = _water_fat(tmp_path, fat=np.full((12, 10, 5), 20.0, np.float32))
    with pytest.raises(DixonInputError, match="shape") as err:
        load_dixon(entry, trust_voxel_grid="water")
    assert "trust_voxel_grid" not in str(err.value)


def test_header_jitter_within_tolerance_is_recorded(tmp_path):
    fat = np.full(SHAPE, 20.0, np.float32)
    scan = load_dixon(_water_fat(tmp_path, fat=(fat, _affine((2.0 * 1.0005, 2.0, 5.0)))))
    assert scan.corrections == ["grid_within_tolerance"]


def test_very_thick_slices_are_warned(tmp_path):
    thick = _affine((2.0, 2.0, 20.0))
    entry = _water_fat(
        tmp_path, water=(np.full(SHAPE, 80.0, np.float32), thick), fat=(np.full(SHAPE, 20.0, np.float32), thick)
    )
    with pytest.warns(RuntimeWarning, match=r"very thick slices \(20 mm"):
        scan = load_dixon(entry)
    assert "thick_slices" in scan.corrections


def test_a_2d_image_is_not_told_to_split_echoes(tmp_path):
    entry = _water_fat(tmp_path)
    _write(Path(entry["water"]), np.full((12, 10), 80.0, np.float32))
    with pytest.raises(DixonInputError, match="single slice") as err:
        load_dixon(entry)
    assert "multi-echo" not in str(err.value)


@pytest.mark.parametrize(
    "name, role, prefix",
    [
        ("f_trunc_W.nii.gz", "water", "f_trunc"),
        ("f_trunc_F.nii.gz", "fat", "f_trunc"),
        ("w_scan_fat.nii.gz", "fat", "w_scan"),
    ],
)
def test_a_subject_name_with_a_role_letter_keeps_the_last_token_as_role(name, role, prefix):
    assert recognise_role(name) == (role, prefix)


def test_role_letters_in_subject_names_and_symlinked_folders_are_discovered(tmp_path):
    data = np.full(SHAPE, 50.0, np.float32)
    root = tmp_path / "data"
    for name in ("f_trunc_W", "f_trunc_F", "P01_W", "P01_F"):
        _write(root / f"{name}.nii.gz", data)
    elsewhere = tmp_path / "export" / "P02"
    for name in ("water", "fat"):
        _write(elsewhere / f"{name}.nii.gz", data)
    (root / "P02").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(root, target_is_directory=True)  # a link cycle is read once
    entries = {e["subject"]: e for e in discover_subjects(root)}
    assert sorted(entries) == ["P01", "P02", "f_trunc"]
    assert entries["P02"]["dixon_set"] == "water_fat"


def test_a_subject_without_a_usable_set_fails_alone_and_a_folder_of_them_is_refused(tmp_path):
    # one subject with only its FF map must not stop the discovery of the others (a cohort run records it alone)
    from scripts.io.dixon_inputs import inference_datalist

    for seed in (1, 2):
        write_subject(generate_subject(seed, Acquisition.preset("tiny")), tmp_path)
    lonely = tmp_path / "sub-0003"
    lonely.mkdir()
    ff = next(tmp_path.glob("sub-*/*_ff.nii.gz"))
    (lonely / "sub-0003_ff.nii.gz").write_bytes(ff.read_bytes())
    entries = {e["subject"]: e for e in inference_datalist(tmp_path)}
    assert len(entries) == 3 and "image" not in entries["sub-0003"] and "image" in entries["sub-0001"]
    with pytest.raises(DixonInputError, match="no usable Dixon set: found FF map"):
        load_dixon(entries["sub-0003"])
    only = tmp_path / "only"
    (only / "sub-0003").mkdir(parents=True)
    (only / "sub-0003" / "sub-0003_ff.nii.gz").write_bytes(ff.read_bytes())
    with pytest.raises(ValueError, match="no subject has a usable Dixon set"):
        inference_datalist(only)
