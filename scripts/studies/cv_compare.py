"""Comparison of one method between two cross-validation studies run on the same splits (e.g. two U-Net inputs),
pair by pair (same split, same test subject)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from scripts.evaluation.ff_agreement_stats import agreement_by_muscle
from scripts.io.atomic import atomic_write_text
from scripts.labels import MUSCLES
from scripts.studies.cv_markdown import (
    FF_MUSCLE_NOTE,
    comparison_note,
    markdown_comparison,
    markdown_ff,
    markdown_ff_muscle,
)
from scripts.studies.cv_tables import FF_RULES, NAMES, comparison_table, ff_agreement_table, split_sizes

__all__ = ["compare_studies"]


def _study_tables(study: Path, method: str) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """One method's metric rows, the splits and the settings of a finished study."""
    paths = {name: study / name for name in ("metrics_all.csv", "splits.json", "settings.json")}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{study} is not a finished cross-validation study: missing {', '.join(missing)}")
    metrics = pd.read_csv(paths["metrics_all.csv"], dtype={"subject": str})
    metrics = metrics[metrics.method == method]
    if metrics.empty:
        raise ValueError(f"{paths['metrics_all.csv']} has no rows of method {method!r}")
    return metrics, json.loads(paths["splits.json"].read_text()), json.loads(paths["settings.json"].read_text())


def _paired_studies(
    study: Path, baseline: Path, method: str, name: str, baseline_name: str
) -> tuple[pd.DataFrame, list[int], dict[str, Any], dict[str, Any]]:
    """Both studies' rows of ``method`` on the splits they share (renamed ``name`` and ``baseline_name``), those
    splits and both settings; refuses studies whose shared splits differ."""
    m_a, splits_a, settings_a = _study_tables(study, method)
    m_b, splits_b, settings_b = _study_tables(baseline, method)

    def draw(doc: Mapping[str, Any]) -> dict[int, tuple[Any, ...]]:
        return {int(sp["split"]): (tuple(sp["test"]), sp.get("seed")) for sp in doc["splits"]}

    draw_a, draw_b = draw(splits_a), draw(splits_b)
    shared = sorted(set(draw_a) & set(draw_b))
    if not shared or any(draw_a[i] != draw_b[i] for i in shared):
        raise ValueError(
            f"{study / 'splits.json'} and {baseline / 'splits.json'} hold different splits: a paired "
            "comparison needs the same test subjects per split (run both with the same --n_test, "
            "--seed and datalist; a smaller --k draws the first splits of a larger one)"
        )
    # a study with fewer splits (a smaller --k, same seed) is compared on the splits both ran
    m_a, m_b = m_a[m_a.split.isin(shared)], m_b[m_b.split.isin(shared)]
    metrics = pd.concat([m_a.assign(method=name), m_b.assign(method=baseline_name)], ignore_index=True)
    return metrics, shared, settings_a, settings_b


def compare_studies(
    study: str | Path,
    baseline: str | Path,
    out_dir: str | Path,
    name: str = "two-channel",
    baseline_name: str = "one-channel",
    method: str = "unet",
) -> Path:
    """Compare one method between two cross-validation studies run on the same splits (e.g. two U-Net inputs).

    The pairs are the same split and test subject in both studies, so the splits both ran must be identical (same
    test lists and seeds in ``splits.json``; a study run with a smaller ``--k`` and the same seed holds the first
    splits of a larger one and is compared on those); anything else is refused. Writes ``out_dir/comparison.csv`` (as
    :func:`scripts.studies.cv_tables.comparison_table`), ``out_dir/ff_agreement.csv`` (as
    :func:`scripts.studies.cv_tables.ff_agreement_table`) and ``out_dir/report.md``.

    Args:
        study: folder of the study under test (``scripts.studies.cross_validation run --out_dir``).
        baseline: folder of the study it is compared with.
        out_dir: where the comparison goes.
        name, baseline_name: how the two are called in the tables.
        method: the method compared (``unet``, ``multi_atlas`` or ``multi_atlas_mv``).

    Returns:
        path of the report.
    """
    study, baseline, out = Path(study), Path(baseline), Path(out_dir)
    if name == baseline_name:
        raise ValueError(f"name and baseline_name must differ, both are {name!r}")
    metrics, shared, settings_a, settings_b = _paired_studies(study, baseline, method, name, baseline_name)
    n_train, n_test = split_sizes(study / "splits.json")
    table = comparison_table(metrics, name, baseline_name, n_train=n_train, n_test=n_test)
    rules = [c for c in FF_RULES if c in metrics.columns and metrics[c].notna().any()]
    ff = pd.concat([ff_agreement_table(metrics, [name, baseline_name], c) for c in rules], ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "comparison.csv", table.to_csv(index=False), overwrite=True)
    atomic_write_text(out / "ff_agreement.csv", ff.to_csv(index=False), overwrite=True)
    differ = sorted(k for k in set(settings_a) | set(settings_b) if settings_a.get(k) != settings_b.get(k))
    n_pairs = metrics.drop_duplicates(["split", "subject"]).shape[0]
    lines = [
        f"# {name} vs {baseline_name} ({NAMES.get(method, method)}), same cross-validation splits",
        "",
        f"Study `{study}` ({name}) against `{baseline}` ({baseline_name}): splits {shared}, "
        f"{n_pairs} test segmentations each. Settings that differ: "
        + (
            ", ".join(f"`{k}` ({json.dumps(settings_a.get(k))} vs {json.dumps(settings_b.get(k))})" for k in differ)
            or "none"
        )
        + ".",
        "",
        "## Segmentation",
        "",
    ] + comparison_note(len(table))
    by_muscle = pd.concat(
        [agreement_by_muscle(metrics, [name, baseline_name], c, MUSCLES) for c in reversed(rules)], ignore_index=True
    )
    atomic_write_text(out / "ff_agreement_by_muscle.csv", by_muscle.to_csv(index=False), overwrite=True)
    lines += markdown_comparison(table, name, baseline_name)
    lines += [
        "",
        "## Fat fraction agreement",
        "",
        "FF under each study's label against FF under the reference label (plain mean).",
        "",
    ]
    lines += FF_MUSCLE_NOTE + markdown_ff_muscle(by_muscle, str)
    lines += [
        "",
        "Pooled over muscles and sides (descriptive; the rows are not independent, see the pooled row "
        "above for the clustered bias):",
        "",
    ]
    lines += markdown_ff(ff, str)
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n", overwrite=True)
    return report
