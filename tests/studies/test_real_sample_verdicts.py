"""scripts.studies.real_sample_verdicts on a low-geometry phantom laid out as a real sample: its true labels pass
(no FF: position, shape and size only), an "iliacus" speck is reviewed, a missing prediction folder is refused."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scripts.labels import label_value
from scripts.phantom import Acquisition, generate_subject
from scripts.studies.evaluate_real_samples import SAMPLES
from scripts.studies.real_sample_verdicts import main, sample_verdicts

_NAME = "musclemap_lumbar_sub0001"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    subj = generate_subject(5, Acquisition.preset("low", orientation="LPS"))
    image_path = root / "real-samples" / SAMPLES[_NAME][0]
    image_path.parent.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.asarray(subj.images["inphase"], np.float32), subj.affine), str(image_path))
    labels = subj.images["label"].astype(np.uint8)
    return root, image_path, labels, subj.affine


def test_true_labels_pass_and_a_speck_is_reviewed(sample, tmp_path):
    root, image_path, labels, affine = sample
    preds = tmp_path / "preds"
    preds.mkdir()
    nib.save(nib.Nifti1Image(labels, affine), str(preds / f"{_NAME}_pred.nii.gz"))
    text = main(shared_dir=str(root), pred_dir=str(preds), out_csv=str(tmp_path / "v.csv"))
    table = pd.read_csv(tmp_path / "v.csv")
    assert len(table) == 8 and set(table.qc_status) == {"pass"}, text
    assert (table.volume_ml > 17).all() and set(table["sample"]) == {_NAME}
    speck = labels.copy()
    iliacus = label_value("iliacus", "right")
    idx = np.argwhere(speck == iliacus)
    speck[speck == iliacus] = 0
    speck[tuple(idx[:10].T)] = iliacus
    nib.save(nib.Nifti1Image(speck, affine), str(tmp_path / "speck.nii.gz"))
    row = sample_verdicts(str(image_path), str(tmp_path / "speck.nii.gz")).set_index("label").loc[iliacus]
    assert row.qc_status != "pass" and "a speck" in row.qc_reasons


def test_missing_predictions_and_mismatched_grids_are_refused(sample, tmp_path):
    root, image_path, labels, affine = sample
    with pytest.raises(FileNotFoundError, match="evaluate_real_samples --out_dir"):
        main(shared_dir=str(root), pred_dir=str(tmp_path))
    nib.save(nib.Nifti1Image(labels[:-1], affine), str(tmp_path / "short.nii.gz"))
    with pytest.raises(ValueError, match="differs from the image's"):
        sample_verdicts(str(image_path), str(tmp_path / "short.nii.gz"))
