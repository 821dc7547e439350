"""Metamorphic checks of the measurement on tiny phantoms: a change of the input that must not change the numbers
(storage orientation, slice order, FF-map scale, header jitter), or must change them in a known way (a left-right
mirror exchanges the sides; a water/fat swap and a cut field of view are flagged). The reliability battery of
docs/studies/reliability.md, kept true by the suite.

The quantification runs on the phantom's ground-truth labels (fast, and what is under test is the measurement);
one test runs the segmentation pipeline of inference.json on a mirrored phantom.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scripts.io.load import load_dixon
from scripts.labels import LEFT_RIGHT_SWAP
from scripts.phantom import Acquisition, generate_subject
from scripts.pipeline.measure import measure_subject

_NUMBERS = ["ff_mean_pct", "ff_median_pct", "ff_core_mean_pct", "volume_ml", "n_voxels", "n_trimmed_voxels"]


@pytest.fixture(scope="module")
def phantom():
    subject = generate_subject(seed=7, acquisition=Acquisition.preset("tiny"))
    images = {k: np.asarray(subject.images[k]) for k in ("water", "fat", "inphase", "label", "ff_true")}
    return images, np.asarray(subject.affine, dtype=np.float64)


def _flip_axis(images: dict, affine: np.ndarray, axis: int) -> tuple[dict, np.ndarray]:
    """The same world content stored with ``axis`` reversed (RAS -> LAS, or slices in the other order)."""
    n = next(iter(images.values())).shape[axis]
    out = affine.copy()
    out[:3, 3] = affine[:3, 3] + affine[:3, axis] * (n - 1)
    out[:3, axis] = -affine[:3, axis]
    return {k: np.flip(v, axis).copy() for k, v in images.items()}, out


def _measure(
    tmp_path: Path, images: dict, affine: np.ndarray, name: str = "s", roles=("water", "fat"), **kwargs
) -> pd.DataFrame:
    folder = tmp_path / name
    folder.mkdir()
    entry = {"subject": name}
    for role in (*roles, "label"):
        entry[role] = str(folder / f"{role}.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(images[role]), affine), entry[role])
    scan = load_dixon({k: v for k, v in entry.items() if k != "label"}, **kwargs.pop("load", {}))
    label = nib.load(entry["label"])
    result, _ = measure_subject(scan, np.asarray(label.dataobj).astype(np.uint8), label.affine, **kwargs)
    return result.table


def _by_label(table: pd.DataFrame) -> pd.DataFrame:
    return table[table.side != "mean"].set_index("label")[_NUMBERS].astype(float).sort_index()


def test_storage_orientation_does_not_change_the_numbers(phantom, tmp_path):
    images, affine = phantom
    ras = _measure(tmp_path, images, affine, "ras")
    lps_images, lps_affine = _flip_axis(*_flip_axis(images, affine, 0), 1)
    lps = _measure(tmp_path, lps_images, lps_affine, "lps")
    assert nib.aff2axcodes(lps_affine) == ("L", "P", "S")
    pd.testing.assert_frame_equal(_by_label(lps), _by_label(ras), rtol=1e-9)


def test_reversed_slice_order_does_not_change_the_numbers(phantom, tmp_path):
    images, affine = phantom
    pd.testing.assert_frame_equal(
        _by_label(_measure(tmp_path, *_flip_axis(images, affine, 2), "rev")),
        _by_label(_measure(tmp_path, images, affine, "fwd")),
        rtol=1e-9,
    )


def test_a_mirrored_subject_exchanges_left_and_right(phantom, tmp_path):
    images, affine = phantom
    mirrored = {k: np.flip(v, 0).copy() for k, v in images.items()}  # the patient mirrored, header kept
    lut = np.arange(256, dtype=np.uint8)
    for a, b in LEFT_RIGHT_SWAP.items():
        lut[a] = b
    mirrored["label"] = lut[mirrored["label"]]
    plain, mirror = (
        _by_label(_measure(tmp_path, images, affine, "a")),
        _by_label(_measure(tmp_path, mirrored, affine, "b")),
    )
    swapped = mirror.rename(index=lambda v: LEFT_RIGHT_SWAP.get(int(v), int(v))).sort_index()
    swapped.index = swapped.index.astype(plain.index.dtype)
    pd.testing.assert_frame_equal(swapped, plain, rtol=1e-9)


@pytest.mark.parametrize("scale", [1.0, 100.0, 1000.0])
def test_ff_map_scale_is_detected_and_gives_the_same_numbers(phantom, tmp_path, scale):
    images, affine = phantom
    with_map = {**images, "ff": (np.asarray(images["ff_true"], np.float32) * scale).astype(np.float32)}
    table = _measure(tmp_path, with_map, affine, "ff", roles=("inphase", "ff"), ff_method="vendor_map")
    reference = _measure(
        tmp_path,
        {**images, "ff": np.asarray(images["ff_true"], np.float32)},
        affine,
        "ref",
        roles=("inphase", "ff"),
        ff_method="vendor_map",
    )
    np.testing.assert_allclose(_by_label(table)["ff_mean_pct"], _by_label(reference)["ff_mean_pct"], atol=0.02)
    assert table.ff_scale_detected.iloc[0] == {1.0: "fraction", 100.0: "percent", 1000.0: "permille"}[scale]


def test_header_jitter_within_tolerance_barely_moves_the_numbers_and_is_recorded(phantom, tmp_path):
    images, affine = phantom
    base = _measure(tmp_path, images, affine, "base")
    folder = tmp_path / "jitter"
    folder.mkdir()
    jittered = affine.copy()
    jittered[:3, :3] *= 1.0005  # 0.05 % on the fat image only: within the grid tolerance (0.1 %)
    entry = {"subject": "jitter"}
    for role, aff in (("water", affine), ("fat", jittered), ("label", affine)):
        entry[role] = str(folder / f"{role}.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(images[role]), aff), entry[role])
    scan = load_dixon({k: v for k, v in entry.items() if k != "label"})
    assert "grid_within_tolerance" in scan.corrections
    result, _ = measure_subject(scan, np.asarray(images["label"]).astype(np.uint8), affine)
    np.testing.assert_allclose(_by_label(result.table)["ff_mean_pct"], _by_label(base)["ff_mean_pct"], atol=0.02)
    assert result.table["flags"].str.contains("grid_within_tolerance").all()


def test_a_global_water_fat_swap_is_flagged(tmp_path):
    # the skin-shell test needs voxels finer than the tiny geometry's 6.8 mm: the 2 x 2 x 5 mm "low" geometry
    subject = generate_subject(seed=7, acquisition=Acquisition.preset("low"))
    images = {k: np.asarray(subject.images[k]) for k in ("water", "fat", "label")}
    affine = np.asarray(subject.affine, dtype=np.float64)
    swapped = {**images, "water": images["fat"], "fat": images["water"]}
    table = _measure(tmp_path, swapped, affine, "swap")
    rows = table[table.side != "mean"]
    assert rows.swap_global.all() and (rows.status == "swap_suspected").all()
    assert not _measure(tmp_path, images, affine, "plain").swap_global.any()


def test_a_cut_field_of_view_is_flagged_as_truncated(phantom, tmp_path):
    images, affine = phantom
    plain = _measure(tmp_path, images, affine, "full")
    label = np.asarray(images["label"])
    slices = np.nonzero(label.any(axis=(0, 1)))[0]
    cut = int(slices[len(slices) // 2])  # through the middle of the muscles
    cropped = {k: np.asarray(v)[:, :, cut:].copy() for k, v in images.items()}
    cropped_affine = affine.copy()
    cropped_affine[:3, 3] = (affine @ np.array([0.0, 0.0, cut, 1.0]))[:3]
    table = _measure(tmp_path, cropped, cropped_affine, "cut")
    present = table[(table.side != "mean") & (table.n_voxels > 0)]
    assert len(present) and (present.truncated_inferior | present.truncated_superior).all()
    assert present["flags"].str.contains("truncated").all()
    assert not plain.truncated_inferior.any() or cut > 0


def test_a_mirrored_phantom_is_segmented_as_the_mirror_image_with_equal_numbers(phantom, tmp_path):
    """inference.json's segmentation (flip ensemble and batch-norm adaptation on, the defaults) of a mirrored
    phantom: exchanged labels, voxel for voxel, and equal numbers. Failed before the adaptation took its statistics
    from the scan and its mirror (572 voxels differed here). The working spacing along x is the phantom's own, so
    that resampling is mirror-symmetric (a grid anchored at the first voxel is not, when the field of view is not a
    whole number of working voxels)."""
    import torch
    from monai.bundle import ConfigParser
    from monai.transforms import Compose

    images, affine = phantom
    parser = ConfigParser()
    parser.read_config(str(Path(__file__).resolve().parents[1] / "configs" / "inference.json"))
    parser.update({"working_spacing": [6.8, 8.0, 12.0], "roi_size": [64, 64, 32]})
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(
        torch.load(Path(__file__).resolve().parents[1] / "models" / "model.pt", map_location="cpu", weights_only=True)
    )
    net.eval()
    pre, inferer = parser.get_parsed_content("preprocessing"), parser.get_parsed_content("inferer")
    adaptive = inferer.inferer  # inside the CPU precision wrapper (bfloat16 where the CPU has it: "auto")
    assert adaptive.enabled and adaptive.inferer.enabled  # adaptation and flip ensemble, as shipped
    steps = parser.get_parsed_content("postprocessing").transforms
    # softmax, network confidence, invert, argmax: the steps before the first clean-up of the label map
    last = next(i for i, t in enumerate(steps) if type(t).__name__ == "KeepLargestComponentPerLabeld")
    post = Compose(steps[:last])
    lut = np.arange(256, dtype=np.uint8)
    for a, b in LEFT_RIGHT_SWAP.items():
        lut[a] = b
    tables, labels = {}, {}
    for name, flip in (("plain", False), ("mirrored", True)):
        stored = {k: (np.flip(v, 0).copy() if flip else v) for k, v in images.items()}
        entry = {"subject": name}
        for role in ("water", "fat", "inphase"):
            entry[role] = str(tmp_path / f"{name}_{role}.nii.gz")
            nib.save(nib.Nifti1Image(np.asarray(stored[role]), affine), entry[role])
        d = pre(entry)
        with torch.no_grad():
            d["pred"] = inferer(d["image"][None], net)[0]
        labels[name] = np.asarray(post(d)["pred"][0]).astype(np.uint8)
        scan = load_dixon({k: v for k, v in entry.items() if k != "inphase"})
        tables[name] = _by_label(measure_subject(scan, labels[name], affine)[0].table)
    assert (labels["plain"] > 0).sum() > 100, "the test needs muscles found"
    np.testing.assert_array_equal(lut[np.flip(labels["mirrored"], 0)], labels["plain"])
    swapped = tables["mirrored"].rename(index=lambda v: LEFT_RIGHT_SWAP.get(int(v), int(v))).sort_index()
    swapped.index = swapped.index.astype(tables["plain"].index.dtype)
    pd.testing.assert_frame_equal(swapped, tables["plain"], rtol=1e-9)
