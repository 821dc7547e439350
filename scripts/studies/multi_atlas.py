"""Multi-atlas segmentation, the baseline of the paper's validation study (U-Net vs multi-atlas).

Pipeline for one target scan (in-phase image, or the network input of the datalist):

1. **Working copies.** Target and every atlas image are smoothed and resampled to an isotropic working grid
   (default 4 mm) that keeps each image's own origin, direction and field of view; registration runs there only,
   because a B-spline registration at the native 1.6 x 1.6 x 4 mm grid costs minutes per atlas on a CPU.
2. **Affine.** Centre of mass (image moments) initialisation, then a 12-parameter affine transform, Mattes mutual
   information on a random sample of the voxels, regular-step gradient descent with scales from a physical shift,
   multi-resolution (shrink factors and smoothing sigmas per level).
3. **Atlas selection.** Every affinely aligned atlas is scored by the normalised cross-correlation (NCC) with the
   target inside the target's body (intensity above 5 % of its 99th percentile); the ``k`` best are kept.
4. **B-spline.** A cubic B-spline transform whose control points lie ``bspline_mesh_mm`` apart over the target's
   field of view, on top of the affine (the affine is the moving initial transform), Mattes MI, L-BFGS-B,
   multi-resolution.
5. **Labels back to the target grid.** The composite transform (affine after B-spline, physical coordinates) maps
   the atlas's full-resolution label map onto the target's native grid by nearest neighbour, and its image by
   linear interpolation (the locally weighted vote needs it).
6. **Fusion.** ``"majority"``: per voxel the label with the most atlas votes; ``"weighted"``: locally weighted
   voting, each atlas's vote weighted per voxel by ``1 / (eps + G_sigma * (T - A_i)^2)^gamma``, the inverse of a
   Gaussian-weighted local mean squared intensity difference between target ``T`` and warped atlas ``A_i``, both
   scaled to [0, 1] by their own 1st/99th percentiles. Ties go to the lower label value (background first).
7. **Largest connected component** per muscle label (:func:`scripts.pipeline.postprocess.largest_component_per_label`).

Steps 1 to 4 (registration and atlas ranking) are in :mod:`scripts.studies.atlas_registration`.

Coordinates: SimpleITK works in LPS physical space; NIfTI files are read by SimpleITK and by nibabel alike, and
arrays returned here are in the NIfTI (nibabel) voxel order ``(i, j, k)`` of the target file with its nibabel
affine, so they can be saved or compared with the reference label directly.

Command line::

    python -m scripts.studies.multi_atlas segment --target T_inphase.nii.gz --atlas_datalist D/datalist.json \\
        --out T_seg.nii.gz [--atlas_key training] [--k 5] [--fusion weighted]
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk  # noqa: N813 (the library's own spelling)
from scripts.io.atomic import atomic_write, atomic_write_text
from scripts.labels import NUM_CLASSES
from scripts.pipeline.postprocess import largest_component_per_label
from scripts.studies.atlas_registration import (
    DEFAULT_PARAMS,
    MultiAtlasParams,
    rank_atlases,
    read_image,
    register_affine,
    register_bspline,
    working_copy,
)
from scripts.studies.label_fusion import local_weights, majority_vote, weighted_vote

__all__ = [
    "Atlas",
    "SegmentResult",
    "segment",
    "atlases_from_datalist",
    "segment_file",
]

logger = logging.getLogger(__name__)

FUSIONS = ("majority", "weighted")


@dataclass
class Atlas:
    """One atlas: an image and its label map (NIfTI paths); the working copy is made once and kept.

    Args:
        image: path of the atlas intensity image (in-phase, same contrast as the targets).
        label: path of its label map (values of :mod:`scripts.labels`), on the image's grid.
        name: identifier used in logs and results (default: the image file name).
    """

    image: str
    label: str
    name: str = ""
    _working: sitk.Image | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or Path(self.image).name

    def working(self, spacing_mm: float) -> sitk.Image:
        """The smoothed isotropic working copy of the image (cached; the first spacing asked for is kept)."""
        if self._working is None:
            self._working = working_copy(read_image(self.image), spacing_mm)
        return self._working


@dataclass(frozen=True)
class SegmentResult:
    """Result of :func:`segment` for one target.

    Attributes:
        label: uint8 label map on the target's native grid, nibabel voxel order ``(i, j, k)`` (the first fusion
            asked for).
        labels: fusion name -> its label map, for every fusion asked for (they share the registrations).
        affine: the target's 4x4 voxel-to-world (RAS, mm) affine from nibabel.
        selected: names of the atlases used, most similar first.
        similarity: NCC after the affine stage of every atlas, by name.
        seconds: wall time of the whole segmentation of this target (reading included), s.
        stage_seconds: wall time per stage (``"affine"``, ``"bspline"``, ``"fusion"``), s.
    """

    label: np.ndarray
    labels: dict[str, np.ndarray]
    affine: np.ndarray
    selected: list[str]
    similarity: dict[str, float]
    seconds: float
    stage_seconds: dict[str, float]


# ---------------------------------------------------------------------------------------------------------------------
# one target
# ---------------------------------------------------------------------------------------------------------------------


def _body_mask(arr: np.ndarray) -> np.ndarray:
    return arr > 0.05 * np.percentile(arr, 99.0)


def _warp(moving: sitk.Image, reference: sitk.Image, transform: sitk.Transform, label: bool = False) -> sitk.Image:
    if label:
        return sitk.Resample(moving, reference, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.Resample(moving, reference, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def _as_atlas(item: Atlas | Mapping[str, Any] | Sequence[str]) -> Atlas:
    if isinstance(item, Atlas):
        return item
    if isinstance(item, Mapping):
        if "image" not in item or "label" not in item:
            raise ValueError(f"an atlas entry needs 'image' and 'label', got keys {sorted(item)}")
        return Atlas(str(item["image"]), str(item["label"]), str(item.get("subject", "")))
    image, label = item
    return Atlas(str(image), str(label))


def _sitk_to_nib_order(img: sitk.Image) -> np.ndarray:
    # GetArrayFromImage is (k, j, i); NIfTI files keep the voxel order in SimpleITK, so a transpose gives nibabel's
    return sitk.GetArrayFromImage(img).transpose(2, 1, 0)


def _union_box(labels: Sequence[np.ndarray], margin: int) -> tuple[slice, ...]:
    union = np.zeros(labels[0].shape, bool)
    for lab in labels:
        union |= lab > 0
    if not union.any():
        return tuple(slice(0, 0) for _ in union.shape)
    idx = np.nonzero(union)
    return tuple(
        slice(max(int(i.min()) - margin, 0), min(int(i.max()) + margin + 1, n)) for i, n in zip(idx, union.shape)
    )


def _fused(
    name: str,
    labels: list[np.ndarray],
    images: list[np.ndarray],
    target_full: sitk.Image,
    spacing: tuple[float, ...],
    params: MultiAtlasParams,
) -> np.ndarray:
    """One fusion of the warped atlas labels on the target grid, largest component kept per label."""
    # fusion only where some atlas has a muscle (plus a margin): elsewhere every vote is background anyway
    box = _union_box(labels, margin=2)
    stack = np.stack([lab[box] for lab in labels])
    fused = np.zeros(labels[0].shape, np.uint8)
    if stack.size and name == "majority":
        fused[box] = majority_vote(stack)
    elif stack.size:
        target_arr = _sitk_to_nib_order(target_full)[box]
        weights = local_weights(
            target_arr,
            np.stack([img[box] for img in images]),
            spacing,
            params.lwv_sigma_mm,
            params.lwv_gamma,
            params.lwv_eps,
        )
        fused[box] = weighted_vote(stack, weights)
    return largest_component_per_label(fused, list(range(1, NUM_CLASSES)))


def segment(
    target_image_path: str | Path,
    atlases: Sequence[Atlas | Mapping[str, Any] | Sequence[str]],
    k: int = 5,
    fusion: str | Sequence[str] = "weighted",
    params: MultiAtlasParams = DEFAULT_PARAMS,
) -> SegmentResult:
    """Segment one target by multi-atlas registration and label fusion (steps in the module docstring).

    Args:
        target_image_path: target intensity image (NIfTI), the same contrast as the atlas images.
        atlases: :class:`Atlas` objects, or datalist entries with absolute ``image`` and ``label`` paths, or
            ``(image, label)`` pairs. The target itself must not be among them.
        k: number of atlases kept after ranking by NCC (all if ``k`` >= their number).
        fusion: ``"majority"`` or ``"weighted"`` (locally weighted voting), or a list of both: the registrations
            are shared, so a second fusion costs only its voting.
        params: registration and fusion settings.

    Returns:
        :class:`SegmentResult` with the label map on the target's native grid (nibabel voxel order) and timing.
    """
    fusions = [fusion] if isinstance(fusion, str) else list(fusion)
    if not fusions or any(f not in FUSIONS for f in fusions):
        raise ValueError(f"fusion must be one of {FUSIONS} or a list of them, got {fusion!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    library = [_as_atlas(a) for a in atlases]
    if not library:
        raise ValueError("no atlases given")
    target_path = Path(target_image_path).resolve()
    for atlas in library:
        if Path(atlas.image).resolve() == target_path:
            raise ValueError(f"the target {target_path} is also an atlas: leave it out of the library")
    start = time.perf_counter()
    stages: dict[str, float] = {}

    target_full = read_image(target_path)
    target_nib = nib.load(str(target_path))
    target_work = working_copy(target_full, params.working_spacing_mm)
    t_arr = sitk.GetArrayFromImage(target_work)
    body = _body_mask(t_arr)

    t0 = time.perf_counter()
    affines: dict[str, sitk.Transform] = {}
    warped_work: dict[str, np.ndarray] = {}
    for atlas in library:
        moving = atlas.working(params.working_spacing_mm)
        affines[atlas.name] = register_affine(target_work, moving, params)
        warped_work[atlas.name] = sitk.GetArrayFromImage(_warp(moving, target_work, affines[atlas.name]))
    ranking = rank_atlases(t_arr, warped_work, body)
    stages["affine"] = time.perf_counter() - t0
    chosen = [name for name, _ in ranking[: min(k, len(library))]]
    logger.info("%s: atlases by NCC after affine: %s", target_path.name, ", ".join(f"{n} {s:.3f}" for n, s in ranking))

    t0 = time.perf_counter()
    by_name = {a.name: a for a in library}
    labels, images = [], []
    for name in chosen:
        atlas = by_name[name]
        transform = register_bspline(target_work, atlas.working(params.working_spacing_mm), affines[name], params)
        labels.append(_sitk_to_nib_order(_warp(read_image(atlas.label, sitk.sitkUInt8), target_full, transform, True)))
        if "weighted" in fusions:
            images.append(_sitk_to_nib_order(_warp(read_image(atlas.image), target_full, transform)))
    stages["bspline"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    spacing = tuple(float(z) for z in target_nib.header.get_zooms()[:3])
    results = {name: _fused(name, labels, images, target_full, spacing, params) for name in fusions}
    stages["fusion"] = time.perf_counter() - t0
    return SegmentResult(
        label=results[fusions[0]],
        labels=results,
        affine=np.asarray(target_nib.affine, dtype=np.float64),
        selected=chosen,
        similarity={n: float(s) for n, s in ranking},
        seconds=time.perf_counter() - start,
        stage_seconds=stages,
    )


def atlases_from_datalist(
    datalist: str | Path, key: str = "training", base_dir: str | Path | None = None, exclude: Sequence[str] = ()
) -> list[Atlas]:
    """Atlases from a MONAI datalist: entries of ``key`` with ``image`` (or ``inphase``) and ``label``.

    Args:
        datalist: datalist JSON file.
        key: the list to read (``"training"`` by default).
        base_dir: folder that relative paths start from (default: the datalist's folder).
        exclude: subject identifiers to leave out (e.g. the target).
    """
    path = Path(datalist)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: datalist not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if key not in data or not isinstance(data[key], list):
        raise ValueError(f"{path}: no list {key!r} (keys: {sorted(data)})")
    base = Path(base_dir) if base_dir is not None else path.parent
    out = []
    for i, entry in enumerate(data[key]):
        image = entry.get("image") or entry.get("inphase")
        if not image or not entry.get("label"):
            raise ValueError(f"{path}: entry {i} of {key!r} lacks 'image' (or 'inphase') or 'label'")
        subject = str(entry.get("subject", Path(image).name))
        if subject in exclude:
            continue
        out.append(Atlas(str((base / image).resolve()), str((base / entry["label"]).resolve()), subject))
    if not out:
        raise ValueError(f"{path}: no atlas left in {key!r}")
    return out


def segment_file(
    target: str,
    atlas_datalist: str,
    out: str,
    atlas_key: str = "training",
    k: int = 5,
    fusion: str = "weighted",
    exclude: Sequence[str] | str = (),
    overwrite: bool = False,
    **param_overrides: Any,
) -> dict[str, Any]:
    """Segment ``target`` and write the label map (NIfTI, the target's grid) plus ``<out>.json`` (timing, atlases).

    Args:
        target: target image (NIfTI).
        atlas_datalist: datalist whose ``atlas_key`` entries are the atlases.
        out: output label file (``.nii.gz``); refused when it exists unless ``overwrite``.
        atlas_key: datalist key of the atlases.
        k: atlases kept after selection.
        fusion: ``"majority"`` or ``"weighted"``.
        exclude: subject identifiers left out of the library (comma-separated or a list).
        overwrite: replace an existing output.
        param_overrides: fields of :class:`MultiAtlasParams` (e.g. ``bspline_mesh_mm=80``).

    Returns:
        the run record written to the JSON file.
    """
    out_path = Path(out)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} exists; pass --overwrite to replace it")
    excl = [s for s in exclude.split(",") if s] if isinstance(exclude, str) else list(exclude)
    params = MultiAtlasParams(**{name: tuple(v) if isinstance(v, list) else v for name, v in param_overrides.items()})
    res = segment(
        target, atlases_from_datalist(atlas_datalist, atlas_key, exclude=excl), k=k, fusion=fusion, params=params
    )
    img = nib.Nifti1Image(res.label, res.affine)
    atomic_write(out_path, lambda tmp: nib.save(img, tmp), suffix=".nii.gz")
    record = {
        "target": str(target),
        "out": str(out_path),
        "fusion": fusion,
        "k": k,
        "selected": res.selected,
        "similarity_ncc": res.similarity,
        "seconds": round(res.seconds, 2),
        "stage_seconds": {s: round(v, 2) for s, v in res.stage_seconds.items()},
        "params": asdict(params),
    }
    json_path = out_path.with_name(out_path.name.replace(".nii.gz", "").replace(".nii", "") + ".json")
    atomic_write_text(json_path, json.dumps(record, indent=2) + "\n", overwrite=True)
    return record


if __name__ == "__main__":
    import fire

    logging.basicConfig(level=logging.INFO)
    from scripts.configuration.settings import typed_cli

    fire.Fire({"segment": typed_cli(segment_file)})
