"""How well the quality verdict (scripts.quality.verdict) separates right from wrong labels, on phantoms.

For ``n`` phantoms with acquisition variety, the true label map is judged as it is (every side should pass), then
one side at a time is corrupted as segmentations go wrong (moved 10-30 mm, moved onto the anterior abdominal wall,
eroded or dilated, cut to its upper part, broken in two, left and right exchanged) and the map judged again. Each
judged side is scored against the truth: Dice, and the error of its mean FF (percentage points, from the phantom's
exact FF map). Printed (and written with ``--out_dir``): the pass rate of correct sides (Dice >= 0.9 and FF error
< 1 pp), the flag rate (review or fail) of wrong sides (Dice < 0.7 or FF error > 3 pp), the ROC AUC of
``1 - qc_score`` against Dice < 0.7, and the false-flag rate of the uncorrupted partner of each corrupted side
(the left/right comparisons of :mod:`scripts.quality.extent` see both). Each row also carries the side's figures
against its partner (volume and extent ratios, share of thin slices) from which those thresholds were set on the
tuning phantoms (seeds 300-319), apart from the reported ones (seeds 100-149)::

    python -m scripts.studies.qc_benchmark --n 50 --seed 100 --out_dir docs/studies/quality_control
    python -m scripts.studies.qc_benchmark --n 20 --seed 300 --out_dir /tmp/qc_tuning

The network's own failures are not part of this benchmark (they need the network on hard phantoms).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from scripts.labels import LEFT_RIGHT_SWAP, label_value
from scripts.phantom import Acquisition, generate_subject
from scripts.quality.extent import pair_figures
from scripts.quality.verdict import QCLimits, assess_segmentation

CORRECT = "Dice >= 0.9 and FF error < 1 pp"
WRONG = "Dice < 0.7 or FF error > 3 pp"


def _shift(labels: np.ndarray, value: int, affine: np.ndarray, mm: np.ndarray) -> np.ndarray:
    step = np.round(np.linalg.solve(affine[:3, :3], mm)).astype(int)
    out = labels.copy()
    out[out == value] = 0
    out[np.roll(labels == value, tuple(step), axis=(0, 1, 2)) & (out == 0)] = value
    return out


def _morph(labels: np.ndarray, value: int, iterations: int, grow: bool) -> np.ndarray:
    out = labels.copy()
    mask = labels == value
    if grow:
        out[ndimage.binary_dilation(mask, iterations=iterations) & (labels == 0)] = value
    else:
        out[mask & ~ndimage.binary_erosion(mask, iterations=iterations)] = 0
    return out


def _slices(labels: np.ndarray, value: int, keep: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    out = labels.copy()
    zs = np.unique(np.argwhere(labels == value)[:, 2])
    drop = np.setdiff1d(zs, keep(zs))
    sub = out[:, :, drop]
    sub[sub == value] = 0
    out[:, :, drop] = sub
    return out


def corruptions(labels: np.ndarray, affine: np.ndarray, value: int) -> Iterator[tuple[str, np.ndarray]]:
    """(name, corrupted label map) for one side ``value``; the other labels stay as they are."""
    for mm in (10, 20, 30):
        yield f"shift_anterior_{mm}mm", _shift(labels, value, affine, np.array([0.0, mm, 0.0]))
        yield f"shift_lateral_{mm}mm", _shift(labels, value, affine, np.array([mm if value % 2 == 0 else -mm, 0, 0.0]))
    yield "onto_abdominal_wall", _shift(labels, value, affine, np.array([0.0, 110.0, 0.0]))
    for it in (2, 4):
        yield f"eroded_{it}", _morph(labels, value, it, grow=False)
        yield f"dilated_{it}", _morph(labels, value, it, grow=True)
    yield "upper_third_only", _slices(labels, value, lambda zs: zs[-max(1, len(zs) // 3) :])
    yield "broken_in_two", _slices(labels, value, lambda zs: np.r_[zs[: len(zs) // 4], zs[3 * len(zs) // 4 :]])


def _side_scores(pred: np.ndarray, truth: np.ndarray, ff_pct: np.ndarray, value: int) -> tuple[float, float]:
    p, t = pred == value, truth == value
    dice = 2.0 * (p & t).sum() / max(p.sum() + t.sum(), 1)
    ff_err = abs(float(np.nanmean(ff_pct[p])) - float(np.nanmean(ff_pct[t]))) if p.any() else float("nan")
    return float(dice), ff_err


def _pair_columns(labels: np.ndarray, affine: np.ndarray, value: int) -> dict[str, float]:
    """The side's :func:`scripts.quality.extent.pair_figures` ratios (NaN when it or its partner is absent)."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    areas, partner = ((labels == v).sum(axis=(0, 1)) for v in (value, LEFT_RIGHT_SWAP[value]))
    if not areas.any() or not partner.any():
        return {"volume_ratio": np.nan, "extent_ratio": np.nan, "thin_share": np.nan}
    f = pair_figures(areas, partner, float(np.prod(spacing)) / 1000.0, float(spacing[2]), np.zeros(len(areas)))
    return {"volume_ratio": f.volume_ratio, "extent_ratio": f.extent_ratio, "thin_share": f.thin_share}


