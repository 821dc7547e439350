"""scripts.pipeline.dixon_entry: the scan travels through MONAI's collation and de-collation unchanged."""

from __future__ import annotations

import numpy as np
from monai.data import decollate_batch, list_data_collate
from scripts.io.load import load_dixon
from scripts.pipeline.dixon_entry import has_scan, scan_from_entry, scan_to_entry
from scripts.pipeline.load_dixon import LoadDixond

from tests.pipeline.helpers import lean_body


def _assert_same_scan(a, b):
    assert a.images.keys() == b.images.keys()
    for role in a.images:
        assert b.images[role].dtype == a.images[role].dtype
        np.testing.assert_array_equal(b.images[role], a.images[role])
    np.testing.assert_array_equal(b.affine, a.affine)
    for name in ("subject", "shape", "files", "dixon_set", "spacing_mm", "slice_axis", "slice_tilt_deg", "reference"):
        assert getattr(b, name) == getattr(a, name), name
    assert (b.label_file, b.warnings, b.corrections) == (a.label_file, a.warnings, a.corrections)


def test_a_scan_survives_a_data_loader_batch_of_one(tmp_path):
    files, _, _ = lean_body(tmp_path)
    scan = load_dixon({**files, "subject": "lean"})
    entry = {"subject": "lean", **scan_to_entry(scan)}
    (back,) = decollate_batch(list_data_collate([entry]))
    assert has_scan(back) and not has_scan({"subject": "lean"})
    _assert_same_scan(scan, scan_from_entry(back))


def test_the_loader_keeps_the_scan_it_validated_and_not_for_a_bare_image(tmp_path):
    files, _, _ = lean_body(tmp_path)
    d = LoadDixond(keys="image")({**files, "subject": "lean"})
    _assert_same_scan(load_dixon({**files, "subject": "lean"}), scan_from_entry(d))
    bare = LoadDixond(keys="image")({"image": files["inphase"]})
    assert not has_scan(bare), "an in-phase image alone gives no FF: the quantification steps must pass it through"
