"""Command line of the phantom (fire).

Examples::

    python -m scripts.phantom cohort --out_dir sample_data --n 3 --seed 0
    python -m scripts.phantom cohort --out_dir phantom_septa --n 32 --seed 1 --texture septa
    python -m scripts.phantom cohort --out_dir phantom_complete --n 32 --seed 1 --anatomy complete
    python -m scripts.phantom cohort --out_dir phantom_crest --n 32 --seed 1 --crest_height varied
    python -m scripts.phantom subject --out_dir /tmp/ph --seed 7 --geometry low --orientation LPS --swap regional
    python -m scripts.phantom dicom --out_dir /tmp/ph_dcm --seed 7 --vendor ge --geometry low
"""

from __future__ import annotations

import logging

import fire
from scripts.phantom.acquisition import Acquisition
from scripts.phantom.cohort import generate_cohort
from scripts.phantom.generate import generate_subject, write_subject


def subject(
    out_dir: str,
    seed: int = 0,
    geometry: str = "reference",
    spacing: tuple | None = None,
    orientation: str = "RAS",
    coverage: str = "full",
    swap: str = "none",
    ff_scale: str = "fraction",
    snr: float = 30.0,
    bias: float = 1.0,
    overwrite: bool = False,
    texture: str = "smooth",
    anatomy: str = "default",
    crest_height: str = "fixed",
) -> dict:
    """Generate one subject and write its NIfTI files under ``out_dir/sub-<seed>/``; prints its ground truth.
    ``anatomy="complete"`` also writes the tissue-id and vertebral label maps (see docs/guides/phantom.md);
    ``crest_height="varied"`` moves the iliac crest (see ``generate.generate_subject``)."""
    kw = dict(orientation=orientation, coverage=coverage, swap=swap, ff_scale=ff_scale, snr=snr, bias=bias)
    acq = Acquisition.from_spacing(tuple(spacing), **kw) if spacing else Acquisition.preset(geometry, **kw)
    subj = generate_subject(seed, acq, texture=texture, anatomy=anatomy, crest_height=crest_height)
    paths = write_subject(subj, out_dir, overwrite=overwrite)
    subj.truth.to_csv(f"{out_dir}/{subj.subject_id}/{subj.subject_id}_ground_truth.csv", index=False)
    return paths


def dicom(
    out_dir: str,
    seed: int = 0,
    vendor: str = "siemens",
    geometry: str = "low",
    orientation: str = "RAS",
    nifti: bool = False,
    overwrite: bool = False,
) -> dict:
    """Generate one subject and write it as a DICOM Dixon study (``out_dir/dicom``) in a vendor's style, with its
    truth labels as NIfTI (``out_dir/truth``); ``nifti`` also writes the subject's NIfTI files (``out_dir/nifti``)
    for comparing the two inputs."""
    from scripts.phantom.dicom_export import write_dicom_study

    subj = generate_subject(seed, Acquisition.preset(geometry, orientation=orientation))
    paths = write_dicom_study(subj, out_dir, vendor=vendor, overwrite=overwrite)
    if nifti:
        paths["nifti"] = f"{out_dir}/nifti"
        write_subject(subj, paths["nifti"], write_ff_true=False, overwrite=overwrite)
    return paths


def sample(out_dir: str = "sample_data", n: int = 3, seed: int = 0, anatomy: str = "default") -> dict:
    """The embedded default data: ``n`` subjects at the reference geometry, made once and reused.

    Deterministic for ``seed``; when ``out_dir`` already holds the sample it is left untouched. ``anatomy`` as in
    ``generate_subject`` ("complete" adds tissue and vertebral maps).
    """
    from pathlib import Path

    dl = Path(out_dir) / "datalist.json"
    if dl.exists():
        logging.getLogger(__name__).info("sample already present: %s", dl)
        return {"datalist": str(dl)}
    return generate_cohort(
        out_dir, n=n, seed=seed, geometry="reference", variety=False, n_validation=0, n_testing=n, anatomy=anatomy
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fire.Fire({"subject": subject, "dicom": dicom, "cohort": generate_cohort, "sample": sample})


if __name__ == "__main__":
    main()
