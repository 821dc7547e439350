"""Tests of scripts/reporting/report.py: radiological orientation, QC montage, FF chart and the HTML report."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scripts.labels import label_value
from scripts.normative.comparison import compare_to_reference
from scripts.phantom import Acquisition, generate_subject
from scripts.quantification.formulas import fat_fraction_from_water_fat
from scripts.quantification.statistics import quantify_muscles
from scripts.quantification.swap import LabelSwapFlags, SwapReport
from scripts.reporting.report import (
    APPROXIMATION_NOTE,
    MUSCLE_DISPLAY_NAMES,
    coronal_slice,
    display_slice,
    ff_chart,
    html_report,
    qc_montage,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROV = {"ff_method": "water_fat", "ff_source": "phantom water/fat", "ff_scale_detected": "n/a", "assumption": "none"}

# A 20 x 16 x 6 world grid of 1 mm voxels centred on x = y = 0: RAS voxel (i, j, k) is at (i - 9.5, j - 7.5, k).
NX, NY, NZ = 20, 16, 6


def _ras_affine() -> np.ndarray:
    aff = np.eye(4)
    aff[:3, 3] = (-9.5, -7.5, 0.0)
    return aff


def _marker_volume() -> np.ndarray:
    """RAS array: a bright voxel on the patient's left (x = -6.5) and anterior (y = +5.5) at slice 3."""
    vol = np.zeros((NX, NY, NZ), np.float32)
    vol[3, 13, 3] = 100.0  # x = 3 - 9.5 = -6.5 (left), y = 13 - 7.5 = 5.5 (anterior)
    vol[10, 2, 5] = 50.0  # superior slice, posterior (for the coronal test)
    return vol


def _storages() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The same world stored as RAS, LPS and with permuted axes (z, x, y) and reversed slices."""
    ras = _marker_volume()
    out = [("RAS", ras, _ras_affine())]
    lps = ras[::-1, ::-1, :].copy()
    lps_aff = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps_aff[:3, 3] = (NX - 1 - 9.5, NY - 1 - 7.5, 0.0)
    out.append(("LPS", lps, lps_aff))
    perm = np.transpose(ras, (2, 0, 1))[::-1].copy()  # array (z reversed, x, y)
    perm_aff = np.zeros((4, 4))
    perm_aff[2, 0] = -1.0  # array axis 0 -> world z, decreasing
    perm_aff[0, 1] = 1.0
    perm_aff[1, 2] = 1.0
    perm_aff[:3, 3] = (-9.5, -7.5, NZ - 1)
    perm_aff[3, 3] = 1.0
    out.append(("ISR-permuted", perm, perm_aff))
    return out


@pytest.mark.parametrize("name, volume, affine", _storages(), ids=lambda v: v if isinstance(v, str) else "")
def test_display_slice_is_radiological(name, volume, affine):
    view = display_slice(volume, affine, 3)
    assert view.shape == (NY, NX)  # rows anterior-posterior, columns right-left
    row, col = np.unravel_index(int(np.argmax(view)), view.shape)
    assert col >= NX / 2, f"{name}: patient-left marker must be on the image's right half"
    assert row < NY / 2, f"{name}: anterior marker must be in the top half"
    np.testing.assert_array_equal(view, display_slice(*_storages()[0][1:], 3))


def test_coronal_slice_superior_on_top_right_on_left():
    volume, affine = _storages()[1][1:]  # LPS storage
    view = coronal_slice(volume, affine, 2)  # RAS j = 2 holds the superior, posterior marker
    assert view.shape == (NZ, NX)
    row, col = np.unravel_index(int(np.argmax(view)), view.shape)
    assert row == 0  # slice 5 is the most superior
    assert col == NX - 1 - 10  # RAS i = 10 (x = +0.5, patient right of centre) -> column 9, left half


def test_display_slice_rejects_bad_index():
    with pytest.raises(ValueError, match="slice index"):
        display_slice(_marker_volume(), _ras_affine(), NZ)


@pytest.fixture(scope="module")
def subject_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Tiny LPS phantom with a missing muscle, a suspected swap and truncation, and its pictures."""
    subj = generate_subject(2, Acquisition.preset("tiny", orientation="LPS"))
    label = subj.images["label"].copy()
    label[label == label_value("iliacus", "left")] = 0  # missing muscle
    ff = fat_fraction_from_water_fat(subj.images["water"], subj.images["fat"])
    esl = label_value("erector_spinae_multifidus", "left")
    report = SwapReport(
        False, True, 0.8, 0.2, 0.3, 0.2, (), {esl: LabelSwapFlags(esl, 10, 0.7, 0.2, True, False, 0)}, ("asymmetric",)
    )
    res = quantify_muscles(label, subj.affine, ff, subj.affine, PROV, subject=subj.subject_id, swap_report=report)
    comparison = compare_to_reference(res.table)
    out = tmp_path_factory.mktemp("report")
    montage = qc_montage(subj.images["inphase"], subj.affine, label, out / "qc.png", n_slices=8)
    chart = ff_chart(res.table, comparison, out / "chart.png")
    return {
        "subj": subj,
        "label": label,
        "result": res,
        "comparison": comparison,
        "out": out,
        "montage": montage,
        "chart": chart,
    }


