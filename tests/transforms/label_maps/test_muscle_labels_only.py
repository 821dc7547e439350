"""MuscleLabelsOnly(d): a label map that carries the vertebral context (9-14) trains the 9-output muscle network."""

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from scripts.transforms.label_maps.muscle_labels_only import MuscleLabelsOnly, MuscleLabelsOnlyd

from tests.conftest import BUNDLE_ROOT


def _label() -> MetaTensor:
    lab = torch.zeros(1, 4, 4, 3, dtype=torch.uint8)
    lab[0, 0] = 1
    lab[0, 1, :2] = 8
    lab[0, 2, :, 0] = 11  # L3
    lab[0, 3, :, 2] = 14  # sacrum
    return MetaTensor(lab, affine=torch.diag(torch.tensor([2.0, 2.0, 4.0, 1.0])))


def test_vertebral_values_become_background_and_muscles_stay() -> None:
    label = _label()
    out = MuscleLabelsOnly()(label)
    assert isinstance(out, MetaTensor) and out.dtype == torch.uint8 and torch.equal(out.affine, label.affine)
    assert set(torch.unique(out).tolist()) == {0, 1, 8}
    assert int((out == 1).sum()) == 12 and int((out == 8).sum()) == 6 and int((out == 0).sum()) == 48 - 18
    as_array = MuscleLabelsOnly()(label.numpy())
    assert isinstance(as_array, np.ndarray) and np.array_equal(as_array, out.numpy())


def test_a_muscle_only_map_passes_unchanged() -> None:
    label = torch.where(_label() > 8, 0, _label())
    assert MuscleLabelsOnly()(label) is label


@pytest.mark.parametrize(("value", "message"), [(16, "values 0-16"), (-1, "values -1-14"), (0.5, "fractional values")])
def test_maps_of_another_convention_are_refused(value, message) -> None:
    label = _label().float()
    label[0, 0, 0, 0] = value
    with pytest.raises(ValueError, match=message):
        MuscleLabelsOnly()(label)


def test_dictionary_version_works_in_place_and_skips_missing_keys() -> None:
    out = MuscleLabelsOnlyd(keys="label")({"label": _label(), "image": 3})
    assert out["image"] == 3 and int(out["label"].max()) == 8
    assert MuscleLabelsOnlyd(keys="label", allow_missing_keys=True)({"image": 3}) == {"image": 3}


def test_train_json_gives_the_muscle_network_a_nine_class_target_from_a_spine_labelled_map(tmp_path) -> None:
    """A label map as inference writes it with the spine network (or as MONAI Label saves it), through train.json's
    own preprocessing (training and validation), as the muscle network's training reads it."""
    rng = np.random.default_rng(0)
    affine = np.diag([1.5, 1.5, 4.0, 1.0])
    lab = np.zeros((40, 40, 12), np.uint8)
    lab[5:15, 5:15, :] = 1
    lab[25:35, 5:15, :] = 2
    lab[15:25, 20:30, 2:6] = 11
    lab[15:25, 20:30, 8:12] = 14
    entry = {}
    for key in ("image", "water", "fat"):
        nib.save(nib.Nifti1Image(rng.random(lab.shape).astype(np.float32), affine), tmp_path / f"{key}.nii.gz")
        entry[key] = str(tmp_path / f"{key}.nii.gz")
    nib.save(nib.Nifti1Image(lab, affine), tmp_path / "label.nii.gz")
    entry["label"] = str(tmp_path / "label.nii.gz")
    parser = ConfigParser()
    parser.read_config(str(BUNDLE_ROOT / "configs" / "train.json"))
    parser["bundle_root"] = str(BUNDLE_ROOT)
    parser["patch_size"] = [32, 32, 16]
    for section in ("train", "validate"):
        transforms = parser.get_parsed_content(f"{section}#preprocessing")
        out = transforms(dict(entry))
        label = out[0]["label"] if isinstance(out, list) else out["label"]
        assert set(torch.unique(torch.as_tensor(label)).tolist()) <= {0, 1, 2}, section