def run(
    n: int = 50, seed: int = 100, geometry: str = "low", muscles_per_subject: int = 2, limits: QCLimits | None = None
) -> pd.DataFrame:
    """One row per judged side: subject, case (``truth`` or the corruption), role (``truth``, ``corrupted``, or
    ``partner``: the untouched other side of a corrupted one), label, Dice, FF error, verdict, partner figures."""
    rows = []
    rng = np.random.default_rng(seed)
    for i in range(n):
        orientation = ("RAS", "LPS")[i % 2]
        coverage = ("full", "truncated")[int(i % 3 == 0)]
        subj = generate_subject(seed + i, Acquisition.preset(geometry, orientation=orientation, coverage=coverage))
        truth = subj.images["label"].astype(np.int16)
        ff = np.asarray(subj.images["ff_true"], dtype=np.float64) * 100.0
        body = subj.images["inphase"] > 0.05 * np.percentile(subj.images["inphase"], 99)
        judged = {"truth": (truth, sorted(v for v in np.unique(truth) if v))}
        picked = rng.choice(sorted(v for v in np.unique(truth) if v), size=muscles_per_subject, replace=False)
        for value in picked:
            for name, labels in corruptions(truth, subj.affine, int(value)):
                judged[f"{name}:{value}"] = (labels, [int(value), LEFT_RIGHT_SWAP[int(value)]])
        swapped = np.vectorize(LEFT_RIGHT_SWAP.get)(truth).astype(np.int16)
        judged["left_right_exchanged"] = (
            swapped,
            [label_value("psoas", "left"), label_value("quadratus_lumborum", "left")],
        )
        for case, (labels, values) in judged.items():
            verdicts = assess_segmentation(labels, subj.affine, ff=ff, body=body, limits=limits)
            for k, value in enumerate(values):
                dice, ff_err = _side_scores(labels, truth, ff, value)
                v = verdicts[value]
                role = "truth" if case == "truth" else ("corrupted", "partner")[int(":" in case and k == 1)]
                rows.append(
                    {
                        "subject": f"s{seed + i}",
                        "case": case.split(":")[0],
                        "role": role,
                        "label": value,
                        "dice": dice,
                        "ff_error_pp": ff_err,
                        "qc_status": v.status,
                        "qc_score": v.score,
                        "qc_reasons": "; ".join(v.reasons),
                        **_pair_columns(labels, subj.affine, value),
                    }
                )
    return pd.DataFrame(rows)


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by the rank (Mann-Whitney) formula; ties count one half."""
    pos, neg = score[positive], score[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def summarise(table: pd.DataFrame) -> str:
    partners = table[table.role == "partner"]
    partner_rates = (partners.qc_status != "pass").groupby(partners.case).mean()
    table = table[table.role != "partner"]
    correct = (table.dice >= 0.9) & (table.ff_error_pp.fillna(np.inf) < 1.0)
    wrong = (table.dice < 0.7) | (table.ff_error_pp.fillna(np.inf) > 3.0)
    flagged = table.qc_status != "pass"
    auc = _auc(1.0 - table.qc_score.to_numpy(float), (table.dice < 0.7).to_numpy())
    by_case = (
        table.assign(flagged=flagged)
        .groupby("case")
        .agg(sides=("dice", "size"), dice_median=("dice", "median"), flagged=("flagged", "mean"))
    )
    return "\n".join(
        [
            f"sides judged: {len(table)} ({table.subject.nunique()} phantoms)",
            f"correct sides ({CORRECT}): {int(correct.sum())}, passed {float((~flagged[correct]).mean()):.1%}",
            f"wrong sides ({WRONG}): {int(wrong.sum())}, flagged (review or fail) {float(flagged[wrong].mean()):.1%}",
            f"ROC AUC of 1 - qc_score against Dice < 0.7: {auc:.3f}",
            f"uncorrupted sides flagged: truth {float(flagged[table.role == 'truth'].mean()):.1%} of "
            f"{int((table.role == 'truth').sum())}; partner of a corrupted side "
            f"{float((partners.qc_status != 'pass').mean()):.1%} of {len(partners)}",
            "",
            "partners flagged, by the corruption of the other side: "
            + ", ".join(f"{k} {v:.0%}" for k, v in partner_rates.items()),
            "",
            by_case.to_string(float_format=lambda v: f"{v:.3f}"),
        ]
    )


def main(n: int = 50, seed: int = 100, geometry: str = "low", out_dir: str | None = None) -> str:
    table = run(n=n, seed=seed, geometry=geometry)
    text = summarise(table)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "qc_benchmark.csv", index=False, float_format="%.4f")
        (out / "qc_benchmark.md").write_text(text + "\n")
    return text


if __name__ == "__main__":
    import fire

    fire.Fire(main)
