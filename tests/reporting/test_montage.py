"""Tests of scripts.reporting.montage: the composed QC montage, its outlines, orientation, labels on another grid."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image
from scripts.phantom import Acquisition, generate_subject
from scripts.reporting.montage import _outlines, montage_figure, panel_rgb, qc_montage, render_montage
from scripts.reporting.montage_panels import montage_panels
from scripts.reporting.style import CONTEXT_COLOUR, LABEL_COLOURS

from tests.reporting.report_cases import PNG_MAGIC, make_subject_case


def _rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(round(c * 255)) for c in to_rgb(colour))


@pytest.fixture(scope="module")
def subject_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_subject_case(tmp_path_factory.mktemp("report"))


def test_montage_written(subject_case):
    data = Path(subject_case["montage"]).read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert not list(subject_case["out"].glob(".*.tmp"))


def test_outlines_are_two_pixels_wide_inside_the_label_in_the_label_colour():
    labels = np.zeros((20, 20), np.uint8)
    labels[5:15, 5:15] = 1
    labels[8:12, 15:18] = 12  # a vertebral body beside it: dashed, in the context colour
    grey = np.full((20, 20), 100, np.uint8)
    rgb = panel_rgb(grey, labels)
    muscle, context = _outlines(labels)
    ring = np.zeros((20, 20), bool)
    ring[5:15, 5:15] = True
    ring[7:13, 7:13] = False
    assert np.array_equal(muscle, ring)  # rows/columns 5-6 and 13-14 of the square: two pixels, all inside
    assert (rgb[muscle] == _rgb(LABEL_COLOURS[1])).all() and (rgb[~muscle & ~context] == 100).all()
    assert context.any() and not context[labels != 12].any()
    assert 0 < context.sum() < _outlines(np.where(labels == 12, 1, 0).astype(np.uint8))[0].sum()  # dashed
    assert (rgb[context] == _rgb(CONTEXT_COLOUR)).all()


def test_patient_left_is_on_the_image_right_and_the_panel_keeps_the_millimetre_aspect(tmp_path: Path):
    shape = (40, 20, 10)  # 40 mm right-left, 40 mm anterior-posterior (2 mm voxels), 40 mm high
    affine = np.diag([1.0, 2.0, 4.0, 1.0])
    affine[0, 3] = -40.0  # x from -40 to -1 mm
    img = np.ones(shape, np.float32)
    label = np.zeros(shape, np.uint8)
    label[4:10, 8:12, 3:7] = 1  # psoas left: RAS x = -36 to -31 mm, the patient's left (x grows to the right)
    panels = montage_panels(img, affine, label, n_slices=2)
    _, h, w = panels.axial.shape
    assert (h, w) == (280, 280)  # square in mm, whatever the voxel spacing
    cols = np.nonzero(panels.axial_labels[0].any(axis=0))[0]
    assert cols.min() > w // 2  # radiological: the patient's left on the image right
    # the same labels stored LPS and mapped through the affines give the same pixels
    lps_aff = affine @ np.array([[-1, 0, 0, 39], [0, -1, 0, 19], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    lps = montage_panels(img, affine, label[::-1, ::-1].copy(), n_slices=2, label_affine=lps_aff)
    assert np.array_equal(lps.axial_labels, panels.axial_labels)
    a, b = render_montage(panels, tmp_path / "a.png"), render_montage(lps, tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()  # drawing is deterministic: same panels, same file
    png = Image.open(BytesIO(a.read_bytes()))
    fig = montage_figure(panels)
    assert png.size == (round(fig.bbox.width), round(fig.bbox.height))


def test_montage_label_on_another_grid_and_empty_label(tmp_path: Path):
    subj = generate_subject(4, Acquisition.preset("tiny"))
    label = subj.images["label"]
    lps = label[::-1, ::-1, :].copy()
    lps_aff = subj.affine @ np.array(
        [[-1, 0, 0, label.shape[0] - 1], [0, -1, 0, label.shape[1] - 1], [0, 0, 1, 0], [0, 0, 0, 1]], float
    )
    path = qc_montage(subj.images["inphase"], subj.affine, lps, tmp_path / "a.png", label_affine=lps_aff, n_slices=4)
    same = qc_montage(subj.images["inphase"], subj.affine, label, tmp_path / "a2.png", n_slices=4)
    assert path.read_bytes().startswith(PNG_MAGIC) and path.read_bytes() == same.read_bytes()
    empty = qc_montage(subj.images["inphase"], subj.affine, np.zeros_like(label), tmp_path / "b.png", n_slices=3)
    assert empty.stat().st_size > 0
    with pytest.raises(ValueError, match="label_affine"):
        qc_montage(subj.images["inphase"], subj.affine, label[:-1], tmp_path / "c.png")
    with pytest.raises(ValueError, match="ncols"):
        qc_montage(subj.images["inphase"], subj.affine, label, tmp_path / "d.png", ncols=0)


def test_vertebral_context_is_drawn_dashed_in_white_and_named_in_the_legend(tmp_path: Path):
    subj = generate_subject(4, Acquisition.preset("tiny"))
    label = subj.images["label"].copy()
    label[(label == 0) & (subj.images["ff_true"] > 0.7)] = 14  # any context voxels: drawn, never a muscle
    panels = montage_panels(subj.images["inphase"], subj.affine, label, n_slices=3)
    assert panels.has_context
    texts = [t.get_text() for t in montage_figure(panels).legends[0].get_texts()]
    assert texts[-1] == "vertebral bodies, sacrum (white)" and len(texts) == 9
    without = montage_panels(subj.images["inphase"], subj.affine, subj.images["label"], n_slices=3)
    assert len(montage_figure(without).legends[0].get_texts()) == 8
    path = render_montage(panels, tmp_path / "v.png")
    assert path.read_bytes().startswith(PNG_MAGIC)
