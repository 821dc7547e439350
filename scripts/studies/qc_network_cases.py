"""The QC benchmark's network failure cases: labels the real network draws on degraded inputs, judged by the verdict.

:mod:`scripts.studies.qc_benchmark` corrupts true labels synthetically; this module lets the shipped network fail
the way it really does. From a phantom cohort it writes a copy whose network input (the in-phase image) is degraded
in kinds seen on real scans, the water and fat images (and so the FF) untouched:

- ``clean``: as generated (the reference for the other kinds);
- ``noise``: Rician noise on the in-phase image at half its 95th percentile (SNR about 2);
- ``water_as_inphase`` / ``fat_as_inphase``: the water or the fat image given as the in-phase image (a series
  mislabelled at export, or a swapped contrast).

``configs/inference.json`` is then run on the copy (it writes each side's verdict into the FF table, with the
network's confidence), and :func:`score_run` scores every side against the phantom's truth: Dice of the predicted
label, and the error of its mean FF (percentage points, the phantom's exact FF over the predicted against the true
label). Commands (2-core CPU: about a minute per subject and kind)::

    python -m scripts.phantom cohort /tmp/qcnet_src --n 4 --seed 31 --n_validation 0 --geometry low --progress false
    python -m scripts.studies.qc_network_cases degrade --dataset_dir /tmp/qcnet_src --out_dir /tmp/qcnet
    python -m monai.bundle run --config_file configs/inference.json --dataset_dir /tmp/qcnet \
        --output_dir /tmp/qcnet_eval
    python -m scripts.studies.qc_network_cases score --dataset_dir /tmp/qcnet --run_dir /tmp/qcnet_eval \\
        --out_dir docs/studies/quality_control/network

``score`` also scores a run on a cohort as generated (subject names without a degradation suffix: the case is
``as generated``), e.g. the anatomy-complete held-out phantoms, whose neighbours of the targets make the network
fail as it does on real scans; where the cohort has a tissue map (``--anatomy complete``), each side also gets the
structures its extra voxels (predicted, not true) lie in.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.io.atomic import atomic_write_text
from scripts.labels import MUSCLES, label_value
from scripts.phantom.tissue_ids import TISSUE_IDS

__all__ = ["DEGRADATIONS", "degrade", "score_run", "summarise"]

DEGRADATIONS: tuple[str, ...] = ("clean", "noise", "water_as_inphase", "fat_as_inphase")
_KEEP = ("water", "fat", "label", "ff_true")


def _inphase(entry: dict, root: Path, kind: str, rng: np.random.Generator) -> nib.Nifti1Image:
    if kind in ("water_as_inphase", "fat_as_inphase"):
        return nib.load(str(root / entry[kind.split("_")[0]]))
    img = nib.load(str(root / entry["inphase"]))
    data = np.asarray(img.dataobj, dtype=np.float32)
    if kind == "noise":
        sigma = 0.5 * float(np.percentile(data, 95))
        real, imag = (rng.normal(0.0, sigma, data.shape).astype(np.float32) for _ in range(2))
        data = np.sqrt((data + real) ** 2 + imag**2)
    elif kind != "clean":
        raise ValueError(f"unknown degradation {kind!r}; expected one of {DEGRADATIONS}")
    return nib.Nifti1Image(data, img.affine)


def degrade(
    dataset_dir: str,
    out_dir: str,
    kinds: tuple[str, ...] | list[str] = DEGRADATIONS,
    datalist_key: str = "training",
    seed: int = 0,
) -> str:
    """Write the degraded copy of a phantom cohort: one subject ``<subject>-<kind>`` per subject and kind.

    Args:
        dataset_dir: a cohort of ``python -m scripts.phantom cohort`` (``datalist.json`` with image, water, fat,
            inphase, label and ff_true per entry; ``participants.tsv``).
        out_dir: new folder: ``datalist.json`` (its ``testing`` list, which inference reads), ``participants.tsv``
            and one folder per new subject.
        kinds: degradations, from :data:`DEGRADATIONS`.
        datalist_key: the source datalist's list to take the subjects from (``training`` for ``--n_validation 0``).
        seed: random seed of the noise.

    Returns:
        the path of the written ``datalist.json``.
    """
    root, out = Path(dataset_dir), Path(out_dir)
    bad = [k for k in kinds if k not in DEGRADATIONS]
    if bad:
        raise ValueError(f"unknown degradation(s) {bad}; expected some of {DEGRADATIONS}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: give a new folder for the degraded cohort")
    entries = json.loads((root / "datalist.json").read_text())[datalist_key]
    parts = pd.read_csv(root / "participants.tsv", sep="\t", dtype={"participant_id": str})
    rng = np.random.default_rng(seed)
    testing, rows = [], []
    for entry in entries:
        for kind in kinds:
            subject = f"{entry['subject']}-{kind.replace('_', '')}"
            folder = out / subject
            folder.mkdir(parents=True)
            new = {"subject": subject}
            for role in _KEEP:
                new[role] = f"{subject}/{subject}_{role}.nii.gz"
                shutil.copyfile(root / entry[role], out / new[role])
            new["image"] = new["inphase"] = f"{subject}/{subject}_inphase.nii.gz"
            nib.save(_inphase(entry, root, kind, rng), str(out / new["inphase"]))
            testing.append(new)
            row = parts[parts.participant_id == entry["subject"]].assign(participant_id=subject, degradation=kind)
            rows.append(row)
    pd.concat(rows).to_csv(out / "participants.tsv", sep="\t", index=False)
    datalist = {"description": "degraded copy of " + str(root), "training": [], "validation": [], "testing": testing}
    atomic_write_text(out / "datalist.json", json.dumps(datalist, indent=1), overwrite=False)
    return str(out / "datalist.json")


def _subject_and_case(name: str) -> tuple[str, str]:
    """``sub-0001-noise`` -> ``("sub-0001", "noise")``; a name without a degradation suffix is ``as generated``."""
    stem, _, suffix = name.rpartition("-")
    kinds = {k.replace("_", "") for k in DEGRADATIONS}
    return (stem, suffix) if stem and suffix in kinds else (name, "as generated")


def _extra_tissues(extra: np.ndarray, tissue: np.ndarray | None, top: int = 3) -> str:
    """The structures holding a label's extra voxels, largest share first: ``"muscle_fascia 0.38; ..."``."""
    if tissue is None or not extra.any():
        return ""
    ids, counts = np.unique(tissue[extra], return_counts=True)
    ranked = sorted(zip((-counts).tolist(), ids.tolist()))[:top]  # largest share first, ties by structure id
    return "; ".join(f"{TISSUE_IDS.get(i, str(i))} {-n / extra.sum():.2f}" for n, i in ranked)