def test_pictures_written(subject_case):
    for key in ("montage", "chart"):
        data = Path(subject_case[key]).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert not list(subject_case["out"].glob(".*.tmp"))


def test_montage_label_on_another_grid_and_empty_label(tmp_path: Path):
    subj = generate_subject(4, Acquisition.preset("tiny"))
    label = subj.images["label"]
    # the same labels stored flipped (LPS) must be mapped through the affines, not indexed
    lps = label[::-1, ::-1, :].copy()
    lps_aff = subj.affine @ np.array(
        [[-1, 0, 0, label.shape[0] - 1], [0, -1, 0, label.shape[1] - 1], [0, 0, 1, 0], [0, 0, 0, 1]], float
    )
    path = qc_montage(subj.images["inphase"], subj.affine, lps, tmp_path / "a.png", label_affine=lps_aff, n_slices=4)
    assert path.read_bytes().startswith(PNG_MAGIC)
    empty = qc_montage(subj.images["inphase"], subj.affine, np.zeros_like(label), tmp_path / "b.png", n_slices=3)
    assert empty.stat().st_size > 0
    with pytest.raises(ValueError, match="label_affine"):
        qc_montage(subj.images["inphase"], subj.affine, label[:-1], tmp_path / "c.png")


def test_ff_chart_with_whiskers_and_without_reference(subject_case, tmp_path: Path):
    comparison = subject_case["comparison"].copy()
    comparison["p5"] = comparison["p25"] - 4.0
    comparison["p95"] = comparison["p75"] + 6.0
    a = ff_chart(subject_case["result"].table, comparison, tmp_path / "whiskers.png")
    b = ff_chart(subject_case["result"].table, None, tmp_path / "noref.png")
    assert a.read_bytes().startswith(PNG_MAGIC) and b.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="lacks column"):
        ff_chart(subject_case["result"].table.drop(columns="side"), None, tmp_path / "bad.png")


def test_html_report_content(subject_case):
    table, comparison = subject_case["result"].table, subject_case["comparison"]
    assert table.truncated_inferior.any() or table.truncated_superior.any()  # the tiny phantom is cut by its FOV
    images = {"QC montage": subject_case["montage"], "FF chart": subject_case["chart"]}
    path = html_report("sub-0002", table, comparison, images, subject_case["out"] / "sub-0002.html", PROV)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    for name in MUSCLE_DISPLAY_NAMES.values():
        assert html.escape(name) in text
    assert "Iliacus left: missing" in text and "never 0 %" in text
    assert "truncated at the" in text
    assert "fat-water swap suspected (asymmetric)" in text
    assert html.escape(APPROXIMATION_NOTE) in text and "lognormal" in text
    for value in PROV.values():
        assert value in text
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(embedded) == 2 and base64.b64decode(embedded[0]).startswith(PNG_MAGIC)
    assert "within_iqr" in text or "above_q3" in text or "below_q1" in text


def test_html_report_without_flags_or_reference(tmp_path: Path):
    rows = []
    for muscle in MUSCLE_DISPLAY_NAMES:
        for side in ("left", "right", "mean"):
            rows.append(
                {
                    "muscle": muscle,
                    "side": side,
                    "ff_mean_pct": 12.0,
                    "status": "ok",
                    "truncated_inferior": False,
                    "truncated_superior": False,
                    "swap_suspected": False,
                }
            )
    path = html_report("s<1>", pd.DataFrame(rows), None, {}, tmp_path / "r.html", {"ff_method": "vendor_ff_map"})
    text = path.read_text()
    assert "No flags" in text and "No normative reference" in text
    assert "s&lt;1&gt;" in text and "s<1>" not in text  # escaped
