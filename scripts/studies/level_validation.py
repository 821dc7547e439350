"""Validation of the vertebral-level assignment on anatomy-complete phantoms (issue #26; docs/studies/levels.md).

For each subject of a phantom cohort (``python -m scripts.phantom cohort ... --anatomy complete``) the truth label
map (muscles 1-8 from ``label``, vertebrae 9-14 from ``vertebrae``) is given to
:func:`scripts.quantification.levels.assign_levels`, as stored and cut to L2-L5, L3-S1 and T12-L3, after the bodies
are counted up from the sacrum as the pipeline does (:mod:`scripts.quantification.vertebra_naming`); two more
scenarios give it every body named one level too high (as stored, and cut to L3-S1), and three give the lowest body
in view as a user states it (``--lowest_vertebra``: L5 for the L2-L5 cut, L3 for T12-L3, and a wrong L4 for L3-S1,
which must name nothing). The reference is
the generator's own geometry: its anatomy is drawn again from the subject's seed (``participants.tsv``; the same
random stream as :func:`scripts.phantom.generate.generate_subject`), and level ``k`` (0 = L5) has its body at
``z_rel`` 5 + 36 k to 32 + 36 k, the sacrum's top at -2.5 (``scripts.phantom.spine``), world z =
``SubjectAnatomy.z(z_rel)``; a true bound is midway between two bodies, T12/L1 midway between L1 and T12.

Counted per scenario: bounds within 3 mm of the truth, levels named ``ok`` whose mid-plane lies in another true level
(misnamed: target 0), uncertain levels; per level side with >= 1 mL: the FF median of ff_true in the assigned levels
(the levels' own error) and of the stored water/fat FF (end to end, with the acquisition's noise) against ff_true in the
true levels, and the mean CSA against the truth label in the true levels.

With ``--pred_dir`` (an inference run's output folder on the cohort, with a spine network or a 15-output model) the
vertebral map is the run's (``<subject>/<subject>_seg.nii.gz``, values 9-14) instead of the truth, the muscles stay
the truth's: this measures the levels the pipeline gives. Each scenario then counts the bodies of the cropped map up
from the sacrum as a spine network's are (:func:`scripts.quantification.vertebra_naming.count_bodies_from_sacrum`,
every body one class), and the two "names one level high" scenarios, which simulate a 15-output model's naming
error on the truth, are left out. With ``--from_image`` the vertebral map is the bodies found in each cropped FF map
(water/fat, with the acquisition's noise) and named from the scenario's statement
(:func:`scripts.quantification.image_vertebrae.vertebrae_from_image`); only the stated scenarios run. Each naming
row says whether the statement was true (``statement_true``: the stated body is the lowest with at least half of
it in view; a truncated phantom cut "L2-L5" may show L3 as its lowest), and the summary counts the misnamed levels
under a false statement apart (``misnamed_wrong_statement``).

Usage::

    python -m scripts.studies.level_validation --cohort /work/data/vert/phantom_test_complete --out OUT [--limit N]
        [--pred_dir RUN | --from_image]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scripts.grid import slice_axis_from_affine
from scripts.phantom.generate import make_anatomy
from scripts.phantom.population import draw_participant
from scripts.quantification.formulas import fat_fraction_from_water_fat
from scripts.quantification.image_vertebrae import vertebrae_from_image
from scripts.quantification.level_statistics import level_statistics
from scripts.quantification.levels import Level, LevelAssignment, assign_levels
from scripts.quantification.vertebra_naming import count_bodies_from_sacrum, levels_anchor, name_bodies_from_sacrum
from scripts.transforms.label_maps.spine_target import spine_target_array

__all__ = ["generator_bounds", "crop_to_z", "evaluate_subject", "summarise", "main"]

#: scenario -> (caudal, cranial) true bound names that delimit the kept slab (None: as stored)
SCENARIOS: dict[str, tuple[str, str] | None] = {
    "as_stored": None,
    "L2-L5": ("L5/S1", "L1/L2"),
    "L3-S1": ("S1_low", "L2/L3"),
    "T12-L3": ("L3/L4", "T12_high"),
    # the 15-output candidates' typical error, every body named one level too high (L1 and L2 both "L1"): the
    # pipeline counts the names back from the sacrum (scripts.quantification.vertebra_naming)
    "names one level high": None,
    "names one level high, L3-S1": ("S1_low", "L2/L3"),
    # the user states the lowest body in view (inference.json --lowest_vertebra): right without the sacrum, and
    # wrong with the sacrum in view (the count must refuse it, not follow it)
    "L2-L5, stated L5": ("L5/S1", "L1/L2"),
    "T12-L3, stated L3": ("L3/L4", "T12_high"),
    "L3-S1, stated L4 (wrong)": ("S1_low", "L2/L3"),
}
#: scenario -> the lowest body in view as a user states it (scripts.quantification.vertebra_naming, rule 6)
STATED: dict[str, str] = {"L2-L5, stated L5": "L5", "T12-L3, stated L3": "L3", "L3-S1, stated L4 (wrong)": "L4"}
_NAMES = ("L5", "L4", "L3", "L2", "L1")


def names_one_level_high(label: np.ndarray) -> np.ndarray:
    """The label map with every lumbar body named one level too high (L5 -> L4, ..., L2 -> L1, L1 stays L1)."""
    out = label.copy()
    bodies = (label >= 10) & (label <= 13)
    out[bodies] = label[bodies] - 1
    return out


def generator_bounds(seed: int, subject: str, texture: str = "smooth") -> dict[str, float]:
    """The generator's true planes (world z, mm) of one subject: ``"L5/S1"`` ... ``"T12/L1"``, and the slab ends
    ``"S1_low"`` (30 mm below L5/S1) and ``"T12_high"`` (T12's cranial end)."""
    rng = np.random.default_rng([int(seed), 20261125])
    anat = make_anatomy(draw_participant(subject, rng), rng, texture=texture, texture_seed=int(seed))
    # the L5/S1 plane is midway between L5's caudal end (5) and the sacrum's top (-2.5); the others between bodies
    names = ("L5/S1", "L4/L5", "L3/L4", "L2/L3", "L1/L2", "T12/L1")
    planes = {"L5/S1": float(anat.z(1.25))}
    planes.update({names[k + 1]: float(anat.z(36.5 + 36 * k)) for k in range(5)})
    planes["S1_low"] = planes["L5/S1"] - 30.0
    planes["T12_high"] = float(anat.z(32 + 36 * 5))
    return planes


def true_levels(planes: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Level -> (caudal, cranial) true bound (mm)."""
    order = ["T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    return {f"L{i + 1}": (planes[order[i + 1]], planes[order[i]]) for i in range(5)}


def crop_to_z(arrays: list[np.ndarray], affine: np.ndarray, z_low: float, z_high: float):
    """Keep the slices whose centre (at the in-plane centre) lies in ``[z_low, z_high]``; returns arrays, affine."""
    axis = slice_axis_from_affine(affine)
    shape = arrays[0].shape
    vox = np.tile((np.asarray(shape, float) - 1.0) / 2.0, (shape[axis], 1))
    vox[:, axis] = np.arange(shape[axis])
    z = affine[2, :3] @ vox.T + affine[2, 3]
    keep = np.flatnonzero((z >= z_low) & (z <= z_high))
    k0, k1 = int(keep.min()), int(keep.max()) + 1
    new = affine.copy()
    new[:3, 3] += affine[:3, axis] * k0
    sl = [slice(None)] * 3
    sl[axis] = slice(k0, k1)
    return [a[tuple(sl)] for a in arrays], new


def _naming(assignment: LevelAssignment, truth: dict[str, tuple[float, float]]) -> list[dict]:
    """Per assigned level: its true level (by mid-plane), bound errors and whether it is misnamed."""
    rows = []
    for lv in assignment.levels:
        where = [n for n, (lo, hi) in truth.items() if lo <= lv.z_mid < hi]
        true_name = where[0] if where else "outside"
        lo, hi = truth.get(lv.name, (math.nan, math.nan))
        rows.append(
            {
                "level": lv.name,
                "true_level": true_name,
                "status": lv.status,
                "coverage": lv.coverage,
                "err_low_mm": lv.z_low - lo,
                "err_high_mm": lv.z_high - hi,
                "misnamed": lv.status == "ok" and true_name != lv.name,
            }
        )
    return rows


def _level_errors(lab, aff, ff, ff_true, assignment, truth) -> list[dict]:
    """Per level side (>= 1 mL in the truth): FF median and mean CSA error against the truth."""
    measured = level_statistics(lab, aff, ff, aff, assignment, min_volume_ml=1.0)
    placed = level_statistics(lab, aff, ff_true, aff, assignment, min_volume_ml=1.0)
    measured["ff_placed_pct"] = placed["ff_median_pct"].to_numpy()
    fov = assignment.fov_z
    levels = []
    for name, (lo, hi) in truth.items():
        inside = max(0.0, min(hi, fov[1]) - max(lo, fov[0])) / (hi - lo)
        if inside > 0 and name in {lv.name for lv in assignment.levels}:
            levels.append(Level(name, lo, hi, inside, "ok"))
    ref = level_statistics(lab, aff, ff_true, aff, LevelAssignment(levels, [], "ok", [], "mid_disc", fov))
    merged = measured.merge(ref, on=["level", "label"], suffixes=("", "_true"))
    merged = merged[merged.volume_ml_true >= 1.0]
    return [
        {
            "level": r.level,
            "label": int(r.label),
            "ff_err_pp": r.ff_median_pct - r.ff_median_pct_true,
            "ff_level_err_pp": r.ff_placed_pct - r.ff_median_pct_true,
            "csa_err_rel": (r.csa_mean_cm2 - r.csa_mean_cm2_true) / r.csa_mean_cm2_true,
        }
        for r in merged.itertuples()
    ]


def _load(cohort: Path, sid: str) -> dict[str, np.ndarray]:
    out = {}
    for key in ("label", "vertebrae", "ff_true", "water", "fat"):
        img = nib.load(str(cohort / sid / f"{sid}_{key}.nii.gz"))
        out[key] = np.asarray(img.dataobj)
        out["affine"] = img.affine
    return out


def _predicted_vertebrae(pred_dir: Path, sid: str, shape: tuple[int, ...]) -> np.ndarray:
    """The run's vertebral values (9-14) of one subject, on the truth's grid (the run writes the input grid)."""
    path = pred_dir / sid / f"{sid}_seg.nii.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no label map of {sid} in the run; run inference on the cohort first")
    seg = np.asarray(nib.load(str(path)).dataobj)
    if seg.shape != shape:
        raise ValueError(f"{path}: shape {seg.shape} differs from the phantom's {shape}")
    return np.where(seg >= 9, seg, 0).astype(np.uint8)


def _spine_named(lab: np.ndarray, aff: np.ndarray, lowest_vertebra: str | None = None):
    """The vertebral part of ``lab`` as a spine network sees it (bodies one class), counted up from the sacrum (or
    from the stated lowest body)."""
    vert, naming = count_bodies_from_sacrum(spine_target_array(lab), aff, lowest_vertebra=lowest_vertebra)
    return np.where((lab > 0) & (lab < 9), lab, vert).astype(np.uint8), naming


def _true_lowest(vertebrae: np.ndarray, cropped: np.ndarray) -> str | None:
    """The lowest lumbar body with at least half of its voxels in the cropped truth map: what a user would state."""
    for value in range(13, 8, -1):
        total = int((vertebrae == value).sum())
        if total and (cropped == value).sum() >= 0.5 * total:
            return f"L{value - 8}"
    return None


def evaluate_subject(
    cohort: Path, row: pd.Series, pred_dir: Path | None = None, from_image: bool = False
) -> tuple[list[dict], list[dict]]:
    """Naming/bound rows and FF/CSA error rows of one subject over every scenario (see the module docstring for
    ``pred_dir`` and ``from_image``)."""
    sid = str(row["participant_id"])
    data = _load(cohort, sid)
    vertebrae = data["vertebrae"] if pred_dir is None else _predicted_vertebrae(pred_dir, sid, data["label"].shape)
    lab = np.where(data["label"] > 0, data["label"], vertebrae).astype(np.uint8)
    ff = fat_fraction_from_water_fat(data["water"].astype(np.float32), data["fat"].astype(np.float32))
    planes = generator_bounds(int(row["seed"]), sid, str(row.get("texture", "smooth")))
    truth = true_levels(planes)
    names, errors = [], []
    for scenario, ends in SCENARIOS.items():
        stated = STATED.get(scenario)
        if from_image and stated is None:
            continue  # the FF map shows no sacrum: only a statement names its bodies
        arrays, aff = [lab, ff, data["ff_true"].astype(np.float32), data["vertebrae"]], data["affine"]
        if scenario.startswith("names one level high"):
            if pred_dir is not None:
                continue
            arrays[0] = names_one_level_high(arrays[0])
        if ends is not None:
            arrays, aff = crop_to_z(arrays, aff, planes[ends[0]], planes[ends[1]])
        true_lowest = _true_lowest(data["vertebrae"], arrays[3])
        # as the pipeline does (NameVertebraeFromSacrumd, or a spine network's count, before the levels)
        if from_image:
            vert, naming, _ = vertebrae_from_image(arrays[1] * 100.0, aff, stated)
            arrays[0] = np.where((arrays[0] > 0) & (arrays[0] < 9), arrays[0], vert).astype(np.uint8)
        elif pred_dir is None:
            arrays[0], naming = name_bodies_from_sacrum(arrays[0], aff, lowest_vertebra=stated)
        else:
            arrays[0], naming = _spine_named(arrays[0], aff, stated)
        assignment = assign_levels(arrays[0], aff, anchor=levels_anchor(naming.status, naming.anchor))
        if assignment is None:
            continue
        for r in _naming(assignment, truth):
            reasons = "; ".join(assignment.reasons)
            names.append(
                {
                    "subject": sid,
                    "scenario": scenario,
                    "naming": naming.status,
                    "stated": stated or "",
                    "statement_true": stated is None or stated == true_lowest,
                    "level_status": assignment.status,
                    "reasons": reasons,
                    **r,
                }
            )
        for r in _level_errors(arrays[0], aff, arrays[1], arrays[2], assignment, truth):
            errors.append({"subject": sid, "scenario": scenario, **r})
    return names, errors


def summarise(names: pd.DataFrame, errors: pd.DataFrame, tol_mm: float = 3.0) -> pd.DataFrame:
    """Per scenario: levels, ok, uncertain, misnamed, bounds within ``tol_mm`` (both ends; levels with a true
    counterpart), FF median |error| (median and max, pp) and |CSA error| (median and max, %)."""
    out = []
    for scenario, g in names.groupby("scenario", sort=False):
        e = errors[errors.scenario == scenario]
        named = g[g.level.isin(_NAMES)]
        within = (named.err_low_mm.abs() <= tol_mm) & (named.err_high_mm.abs() <= tol_mm)
        full = named[named.coverage >= 1.0]
        within_full = (full.err_low_mm.abs() <= tol_mm) & (full.err_high_mm.abs() <= tol_mm)
        out.append(
            {
                "scenario": scenario,
                "levels": len(g),
                "ok": int((g.status == "ok").sum()),
                "uncertain": int((g.status == "uncertain").sum()),
                "misnamed": int(g.misnamed.sum()),
                "misnamed_wrong_statement": int(g.misnamed[~g.statement_true].sum()) if "statement_true" in g else 0,
                "renamed_subjects": int(g[g.naming == "renamed"].subject.nunique()),
                "bounds_within_3mm_pct": 100.0 * float(within.mean()),
                "bounds_within_3mm_full_coverage_pct": 100.0 * float(within_full.mean()) if len(full) else math.nan,
                "max_bound_err_mm": float(np.nanmax(np.abs(named[["err_low_mm", "err_high_mm"]].to_numpy()))),
                "level_sides": len(e),
                "ff_level_abs_err_median_pp": float(e.ff_level_err_pp.abs().median()),
                "ff_level_abs_err_p95_pp": float(e.ff_level_err_pp.abs().quantile(0.95)),
                "ff_level_within_0.7pp_pct": 100.0 * float((e.ff_level_err_pp.abs() <= 0.7).mean()),
                "ff_abs_err_median_pp": float(e.ff_err_pp.abs().median()),
                "ff_abs_err_p95_pp": float(e.ff_err_pp.abs().quantile(0.95)),
                "csa_abs_err_median_pct": 100.0 * float(e.csa_err_rel.abs().median()),
                "csa_abs_err_p95_pct": 100.0 * float(e.csa_err_rel.abs().quantile(0.95)),
                "csa_within_5pct_pct": 100.0 * float((e.csa_err_rel.abs() <= 0.05).mean()),
            }
        )
    return pd.DataFrame(out)


def sagittal_levels_png(cohort: Path, sid: str, out_png: Path) -> Path:
    """A mid-sagittal view of a phantom subject's in-phase image with its vertebral labels outlined and the assigned
    level bounds drawn as lines (see :func:`sagittal_levels_figure`)."""
    return sagittal_levels_figure(
        cohort / sid / f"{sid}_inphase.nii.gz", cohort / sid / f"{sid}_vertebrae.nii.gz", out_png, sid
    )


def sagittal_levels_figure(image_path: Path, label_path: Path, out_png: Path, title: str) -> Path:
    """A mid-sagittal view of ``image_path`` with the vertebral labels (9-14) of ``label_path`` (a vertebral map or a
    whole label map on the same grid) outlined and the bounds of the levels :func:`assign_levels` gives drawn as
    lines: the report's picture (:mod:`scripts.reporting.level_sagittal`) of the label map alone, titled ``title``."""
    from scripts.reporting.level_sagittal import level_sagittal
    from scripts.reporting.montage_panels import montage_panels

    img_nii, lab_nii = nib.load(str(image_path)), nib.load(str(label_path))
    lab = np.asarray(lab_nii.dataobj)
    vert = np.where((lab >= 9) & (lab <= 14), lab, 0)
    if vert.shape != img_nii.shape or not vert.any():
        raise ValueError(f"{label_path}: no vertebral label (9-14) on the grid of {image_path}")
    assignment = assign_levels(vert, img_nii.affine)
    levels = pd.DataFrame(
        [
            {"level": lv.name, "level_z_low_mm": lv.z_low, "level_z_high_mm": lv.z_high, "level_status": lv.status}
            for lv in assignment.levels
        ],
        columns=["level", "level_z_low_mm", "level_z_high_mm", "level_status"],
    )
    panels = montage_panels(np.asarray(img_nii.dataobj, np.float32), img_nii.affine, vert, n_slices=1, title=title)
    return level_sagittal(panels, levels, out_png, {"anchor": "sacrum"}, title=f"{title}: levels {assignment.status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cohort", required=True, help="phantom cohort folder (participants.tsv, sub-*/)")
    parser.add_argument("--out", required=True, help="folder for levels_*.csv and the summary")
    parser.add_argument("--limit", type=int, default=None, help="first N subjects only")
    parser.add_argument("--figure", default=None, help="subject to draw (sagittal view with level lines)")
    parser.add_argument(
        "--pred_dir", default=None, help="inference run on the cohort: its vertebral maps, not the truth"
    )
    parser.add_argument(
        "--from_image",
        action="store_true",
        help="the bodies found in the FF map and named from the statement (stated scenarios only), not the truth",
    )
    args = parser.parse_args(argv)
    cohort, out = Path(args.cohort), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    participants = pd.read_csv(cohort / "participants.tsv", sep="\t")
    if args.limit:
        participants = participants.head(args.limit)
    names, errors = [], []
    for _, row in participants.iterrows():
        n, e = evaluate_subject(cohort, row, Path(args.pred_dir) if args.pred_dir else None, args.from_image)
        names += n
        errors += e
    names_df, errors_df = pd.DataFrame(names), pd.DataFrame(errors)
    summary = summarise(names_df, errors_df)
    names_df.to_csv(out / "levels_naming.csv", index=False)
    errors_df.to_csv(out / "levels_errors.csv", index=False)
    summary.to_csv(out / "levels_summary.csv", index=False)
    if args.figure:
        sagittal_levels_png(cohort, args.figure, out / f"levels_sagittal_{args.figure}.png")
    print(summary.to_string(index=False))
    print(json.dumps({"subjects": len(participants)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
