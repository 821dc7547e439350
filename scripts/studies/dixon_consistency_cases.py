"""Figures of the Dixon input-consistency check on phantom cohorts, as given and with the in-phase image degraded.

:mod:`scripts.quality.dixon_consistency` compares the in-phase image (the network's input) with the water and fat
images. This study measures its figures (contrast, noise, opposed-phase ratio) and findings on every subject of one
or more phantom cohorts, with the in-phase image as generated and degraded the ways of
:mod:`scripts.studies.qc_network_cases` (water or fat image given as in-phase, Rician noise at a fraction of the
in-phase image's 95th percentile), without running the network: the check reads the images alone. It is what the
thresholds of :class:`scripts.quality.dixon_consistency.ConsistencyLimits` were set on (tuning cohorts) and checked
against (held-out cohorts). Command::

    python -m scripts.studies.dixon_consistency_cases measure /work/data/vert/phantom_train_complete \\
        --out_csv /tmp/consistency_tuning.csv

``write`` makes a copy of a cohort with chosen cases as new subjects (``<subject>-<case>``), for running the network
on them (``configs/inference.json``) and scoring its labels with
:func:`scripts.studies.qc_network_cases.score_run`::

    python -m scripts.studies.dixon_consistency_cases write /tmp/tune --out_dir /tmp/noise_levels \\
        --cases '["noise_0.1","noise_0.25"]'
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.quality.dixon_consistency import dixon_consistency

__all__ = ["CASES", "degraded_inphase", "measure_cohort", "write_cases", "main"]

#: in-phase degradations: name -> (kind, noise as a fraction of the in-phase image's 95th percentile)
CASES: dict[str, tuple[str, float]] = {
    "as_generated": ("as_generated", 0.0),
    "water_as_inphase": ("water", 0.0),
    "fat_as_inphase": ("fat", 0.0),
    "noise_0.05": ("noise", 0.05),
    "noise_0.1": ("noise", 0.1),
    "noise_0.25": ("noise", 0.25),
    "noise_0.5": ("noise", 0.5),
}


def degraded_inphase(images: dict[str, np.ndarray], case: str, rng: np.random.Generator) -> np.ndarray:
    """The in-phase image of ``case`` (:data:`CASES`) from a subject's ``water``, ``fat`` and ``inphase`` arrays."""
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}; expected one of {list(CASES)}")
    kind, level = CASES[case]
    if kind in ("water", "fat"):
        return images[kind]
    data = images["inphase"]
    if kind == "noise":
        sigma = level * float(np.percentile(data, 95))
        real, imag = (rng.normal(0.0, sigma, data.shape).astype(np.float32) for _ in range(2))
        data = np.sqrt((data + real) ** 2 + imag**2)
    return data


def _entries(dataset_dir: Path) -> list[dict]:
    datalist = json.loads((dataset_dir / "datalist.json").read_text())
    return [e for key in ("training", "validation", "testing") for e in datalist.get(key, [])]


