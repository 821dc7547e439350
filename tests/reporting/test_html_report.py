"""Tests of scripts.reporting.html_report: flags, tables, approximation note, provenance, embedded pictures."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd
import pytest
from scripts.normative.comparison import compare_to_reference
from scripts.reporting.html_report import APPROXIMATION_NOTE, html_report
from scripts.reporting.qc_marks import QC_WITHHELD_TEXT
from scripts.reporting.style import MUSCLE_DISPLAY_NAMES

from tests.reporting.report_cases import PNG_MAGIC, PROV, make_subject_case, qc_case_table


@pytest.fixture(scope="module")
def subject_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_subject_case(tmp_path_factory.mktemp("report"))


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


def _rows(text: str, section: str) -> list[str]:
    """The ``<tr ...>...</tr>`` rows of the table after heading ``section``."""
    part = text.split(f"<h2>{section}</h2>", 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr[^>]*>.*?</tr>", part.split("<tbody>", 1)[1])


def test_failed_side_is_red_and_its_comparison_withheld(tmp_path: Path):
    table = qc_case_table()
    comparison = compare_to_reference(table)
    text = html_report("s1", table, comparison, {}, tmp_path / "r.html", PROV).read_text()
    ff_rows = _rows(text, "Fat fraction per muscle")
    assert len(ff_rows) == 12
    classes = [re.match(r'<tr(?: class="([^"]*)")?>', r).group(1) for r in ff_rows]
    # order: psoas left, right, mean, iliacus left, right, mean, ...: fails red, the review amber, others plain
    assert classes == ["qc-fail", None, "qc-fail", None, "qc-review", None] + [None] * 6
    assert "<td>91.0</td>" in ff_rows[0]  # the measured value stays, with its verdict
    cmp_rows = _rows(text, "Normative comparison")
    withheld = [r for r in cmp_rows if QC_WITHHELD_TEXT in r]
    assert len(withheld) == 2 and all(r.startswith('<tr class="qc-fail">') and "qc_fail" in r for r in withheld)
    assert all(r.count(QC_WITHHELD_TEXT) == 3 for r in withheld)  # band, percentile, z
    sides = sorted(re.search(r'<td class="t">Psoas</td><td class="t">([^<]+)</td>', r).group(1) for r in withheld)
    assert sides == ["L/R mean", "left"]
    assert not any(b in "".join(withheld) for b in ("within_iqr", "above_q3", "below_q1", "above_p95"))
    assert "Comparison withheld for the sides that failed the quality check" in text
    assert sum("qc-fail" not in r and ("within_iqr" in r or "above_q3" in r or "below_q1" in r) for r in cmp_rows) == 10
    assert "FAILED the quality check: do not use its number" in text


def _level_case(drop_sacrum: bool = False, anchor: str = "sacrum") -> tuple[pd.DataFrame, dict]:
    """The box spine of tests/quantification/level_cases.py: per-level table and the JSON ``levels`` section."""
    from scripts.quantification.level_statistics import level_statistics
    from scripts.quantification.levels import assign_levels

    from tests.quantification.level_cases import affine, level_ff, spine_label

    lab, aff = spine_label(), affine()
    if drop_sacrum:
        lab[lab == 14] = 0
    assignment = assign_levels(lab, aff, anchor=anchor)
    table = level_statistics(lab, aff, level_ff(), aff, assignment, subject="spine", min_volume_ml=0.5)
    return table, assignment.to_meta()


def _level_section(text: str) -> str:
    return text.split("<h2>Per vertebral level</h2>", 1)[1].split("<h2>", 1)[0]


def test_level_section_with_ok_levels_table_and_pictures(tmp_path: Path, subject_case):
    levels, info = _level_case()
    table = qc_case_table()  # psoas left failed the quality check
    pictures = {"FF by level": subject_case["chart"], "CSA by level": subject_case["montage"]}
    text = html_report(
        "s1", table, None, {}, tmp_path / "r.html", PROV, levels=levels, level_info=info, level_images=pictures
    ).read_text()
    section = _level_section(text)
    assert "Levels ok: L1-L5 are the network&#x27;s vertebral labels" in section and "uncertain" not in section
    assert "mid_disc: a level is bounded by the planes midway" in section
    rows = re.findall(r"<tr>.*?</tr>", section.split("<tbody>", 1)[1])
    # 5 levels x the muscles present in the box spine (psoas, ES+MF; iliacus and QL have no voxel)
    assert [re.findall(r'<td class="t">([^<]+)</td>', r)[0] for r in rows] == [
        lv for lv in ("L1", "L2", "L3", "L4", "L5") for _ in range(2)
    ]
    psoas_l3 = next(r for r in rows if '<td class="t">L3</td><td class="t">Psoas</td>' in r)
    cells = re.findall(r"<td>([^<]+)</td>", psoas_l3)
    # left psoas FF 14 % in L3 (failed QC: marked), right 20 %; CSA at the mid-plane 0.96 cm2 each side
    assert cells == ["14.0 (QC fail)", "20.0", "0.96 (QC fail)", "0.96"]
    assert len(re.findall(r'src="data:image/png;base64,', section)) == 2 and "<h2>Pictures</h2>" in text
    assert text.index("Per vertebral level") < text.index("Provenance")


def test_level_section_says_uncertain_levels_plainly(tmp_path: Path):
    levels, info = _level_case(drop_sacrum=True)
    text = html_report(
        "s1", qc_case_table(), None, {}, tmp_path / "r.html", PROV, levels=levels, level_info=info
    ).read_text()
    section = html.unescape(_level_section(text))
    assert "Levels uncertain: the sacrum is not in the label map (outside the field of view or not segmented)" in (
        section
    )
    assert "so the L1-L5 names rest on the network's labels alone" in section and "Levels ok" not in section
    assert '<p class="flag">Levels uncertain' in _level_section(text)


def test_levels_named_from_a_stated_lowest_body_say_so(tmp_path: Path):
    levels, info = _level_case(drop_sacrum=True, anchor="stated lowest body L5")
    assert info["status"] == "ok" and info["anchor"] == "stated lowest body L5"
    text = html_report(
        "s1", qc_case_table(), None, {}, tmp_path / "r.html", PROV, levels=levels, level_info=info
    ).read_text()
    section = html.unescape(_level_section(text))
    assert "Levels ok as stated: the sacrum is not in view" in section and "--lowest_vertebra says is L5" in section
    assert "anchored on the sacrum in view" not in section and "uncertain" not in section
    assert "found in the FF map" not in section
    # the same levels from the bodies of the FF map (the spine network named none): the page says so
    info["naming"] = {"status": "counted", "anchor": "stated lowest body L5", "source": "FF map"}
    text = html_report(
        "s1", qc_case_table(), None, {}, tmp_path / "r2.html", PROV, levels=levels, level_info=info
    ).read_text()
    section = html.unescape(_level_section(text))
    assert "Levels ok as stated" in section
    assert "The vertebral bodies were found in the FF map (marrow between water-like discs)" in section


def test_level_section_of_a_nine_class_model_is_one_sentence(tmp_path: Path):
    from scripts.pipeline.level_statistics import NO_CONTEXT_TEXT
    from scripts.reporting.html_report import LEVELS_NEED_CONTEXT_TEXT

    info = {"status": "not available", "reasons": [NO_CONTEXT_TEXT]}
    text = html_report("s1", qc_case_table(), None, {}, tmp_path / "r.html", PROV, level_info=info).read_text()
    section = _level_section(text)
    assert html.unescape(section).strip() == f"<p>{LEVELS_NEED_CONTEXT_TEXT}</p>"
    assert (
        "Per vertebral level" not in html_report("s1", qc_case_table(), None, {}, tmp_path / "p.html", PROV).read_text()
    )
