"""Shared cases of the reporting tests: a tiny phantom subject with flags, its tables and its pictures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scripts.labels import MUSCLES, label_value
from scripts.normative.comparison import compare_to_reference
from scripts.phantom import Acquisition, generate_subject
from scripts.quantification.formulas import fat_fraction_from_water_fat
from scripts.quantification.statistics import quantify_muscles
from scripts.quantification.swap import LabelSwapFlags, SwapReport
from scripts.reporting.ff_chart import ff_chart
from scripts.reporting.montage import qc_montage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROV = {"ff_method": "water_fat", "ff_source": "phantom water/fat", "ff_scale_detected": "n/a", "assumption": "none"}


def make_subject_case(out: Path) -> dict:
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


def qc_case_table() -> pd.DataFrame:
    """A subject's FF table with quality verdicts: psoas left fails (on fat, 91 %) and so its L/R mean; iliacus right
    asks for review; every other side passes. FF: 10 + 2 * muscle index (+1 on the right), psoas left 91."""
    rows = []
    for k, muscle in enumerate(MUSCLES):
        left, right = 10.0 + 2 * k, 11.0 + 2 * k
        if muscle == "psoas":
            left = 91.0
        for side, value in (("left", left), ("right", right), ("mean", (left + right) / 2)):
            status = "pass"
            if muscle == "psoas" and side in ("left", "mean"):
                status = "fail"
            elif muscle == "iliacus" and side == "right":
                status = "review"
            reasons = {"fail": "lies on the patient's right (40 mm from the midline)", "review": "small"}
            rows.append(
                {
                    "muscle": muscle,
                    "side": side,
                    "ff_mean_pct": value,
                    "status": "ok",
                    "qc_status": status,
                    "qc_score": {"pass": 1.0, "review": 0.85, "fail": 0.5}[status],
                    "qc_reasons": reasons.get(status, ""),
                }
            )
    return pd.DataFrame(rows)