def measure_cohort(dataset_dir: str, cases: tuple[str, ...] | list[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per subject and case: the check's figures and findings.

    Args:
        dataset_dir: a phantom cohort (``datalist.json`` entries with ``water``, ``fat``, ``inphase`` and optionally
            ``opposed``, paths relative to the folder).
        cases: degradations from :data:`CASES` (default: all of them).
        seed: random seed of the noise.

    Raises:
        FileNotFoundError: the folder has no ``datalist.json`` or an entry lacks water, fat or in-phase.
    """
    root = Path(dataset_dir)
    cases = list(CASES) if cases is None else list(cases)
    if not (root / "datalist.json").is_file():
        raise FileNotFoundError(f"{root} has no datalist.json: give a phantom cohort folder")
    rng = np.random.default_rng(seed)
    rows = []
    for entry in _entries(root):
        missing = [r for r in ("water", "fat", "inphase") if r not in entry]
        if missing:
            raise FileNotFoundError(f"{root}: entry {entry.get('subject')} has no {missing} image(s)")
        roles = [r for r in ("water", "fat", "inphase", "opposed") if r in entry]
        images = {r: np.asarray(nib.load(str(root / entry[r])).dataobj, dtype=np.float32) for r in roles}
        for case in cases:
            given = dict(images, inphase=degraded_inphase(images, case, rng))
            result = dixon_consistency(given).to_dict()
            rows.append(
                {
                    "cohort": root.name,
                    "subject": entry["subject"],
                    "case": case,
                    **{k: v for k, v in result.items() if k != "findings"},
                    "review": any(f.startswith("review") for f in result["findings"]),
                    "findings": " | ".join(result["findings"]),
                }
            )
    return pd.DataFrame(rows)


def write_cases(dataset_dir: str, out_dir: str, cases: tuple[str, ...] | list[str], seed: int = 0) -> str:
    """Write a copy of a phantom cohort with each subject's in-phase image degraded by each case of ``cases``.

    Args:
        dataset_dir: a phantom cohort (entries with ``water``, ``fat``, ``inphase``, ``label``, ``ff_true``).
        out_dir: a new (or empty) folder: one subject ``<subject>-<case>`` per subject and case (water, fat, label
            and exact FF copied; ``image`` = the degraded in-phase image) and ``datalist.json`` (``testing``).
        cases: degradations from :data:`CASES`.
        seed: random seed of the noise.

    Returns:
        the path of the written ``datalist.json``.
    """
    root, out = Path(dataset_dir), Path(out_dir)
    bad = [c for c in cases if c not in CASES]
    if bad:
        raise ValueError(f"unknown case(s) {bad}; expected some of {list(CASES)}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: give a new folder for the degraded copy")
    rng = np.random.default_rng(seed)
    testing = []
    for entry in _entries(root):
        img = nib.load(str(root / entry["inphase"]))
        images = {r: np.asarray(nib.load(str(root / entry[r])).dataobj, dtype=np.float32) for r in ("water", "fat")}
        images["inphase"] = np.asarray(img.dataobj, dtype=np.float32)
        for case in cases:
            subject = f"{entry['subject']}-{case.replace('_', '').replace('.', '')}"
            (out / subject).mkdir(parents=True)
            new = {"subject": subject}
            for role in ("water", "fat", "label", "ff_true"):
                new[role] = f"{subject}/{subject}_{role}.nii.gz"
                shutil.copyfile(root / entry[role], out / new[role])
            new["image"] = new["inphase"] = f"{subject}/{subject}_inphase.nii.gz"
            nib.save(nib.Nifti1Image(degraded_inphase(images, case, rng), img.affine), str(out / new["inphase"]))
            testing.append(new)
    datalist = {"description": f"in-phase degraded copy of {root}", "training": [], "validation": []}
    datalist["testing"] = testing
    (out / "datalist.json").write_text(json.dumps(datalist, indent=1))
    return str(out / "datalist.json")


def main(*dataset_dirs: str, out_csv: str | None = None, seed: int = 0) -> str:
    """Measure every cohort (:func:`measure_cohort`), write the rows to ``out_csv`` and return a per-case summary."""
    if not dataset_dirs:
        raise ValueError("give at least one phantom cohort folder")
    table = pd.concat([measure_cohort(d, seed=seed) for d in dataset_dirs], ignore_index=True)
    if out_csv:
        table.to_csv(out_csv, index=False, float_format="%.4f")
    summary = table.groupby(["cohort", "case"], sort=False).agg(
        n=("subject", "size"),
        contrast_min=("contrast", "min"),
        contrast_max=("contrast", "max"),
        noise_min=("noise", "min"),
        noise_max=("noise", "max"),
        opposed_min=("opposed_ratio", "min"),
        opposed_max=("opposed_ratio", "max"),
        reviewed=("review", "mean"),
    )
    return summary.to_string(float_format=lambda v: f"{v:.3f}")


if __name__ == "__main__":
    import fire

    fire.Fire({"measure": main, "write": write_cases})