def score_run(dataset_dir: str, run_dir: str) -> pd.DataFrame:
    """One row per subject, kind and muscle side of the run's FF tables: Dice; ``ff_error_pp``, the label's own
    error (the phantom's exact FF over the predicted against the true label); ``reported_ff_error_pp``, the FF table's
    ``ff_mean_pct`` (stored water and fat, border-trim rule) against the exact FF over the true label; the verdict;
    ``extra_share`` (the share of the predicted label outside the true one) and, with a tissue map,
    ``extra_tissues`` (the structures those voxels lie in). A side the field of view does not hold (no true voxel)
    is not scored.

    Args:
        dataset_dir: the degraded cohort of :func:`degrade` (truth: ``label``, ``ff_true`` per entry).
        run_dir: the inference output folder (``<subject>/<subject>_seg.nii.gz`` and ``_ff_table.csv``).

    Raises:
        FileNotFoundError: no subject of the datalist has a finished result in ``run_dir``.
    """
    root, run = Path(dataset_dir), Path(run_dir)
    rows = []
    for entry in json.loads((root / "datalist.json").read_text())["testing"]:
        subject = entry["subject"]
        seg_path, table_path = (run / subject / f"{subject}{s}" for s in ("_seg.nii.gz", "_ff_table.csv"))
        if not table_path.is_file():
            continue
        pred = np.asarray(nib.load(str(seg_path)).dataobj).astype(np.int16)
        truth = np.asarray(nib.load(str(root / entry["label"])).dataobj).astype(np.int16)
        ff = np.asarray(nib.load(str(root / entry["ff_true"])).dataobj, dtype=np.float64) * 100.0
        tissue = np.asarray(nib.load(str(root / entry["tissue"])).dataobj) if entry.get("tissue") else None
        name, case = _subject_and_case(subject)
        table = pd.read_csv(table_path).set_index(["muscle", "side"])
        for muscle in MUSCLES:
            for side in ("left", "right"):
                value = label_value(muscle, side)
                p, t = pred == value, truth == value
                if not t.any():
                    # the field of view holds none of this muscle: nothing to score against (a label drawn there
                    # anyway is the verdict's to catch, as a speck or a lone side)
                    continue
                dice = 2.0 * (p & t).sum() / max(p.sum() + t.sum(), 1)
                true_ff = float(np.nanmean(ff[t]))
                ff_err = abs(float(np.nanmean(ff[p])) - true_ff) if p.any() else float("nan")
                row = table.loc[(muscle, side)]
                rows.append(
                    {
                        "subject": name,
                        "case": case,
                        "label": value,
                        "dice": float(dice),
                        "ff_error_pp": ff_err,
                        "reported_ff_error_pp": abs(float(row["ff_mean_pct"]) - true_ff),
                        "qc_status": row["qc_status"],
                        "qc_score": float(row["qc_score"]),
                        "qc_reasons": row["qc_reasons"] if isinstance(row["qc_reasons"], str) else "",
                        "net_margin_mean": float(row.get("net_margin_mean", np.nan)),
                        "extra_share": float((p & ~t).sum() / max(p.sum(), 1)),
                        "extra_tissues": _extra_tissues(p & ~t, tissue),
                    }
                )
    if not rows:
        raise FileNotFoundError(f"{run} holds no finished subject of {root / 'datalist.json'}: run inference first")
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> str:
    """Per kind: sides, median Dice, wrong sides (Dice < 0.7 or FF error > 3 pp) flagged, correct sides passed."""
    wrong = (table.dice < 0.7) | (table.ff_error_pp.fillna(np.inf) > 3.0)
    correct = (table.dice >= 0.9) & (table.ff_error_pp.fillna(np.inf) < 1.0)
    flagged = table.qc_status != "pass"
    lines = [
        "| input | sides | median Dice | median reported FF error (pp) | wrong sides | wrong flagged | correct sides "
        "| correct passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, g in table.groupby("case", sort=False):
        w, c, f = wrong[g.index], correct[g.index], flagged[g.index]
        lines.append(
            f"| {kind} | {len(g)} | {g.dice.median():.3f} | {g.reported_ff_error_pp.median():.2f} | {int(w.sum())} | "
            f"{f[w].mean():.0%} | {int(c.sum())} | {(~f[c]).mean():.0%} |".replace("nan%", "-")
        )
    w, c = wrong, correct
    lines.append(
        f"| all | {len(table)} | {table.dice.median():.3f} | {table.reported_ff_error_pp.median():.2f} | "
        f"{int(w.sum())} | {flagged[w].mean():.0%} | "
        f"{int(c.sum())} | {(~flagged[c]).mean():.0%} |".replace("nan%", "-")
    )
    return "\n".join(lines) + "\n"


def score(dataset_dir: str, run_dir: str, out_dir: str | None = None) -> str:
    """Score a finished run (:func:`score_run`), print the summary and write ``network_cases.csv`` / ``.md``."""
    table = score_run(dataset_dir, run_dir)
    text = summarise(table)
    if out_dir:
        out = Path(out_dir)
        atomic_write_text(out / "network_cases.csv", table.to_csv(index=False, float_format="%.4f"), overwrite=True)
        atomic_write_text(out / "network_cases.md", text, overwrite=True)
    return text


if __name__ == "__main__":
    import fire

    fire.Fire({"degrade": degrade, "score": score})
