"""The table, curve and verdict of the simulated annotation loop (:mod:`scripts.studies.annotation_loop`).

Reads the round records under ``<out>/<strategy>/seed<k>/round<r>/.done.json`` and the shared round 0
(``<out>/baseline``), writes ``rounds.csv`` (one row per strategy, seed and round, round 0 repeated per chain),
``curve.png`` (mean Dice of the four muscles and FF median |error| against annotated scans: mean and range over
seeds per strategy) and ``summary.md`` (mean per strategy and budget, CPU time per round, the verdict on the
target "uncertainty reaches random's final Dice with at most half the annotated scans").
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from scripts.io.atomic import atomic_write_text  # noqa: E402
from scripts.labels import MUSCLES  # noqa: E402

__all__ = ["COLUMNS", "collect", "verdict", "write_report"]

#: the columns of ``rounds.csv``.
COLUMNS = [
    "strategy",
    "seed",
    "round",
    "n_annotated",
    "picked",
    "picked_doubt",
    "picked_density",
    "pool_doubt_max",
    "pool_doubt_median",
    "val_dice_before",
    "val_dice_round",
    "weights_action",
    "val_dice",
    *[f"dice_{m}" for m in MUSCLES],
    "dice_mean",
    "ff_abs_err_median_pp",
    "cpu_s",
    "wall_s",
]


def collect(out_dir: Path) -> pd.DataFrame:
    """One row per finished (strategy, seed, round), with round 0 (the shipped weights) added per chain."""
    base = json.loads((Path(out_dir) / "baseline" / ".done.json").read_text())
    rows = []
    for marker in sorted(Path(out_dir).glob("*/seed*/round*/.done.json")):
        r = json.loads(marker.read_text())
        r["picked"] = ";".join(r["picked"])
        r["picked_doubt"] = ";".join(f"{d:.4f}" for d in r["picked_doubt"])
        r["picked_density"] = ";".join(f"{d:.4f}" for d in r.get("picked_density", []))  # uncertainty_typical
        rows.append(r)
    chains = {(r["strategy"], r["seed"]) for r in rows}
    for strategy, seed in chains:
        rows.append(
            {
                **base,
                "strategy": strategy,
                "seed": seed,
                "picked": "",
                "picked_doubt": "",
                "picked_density": "",
                "weights_action": "shipped",
                "cpu_s": None,
                "wall_s": None,
            }
        )
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    return table.sort_values(["strategy", "seed", "round"], ignore_index=True)


def verdict(table: pd.DataFrame, budgets: list[int]) -> str:
    """The target in words: the fewest annotated scans at which the uncertainty arm's mean Dice (over seeds)
    reaches the random arm's mean Dice at the largest budget, against half that budget."""
    means = table.groupby(["strategy", "n_annotated"]).dice_mean.mean()
    final = budgets[-1]
    if ("random", final) not in means or ("uncertainty", final) not in means:
        return "Verdict: not available (both strategies must finish the largest budget)."
    target = means[("random", final)]
    reached = [b for b in budgets if ("uncertainty", b) in means and means[("uncertainty", b)] >= target]
    spread = table[table.n_annotated == final].groupby("strategy").dice_mean.agg(["min", "max"])
    ranges = "; ".join(f"{s}: {row['min']:.4f}-{row['max']:.4f}" for s, row in spread.iterrows())
    head = (
        f"Random's mean Dice with {final} annotated scans: {target:.4f}; uncertainty's: "
        f"{means[('uncertainty', final)]:.4f} (range over seeds at {final} scans: {ranges}). "
    )
    if (0 in table.n_annotated.values) and target <= table[table.n_annotated == 0].dice_mean.mean():
        head += "Random's final Dice does not beat the shipped weights' (round 0): the comparison says little. "
    if reached and reached[0] <= final / 2:
        return head + f"Target met: uncertainty reaches it with {reached[0]} scans (<= {final / 2:g})."
    where = f"first with {reached[0]} scans" if reached else "at no budget"
    return head + f"Target not met: uncertainty reaches it {where}, not with <= {final / 2:g}."


def _plot(table: pd.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), dpi=90)
    for (strategy, g), colour in zip(table.groupby("strategy"), ("tab:blue", "tab:orange", "tab:green")):
        for ax, column in zip(axes, ("dice_mean", "ff_abs_err_median_pp")):
            s = g.groupby("n_annotated")[column].agg(["mean", "min", "max"])
            ax.plot(s.index, s["mean"], "o-", color=colour, label=f"{strategy} (n={g.seed.nunique()} seeds)")
            ax.fill_between(s.index, s["min"], s["max"], color=colour, alpha=0.2)
    axes[0].set_ylabel("held-out Dice (mean of 4 muscles)")
    axes[1].set_ylabel("FF median |error| (pp)")
    for ax in axes:
        ax.set_xlabel("annotated scans")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(out_dir: Path, budgets: list[int]) -> str:
    """Write ``rounds.csv``, ``curve.png`` and ``summary.md`` in ``out_dir``; returns the summary (Markdown)."""
    out_dir = Path(out_dir)
    table = collect(out_dir)
    table.to_csv(out_dir / "rounds.csv", index=False, float_format="%.4f")
    _plot(table, out_dir / "curve.png")
    agg = table.groupby(["strategy", "n_annotated"]).agg(
        seeds=("seed", "nunique"),
        dice_mean=("dice_mean", "mean"),
        dice_min=("dice_mean", "min"),
        dice_max=("dice_mean", "max"),
        ff_err=("ff_abs_err_median_pp", "mean"),
        replaced=("weights_action", lambda s: int((s == "replaced").sum())),
        cpu_s=("cpu_s", "mean"),
        wall_s=("wall_s", "mean"),
    )
    lines = [
        "| strategy | annotated | seeds | Dice mean | Dice min | Dice max | FF median abs err pp (mean) | "
        "rounds that replaced the weights | CPU s per round | wall s per round |",
        "|---" * 10 + "|",
    ]
    for (strategy, n), r in agg.iterrows():
        cpu = "" if pd.isna(r.cpu_s) else f"{r.cpu_s:.0f}"
        wall = "" if pd.isna(r.wall_s) else f"{r.wall_s:.0f}"
        lines.append(
            f"| {strategy} | {n} | {int(r.seeds)} | {r.dice_mean:.4f} | {r.dice_min:.4f} | {r.dice_max:.4f} | "
            f"{r.ff_err:.2f} | {int(r.replaced)} | {cpu} | {wall} |"
        )
    text = "\n".join([*lines, "", verdict(table, budgets), ""])
    atomic_write_text(out_dir / "summary.md", text, overwrite=True)  # more rounds, new summary
    return text
