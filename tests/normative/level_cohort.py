"""A synthetic cohort run with vertebral levels, for the per-level reference tests (imported as
``tests.normative.level_cohort``).

41 clean subjects ``c00``-``c40``: the FF of each level side is ``CENTRE[(muscle, side)](level) + 0.1 (k - 20)``, so the
median of every level side (and of its L/R mean) over them is exactly the centre. Added to them:

- ``u0``-``u3``: every level ``uncertain`` (no sacrum in view), FF 60 % everywhere: left out by default;
- ``f0``: psoas left failed the quality check (FF 80 % in every level); its other sides sit exactly at the centre,
  so the medians do not move whether it counts or not.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scripts.labels import MUSCLES

LEVELS = ("L1", "L2", "L3", "L4", "L5")
N_CLEAN = 41


def centre(muscle: str, side: str, j: int) -> float:
    """The median FF (%) of a level side over the clean subjects; ``j`` = 0 (L1) ... 4 (L5)."""
    if muscle == "psoas":
        return 10.0 + 2.0 * j if side == "left" else 20.0
    return {"iliacus": 15.0, "quadratus_lumborum": 12.0}.get(muscle, 30.0 if side == "left" else 40.0)


def _subjects() -> list[tuple[str, float | None, str, bool]]:
    """``(subject, offset or None, level_status, psoas left failed)``; offset None: FF 60 % everywhere."""
    out = [(f"c{k:02d}", 0.1 * (k - 20), "ok", False) for k in range(N_CLEAN)]
    out += [(f"u{k}", None, "uncertain", False) for k in range(4)]
    return [*out, ("f0", 0.0, "ok", True)]


def write_level_cohort(folder: Path, rule: str = "mid_disc", with_qc: bool = True) -> dict[str, Path]:
    """Write ``cohort_ff_table.csv``, ``cohort_ff_levels.csv`` and ``participants.tsv`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    level_rows, rows, parts = [], [], []
    for i, (subject, offset, status, failed) in enumerate(_subjects()):
        parts.append(
            {"participant_id": subject, "sex": "M" if i % 2 else "F", "age": 25 + i % 40, "activity": "active"}
        )
        for muscle in MUSCLES:
            for side in ("left", "right"):
                bad = failed and muscle == "psoas" and side == "left"
                qc = "fail" if bad else "pass"
                for j, level in enumerate(LEVELS):
                    ff = 60.0 if offset is None else 80.0 if bad else centre(muscle, side, j) + offset
                    level_rows.append(
                        {
                            "subject": subject,
                            "level": level,
                            "muscle": muscle,
                            "side": side,
                            "ff_mean_pct": ff,
                            "status": "ok",
                            "qc_status": qc,
                            "level_status": status,
                            "level_reasons": "" if status == "ok" else "the sacrum is not in the label map",
                            "boundary_rule": rule,
                        }
                    )
                rows.append({"subject": subject, "muscle": muscle, "side": side, "ff_mean_pct": 20.0, "qc_status": qc})
            rows.append(
                {
                    "subject": subject,
                    "muscle": muscle,
                    "side": "mean",
                    "ff_mean_pct": 20.0,
                    "qc_status": "fail" if failed and muscle == "psoas" else "pass",
                }
            )
    levels = pd.DataFrame(level_rows)
    if not with_qc:
        levels = levels.drop(columns=["qc_status"])
    paths = {
        "table": folder / "cohort_ff_table.csv",
        "levels": folder / "cohort_ff_levels.csv",
        "participants": folder / "participants.tsv",
    }
    pd.DataFrame(rows).to_csv(paths["table"], index=False)
    levels.to_csv(paths["levels"], index=False)
    pd.DataFrame(parts).to_csv(paths["participants"], sep="\t", index=False)
    return paths
