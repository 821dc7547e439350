"""Randomised image synthesis from a tissue-id map (domain randomisation in the spirit of SynthSeg).

Why: a network trained on Dixon-physics phantom images alone learns the phantom's one contrast and its shortcuts
(project issue #21: "psoas" drawn on the rectus abdominis, "QL" on the lateral abdominal wall of real scans). Drawing
training images from the anatomy-complete phantom's tissue-id map with a *random* intensity per structure, random
contrast direction, bias field, noise and resolution forces the network to use shape and context instead. Muscles
are tied into one group whose tissues draw their mean around one common value, so that the target muscles can never
be told from the abdominal wall, the gluteals or the diaphragm by intensity alone; fat tissues share one mean too.
The idea follows Billot et al., "SynthSeg" (Medical Image Analysis 2023); the code is this project's own.

- :class:`RandTissueSynthesis`: tissue-id map ``(1, X, Y, Z)`` -> random synthetic image ``(1, X, Y, Z)``;
- :class:`RandTissueSynthesisd`: the dictionary version, replacing the image key(s) with probability ``prob``.

Optionally (``fat_fraction`` given; the dictionary version's ``water_key`` and ``fat_key``) each voxel is a mix of
its lean tissue and fat in the proportion of the Dixon fat fraction, ``(1 - f) x mean[lean id] + f x mean[fat]``:
the random contrast then keeps the phantom's intramuscular fat and the partial volume of every muscle border with
the fat around it, which an id map (one id per voxel) cannot show. Why: trained on pure id-map images the network
widened psoas and iliacus on Dixon images (docs/studies/training_history.md, "What widens the psoas and iliacus").
Measured with two seeds, the mix widens them more, not less, so train.json leaves it off (``synthesis_fat_mix``).

Conventions as in :mod:`scripts.transforms`: channel-first ``(C, X, Y, Z)`` arrays, the MetaTensor ``affine`` maps
voxels to RAS world millimetres (LPS metadata is converted), spatial parameters are in mm and converted to voxels
with the image's spacing, all randomness is drawn from the transform's ``R`` (set by ``set_random_state``), so a
seed gives the same image on any machine. Intensities are on an arbitrary scale of about [0, 1] (tissue means);
normalise afterwards as the training pipeline does (``ScaleIntensityRangePercentilesd``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type
from scipy import ndimage
from scripts.phantom.tissue_ids import TISSUE_NAMES
from scripts.transforms.geometry import array_axis_of_world_axis, as_spatial_tensor, ras_affine, spacing_from_affine
from scripts.transforms.parameters import parse_probability, parse_range

__all__ = ["DEFAULT_TISSUE_GROUPS", "RandTissueSynthesis", "RandTissueSynthesisd", "gaussian_blur_mm"]

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _ids(*names: str) -> tuple[int, ...]:
    return tuple(TISSUE_NAMES[n] for n in names)


def _sided(*stems: str) -> tuple[str, ...]:
    return tuple(f"{s}_{side}" for s in stems for side in ("left", "right"))


#: group name -> tissue ids (of :mod:`scripts.phantom.tissue_ids`) whose means are drawn around one common value.
#: Ids in no group draw their own mean. Why these ties: in a real MRI all skeletal muscle has nearly one signal,
#: whatever the sequence, and so do all fat depots and all fatty marrow; tying them keeps that structure in every
#: random contrast, so that only shape and position separate a psoas from an oblique muscle.
DEFAULT_TISSUE_GROUPS: dict[str, tuple[int, ...]] = {
    "muscle": tuple(range(1, 9))
    + _ids(
        *_sided(
            "rectus_abdominis",
            "external_oblique",
            "internal_oblique",
            "transversus_abdominis",
            "latissimus_dorsi",
            "serratus_posterior_inferior",
            "diaphragm_crus",
            "gluteus_maximus",
            "gluteus_medius",
        ),
        "diaphragm",
    ),
    "fat": _ids(
        "subcutaneous_fat",
        "extraperitoneal_fat",
        "muscle_fascia",
        "perirenal_fat",
        "renal_sinus_fat",
        "epidural_fat",
        "mesenteric_fat",
        "bowel_fatty_content",
    ),
    "marrow": tuple(range(9, 15)) + _ids("vertebral_body_T12", "vertebral_body_T11", "iliac_bone", "femoral_head"),
    "cortical_bone": _ids("pedicle", "lamina", "spinous_process", "transverse_process", "articular_process", "rib"),
    "fluid": _ids("spinal_canal_csf", "bowel_fluid"),
    "vessel": _ids("aorta", "inferior_vena_cava", *_sided("common_iliac_artery", "common_iliac_vein")),
    "organ": _ids("kidney_left", "kidney_right", "liver", "spleen"),
}


def _parse_groups(groups: Mapping[str, Sequence[int]] | None, max_id: int) -> dict[str, tuple[int, ...]]:
    """Checked ``groups``: every id an integer in [1, max_id], none in two groups (0 is the background)."""
    if groups is None:  # the defaults name the phantom's ids; a smaller max_id simply drops the larger ones
        groups = {k: kept for k, v in DEFAULT_TISSUE_GROUPS.items() if (kept := tuple(i for i in v if i <= max_id))}
    if not isinstance(groups, Mapping):
        raise ValueError(f"groups must be a mapping group name -> tissue ids, not {type(groups).__name__}")
    owner: dict[int, str] = {}
    out: dict[str, tuple[int, ...]] = {}
    for name, ids in groups.items():
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence) or not ids:
            raise ValueError(f"groups[{name!r}] must be a non-empty sequence of tissue ids, not {ids!r}")
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 1 <= int(i) <= max_id:
                raise ValueError(
                    f"groups[{name!r}] holds {i!r}: tissue ids must be integers in [1, {max_id}] "
                    "(0 is the background, which always stays 0)"
                )
            if int(i) in owner:
                raise ValueError(f"tissue id {int(i)} is in two groups, {owner[int(i)]!r} and {name!r}")
            owner[int(i)] = str(name)
        out[str(name)] = tuple(int(i) for i in ids)
    return out


def _parse_nonnegative(value: Any, name: str, unit: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number >= 0{unit}, not {value!r}")
    if float(value) < 0:
        raise ValueError(f"{name} must be >= 0{unit}, not {value!r}")
    return float(value)


def _gaussian_kernel(sigma_vox: float) -> torch.Tensor:
    """1D Gaussian integrated over each voxel (exact for a box-sampled signal), truncated at 3.5 sigma, sum 1."""
    radius = max(1, int(math.ceil(3.5 * sigma_vox)))
    edges = (torch.arange(-radius, radius + 2, dtype=torch.float64) - 0.5) / (math.sqrt(2.0) * sigma_vox)
    cdf = 0.5 * (1.0 + torch.erf(edges))
    kernel = cdf[1:] - cdf[:-1]
    return (kernel / kernel.sum()).to(torch.float32)


def gaussian_blur_mm(img: torch.Tensor, fwhm_mm: Sequence[float], spacing_mm: Sequence[float]) -> torch.Tensor:
    """Separable Gaussian blur whose widths are given in mm, so the physical smoothing is the same on any grid.

    Args:
        img: ``(C, X, Y, Z)`` float tensor.
        fwhm_mm: full width at half maximum per array axis, mm (0: that axis is not blurred).
        spacing_mm: voxel size per array axis, mm.

    Returns:
        The blurred ``(C, X, Y, Z)`` tensor; borders are replicated (no dark rim at the field-of-view edge).
    """
    out = img.unsqueeze(0)
    for axis, (fwhm, spacing) in enumerate(zip(fwhm_mm, spacing_mm)):
        sigma_vox = float(fwhm) / _FWHM_PER_SIGMA / float(spacing)
        if sigma_vox < 0.05:  # narrower than a twentieth of a voxel: the kernel would be the identity
            continue
        kernel = _gaussian_kernel(sigma_vox).to(out.device)
        radius = kernel.numel() // 2
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = kernel.numel()
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius  # F.pad lists the last axis first
        channels = out.shape[1]
        weight = kernel.reshape(shape).expand(channels, 1, *shape[2:]).contiguous()
        out = F.conv3d(F.pad(out, pad, mode="replicate"), weight, groups=channels)
    return out[0]


class RandTissueSynthesis(RandomizableTransform):
    """A random MR-like image drawn from a tissue-id map: a Gaussian mixture with random per-tissue statistics.

    Per call (when the ``prob`` draw fires): every group of :data:`DEFAULT_TISSUE_GROUPS` (or ``groups``) draws a
    mean uniformly from ``mean_range``; each tissue id of the group draws its own mean around it (normal, standard
    deviation ``group_spread``), ids in no group draw their own mean from ``mean_range``, and each id draws a
    within-tissue standard deviation from ``std_range``. With probability ``invert_prob`` all means ``m`` become
    ``low + high - m`` (reversed contrast). The image is then built, in the order an acquisition imposes:

    1. every voxel ``mean[id] + std[id] * N(0, 1)``, clipped at 0; background (id 0) is exactly 0;
    2. gamma: ``(x / x_max) ** gamma * x_max`` with ``gamma`` log-uniform in ``gamma_range``;
    3. a smooth multiplicative bias field ``exp(b)``, ``b`` interpolated from random normal control values (standard
       deviation ``bias_std``) on a grid spaced ``bias_spacing_mm``;
    4. resolution: a Gaussian point-spread function of FWHM drawn from ``inplane_fwhm_mm`` on the two in-plane axes
       and from ``slice_thickness_mm`` along the slice axis (the array axis closest to world axis ``slice_axis``);
       widths are in mm and converted with the spacing of the input's affine;
    5. Rician noise of standard deviation drawn from ``noise_range`` (magnitude of the image plus complex Gaussian
       noise, as an MR magnitude image has).

    With a ``fat_fraction`` map (``__call__``), step 1's mean becomes ``(1 - f) x mean[lean id] + f x mean[fat]``:
    ``mean[fat]`` is the mean of the ``fat_group``'s tissue means, and a voxel whose own id is a fat tissue takes
    as its lean id that of the nearest voxel (in mm) of a tissue that is neither fat nor background, the tissue it
    shares the voxel with at a border.

    Args:
        prob: probability of synthesising, in [0, 1]; when a call does not synthesise it returns ``image`` (None
            when not given).
        groups: group name -> tissue ids sharing a mean (ids in [1, ``max_id``], each in one group at most);
            None: :data:`DEFAULT_TISSUE_GROUPS` (muscles, fat, marrow, cortical bone, fluid, vessels, organs).
        mean_range: (low, high) of the group and tissue means, >= 0.
        group_spread: standard deviation of a tissue's mean around its group's mean, >= 0 (0: tied exactly).
        std_range: (low, high) of the within-tissue standard deviation, >= 0, same units as the means.
        invert_prob: probability of reversing the contrast, in [0, 1].
        gamma_range: (low, high) of the gamma exponent, 0 < low <= high.
        bias_std: standard deviation of the log bias field's control values, >= 0 (0.3: about +-35 %).
        bias_spacing_mm: distance between the bias field's control points, mm, > 0.
        noise_range: (low, high) of the Rician noise standard deviation, >= 0, same units as the means.
        inplane_fwhm_mm: (low, high) of the in-plane point-spread FWHM, mm, >= 0.
        slice_thickness_mm: (low, high) of the through-plane slice-profile FWHM, mm, >= 0.
        slice_axis: world axis of the slice direction: 0 = x (sagittal slices), 1 = y (coronal), 2 = z (axial).
        max_id: largest tissue id accepted, 1-65535; larger or negative ids in a map raise ValueError.
        fat_group: the group of ``groups`` that is fat, used only with a ``fat_fraction`` map.
    """

    def __init__(
        self,
        prob: float = 0.5,
        groups: Mapping[str, Sequence[int]] | None = None,
        mean_range: Sequence[float] = (0.0, 1.0),
        group_spread: float = 0.03,
        std_range: Sequence[float] = (0.0, 0.05),
        invert_prob: float = 0.2,
        gamma_range: Sequence[float] = (0.7, 1.5),
        bias_std: float = 0.3,
        bias_spacing_mm: float = 120.0,
        noise_range: Sequence[float] = (0.0, 0.05),
        inplane_fwhm_mm: Sequence[float] = (0.0, 3.0),
        slice_thickness_mm: Sequence[float] = (0.0, 8.0),
        slice_axis: int = 2,
        max_id: int = 255,
        fat_group: str = "fat",
    ) -> None:
        RandomizableTransform.__init__(self, parse_probability(prob))
        if isinstance(max_id, bool) or not isinstance(max_id, (int, np.integer)) or not 1 <= int(max_id) <= 65535:
            raise ValueError(f"max_id must be an integer in [1, 65535], not {max_id!r}")
        self.max_id = int(max_id)
        self.groups = _parse_groups(groups, self.max_id)
        if not isinstance(fat_group, str):
            raise ValueError(f"fat_group must be the name of a group, not {fat_group!r}")
        self.fat_group = fat_group
        self.mean_range = parse_range(mean_range, "mean_range", minimum=0.0)
        self.group_spread = _parse_nonnegative(group_spread, "group_spread")
        self.std_range = parse_range(std_range, "std_range", minimum=0.0)
        self.invert_prob = parse_probability(invert_prob, "invert_prob")
        self.gamma_range = parse_range(gamma_range, "gamma_range", minimum=0.0)
        if self.gamma_range[0] <= 0:
            raise ValueError(f"gamma_range must satisfy 0 < low <= high, not {gamma_range!r}")
        self.bias_std = _parse_nonnegative(bias_std, "bias_std")
        self.bias_spacing_mm = _parse_nonnegative(bias_spacing_mm, "bias_spacing_mm", " mm")
        if self.bias_spacing_mm == 0:
            raise ValueError(f"bias_spacing_mm must be > 0 mm, not {bias_spacing_mm!r}")
        self.noise_range = parse_range(noise_range, "noise_range", minimum=0.0)
        self.inplane_fwhm_mm = parse_range(inplane_fwhm_mm, "inplane_fwhm_mm (mm)", minimum=0.0)
        self.slice_thickness_mm = parse_range(slice_thickness_mm, "slice_thickness_mm (mm)", minimum=0.0)
        if slice_axis not in (0, 1, 2) or isinstance(slice_axis, bool):
            raise ValueError(f"slice_axis must be a world axis 0 (x), 1 (y) or 2 (z), not {slice_axis!r}")
        self.slice_axis = int(slice_axis)
        self.means = np.zeros(self.max_id + 1)
        self.stds = np.zeros(self.max_id + 1)
        self.inverted, self.gamma, self.noise_std = False, 1.0, 0.0
        self.inplane_fwhm, self.slice_fwhm, self.field_seed = 0.0, 0.0, 0

    def randomize(self, data: Any = None) -> None:
        """Draw every statistic of one synthetic image; the number of draws never depends on the data."""
        super().randomize(None)
        if not self._do_transform:
            return
        low, high = self.mean_range
        means = self.R.uniform(low, high, self.max_id + 1)  # ungrouped ids keep their own draw
        for ids in self.groups.values():
            centre = self.R.uniform(low, high)
            spread = self.R.normal(0.0, 1.0, len(ids)) * self.group_spread
            means[list(ids)] = np.clip(centre + spread, low, high)
        self.inverted = bool(self.R.uniform() < self.invert_prob)
        if self.inverted:
            means = low + high - means
        means[0] = 0.0
        stds = self.R.uniform(*self.std_range, self.max_id + 1)
        stds[0] = 0.0
        self.means, self.stds = means, stds
        self.gamma = float(np.exp(self.R.uniform(np.log(self.gamma_range[0]), np.log(self.gamma_range[1]))))
        self.noise_std = float(self.R.uniform(*self.noise_range))
        self.inplane_fwhm = float(self.R.uniform(*self.inplane_fwhm_mm))
        self.slice_fwhm = float(self.R.uniform(*self.slice_thickness_mm))
        # voxel-wise fields (texture, bias control values, noise) come from one torch generator seeded here, so
        # their number of draws may follow the image size without shifting this transform's other draws
        self.field_seed = int(self.R.randint(0, 2**31 - 1))

    def _tissue_ids(self, tissue: torch.Tensor) -> torch.Tensor:
        # on the CPU: the seeded torch generator is a CPU one (same draws on any machine); the result is moved
        # back to the input's device by ``convert_to_dst_type``
        t = (tissue.as_tensor() if isinstance(tissue, MetaTensor) else tissue).cpu()
        if t.is_floating_point():
            rounded = torch.round(t)
            if not torch.equal(rounded, t):
                raise ValueError(
                    "RandTissueSynthesis: the tissue map must hold integer ids; it has fractional "
                    "values (was it resampled with a mode other than 'nearest'?)"
                )
            t = rounded
        t = t.to(torch.int64)
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi > self.max_id:
            raise ValueError(
                f"RandTissueSynthesis: tissue ids must lie in [0, max_id={self.max_id}], found [{lo}, {hi}]"
            )
        return t

    def _bias_field(self, shape: Sequence[int], spacing: np.ndarray, gen: torch.Generator) -> torch.Tensor:
        """``exp`` of a smooth field: random control values every ``bias_spacing_mm``, trilinearly interpolated."""
        extent = np.asarray(shape) * spacing
        ctrl = [max(2, int(math.ceil(e / self.bias_spacing_mm)) + 1) for e in extent]
        values = torch.randn(ctrl, generator=gen) * self.bias_std
        field = F.interpolate(
            values[None, None], size=tuple(int(s) for s in shape), mode="trilinear", align_corners=True
        )
        return torch.exp(field[0])

    def _fat_mixed_means(self, ids: torch.Tensor, fat_fraction: Any, spacing: np.ndarray) -> torch.Tensor:
        """``(1 - f) x mean[lean id] + f x mean[fat]`` per voxel; background stays 0 (see the class docstring)."""
        f = fat_fraction.as_tensor() if isinstance(fat_fraction, MetaTensor) else torch.as_tensor(fat_fraction)
        f = f.detach().cpu().to(torch.float32)
        if tuple(f.shape) != tuple(ids.shape):
            raise ValueError(
                f"RandTissueSynthesis: fat_fraction {tuple(f.shape)} and tissue map {tuple(ids.shape)} must have "
                "the same shape (C, X, Y, Z)"
            )
        if self.fat_group not in self.groups:
            raise ValueError(
                f"RandTissueSynthesis: fat_group {self.fat_group!r} is not one of the groups {sorted(self.groups)}; "
                "the fat-fraction mix needs the fat tissues' group"
            )
        f = torch.nan_to_num(f, nan=0.0).clamp(0.0, 1.0)
        fat_ids = list(self.groups[self.fat_group])
        means = torch.as_tensor(self.means, dtype=torch.float32)
        is_fat = torch.isin(ids, torch.as_tensor(fat_ids))
        lean = ids.clone()
        lean_source = (~is_fat & (ids != 0)).numpy()
        if is_fat.any() and lean_source.any():
            nearest = ndimage.distance_transform_edt(
                ~lean_source[0], sampling=spacing, return_distances=False, return_indices=True
            )
            # the nearest lean voxel of a lean voxel is itself, so only fat (and background, zeroed below) change
            lean[0] = torch.as_tensor(ids[0].numpy()[tuple(nearest)])
        mixed = (1.0 - f) * means[lean] + f * float(means[fat_ids].mean())
        return torch.where(ids == 0, torch.zeros_like(mixed), mixed)

    def synthesise(self, tissue: torch.Tensor, fat_fraction: Any = None) -> torch.Tensor:
        """The image of the current draw for ``tissue`` ``(C, X, Y, Z)``: float32 tensor, same shape, no metadata.

        ``fat_fraction``: None, or the voxel fat fraction (0-1, same shape; NaN counts as 0) mixed in as the class
        docstring says.
        """
        ids = self._tissue_ids(tissue)
        spacing = spacing_from_affine(ras_affine(tissue))
        gen = torch.Generator().manual_seed(self.field_seed)
        if fat_fraction is None:
            means = torch.as_tensor(self.means, dtype=torch.float32)[ids]
        else:
            means = self._fat_mixed_means(ids, fat_fraction, spacing)
        stds = torch.as_tensor(self.stds, dtype=torch.float32)[ids]
        img = (means + stds * torch.randn(ids.shape, generator=gen)).clamp_min(0.0)
        peak = float(img.max())
        if peak > 0 and self.gamma != 1.0:
            img = (img / peak) ** self.gamma * peak
        if self.bias_std > 0:
            img = img * self._bias_field(ids.shape[1:], spacing, gen)
        fwhm = [self.inplane_fwhm] * 3
        fwhm[array_axis_of_world_axis(ras_affine(tissue), self.slice_axis)] = self.slice_fwhm
        img = gaussian_blur_mm(img, fwhm, spacing)
        if self.noise_std > 0:
            real = img + self.noise_std * torch.randn(img.shape, generator=gen)
            imag = self.noise_std * torch.randn(img.shape, generator=gen)
            img = torch.sqrt(real * real + imag * imag)
        return img.to(torch.float32)

    def __call__(self, tissue: Any, image: Any = None, randomize: bool = True, fat_fraction: Any = None) -> Any:
        """Synthesise from ``tissue`` ``(1, X, Y, Z)``, integer ids; returns ``image`` when this call does not.

        Args:
            tissue: tissue-id map, channel-first; a MetaTensor's affine gives the spacing (mm) and slice axis.
            image: the image the synthesis replaces (same spatial shape); the output carries its metadata
                (affine, filename), or the tissue map's when None.
            randomize: draw new statistics (False: reuse the last draw, e.g. for a dictionary with several keys).
            fat_fraction: optional voxel fat fraction ``(1, X, Y, Z)``, 0-1, mixed in (class docstring).

        Returns:
            float32 ``(1, X, Y, Z)`` tensor of the type of ``image`` (or of ``tissue``), or ``image`` unchanged.
        """
        t = as_spatial_tensor(tissue, type(self).__name__)
        if image is not None:
            img_shape = tuple(np.shape(image))
            if len(img_shape) != 4 or img_shape[1:] != tuple(t.shape[1:]):
                raise ValueError(
                    f"RandTissueSynthesis: image {img_shape} and tissue map {tuple(t.shape)} must "
                    "share the spatial shape (C, X, Y, Z)"
                )
        if randomize:
            self.randomize(None)
        if not self._do_transform:
            return image
        out = self.synthesise(t, fat_fraction)
        # the image's metadata (affine, file name, applied operations) but float32 and one channel
        return convert_to_dst_type(out, image if image is not None else t, dtype=torch.float32)[0]


class RandTissueSynthesisd(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandTissueSynthesis`: the image key(s) replaced by a synthesis from the tissue map.

    With probability ``prob`` every key of ``keys`` receives the same synthetic image (float32, ``(1, X, Y, Z)``,
    the key's own metadata); otherwise the dictionary is returned as it is, byte for byte. The tissue map is left in
    the dictionary (delete it afterwards, e.g. with ``DeleteItemsd``, before cropping and collation).

    Args:
        keys: the image key(s) to replace (normally one, e.g. ``"image"``).
        tissue_key: key of the tissue-id map, on the image's grid (resampled with ``mode="nearest"``).
        prob: probability of replacing, in [0, 1].
        allow_missing_keys: a missing tissue key (a datalist without tissue maps) or image key leaves the
            dictionary unchanged; False: a missing key raises KeyError.
        water_key, fat_key: both None (an id-map image), or the keys of the water and fat images on the tissue
            map's grid: their fat fraction ``fat / (water + fat)`` is mixed in (see :class:`RandTissueSynthesis`).
        kwargs: the other arguments of :class:`RandTissueSynthesis` (``groups``, ``mean_range``, ...).
    """

    def __init__(
        self,
        keys: KeysCollection,
        tissue_key: str = "tissue",
        prob: float = 0.5,
        allow_missing_keys: bool = False,
        water_key: str | None = None,
        fat_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, parse_probability(prob))
        if not isinstance(tissue_key, str) or not tissue_key:
            raise ValueError(f"tissue_key must be a non-empty string, not {tissue_key!r}")
        self.tissue_key = tissue_key
        if (water_key is None) != (fat_key is None):
            raise ValueError(
                f"water_key and fat_key go together (both keys, or both None), not {water_key!r} and {fat_key!r}"
            )
        for name, key in (("water_key", water_key), ("fat_key", fat_key)):
            if key is not None and (not isinstance(key, str) or not key):
                raise ValueError(f"{name} must be a non-empty string or None, not {key!r}")
        self.water_key, self.fat_key = water_key, fat_key
        self.synthesis = RandTissueSynthesis(prob=1.0, **kwargs)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandTissueSynthesisd:
        super().set_random_state(seed, state)
        self.synthesis.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if self._do_transform:
            self.synthesis.randomize(None)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        if self.tissue_key not in d or d[self.tissue_key] is None:
            if self.allow_missing_keys:
                return d
            raise KeyError(
                f"RandTissueSynthesisd: no {self.tissue_key!r} in the data (keys: {sorted(map(str, d))});"
                " give the datalist a tissue map or set allow_missing_keys=True"
            )
        if not self._do_transform:
            return d
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        out = self.synthesis.synthesise(
            as_spatial_tensor(d[self.tissue_key], type(self).__name__), self._fat_fraction(d)
        )
        for key in keys:
            img = d[key]
            if tuple(np.shape(img))[1:] != tuple(out.shape[1:]):
                raise ValueError(
                    f"RandTissueSynthesisd: {key!r} {tuple(np.shape(img))} and {self.tissue_key!r} "
                    f"{tuple(out.shape)} must share the spatial shape (C, X, Y, Z)"
                )
            d[key] = convert_to_dst_type(out.clone(), img, dtype=torch.float32)[0]
        return d

    def _fat_fraction(self, d: Mapping[Hashable, Any]) -> torch.Tensor | None:
        """``fat / (water + fat)`` of the water and fat keys, 0 where their sum is not positive; None without keys."""
        if self.water_key is None or self.fat_key is None:
            return None
        missing = [k for k in (self.water_key, self.fat_key) if k not in d or d[k] is None]
        if missing:
            raise KeyError(
                f"RandTissueSynthesisd: no {missing} in the data (keys: {sorted(map(str, d))}); the fat-fraction "
                "mix needs the water and fat images (or set water_key and fat_key to None)"
            )
        water, fat = (
            as_spatial_tensor(d[k], type(self).__name__).float().cpu() for k in (self.water_key, self.fat_key)
        )
        total = water + fat
        return torch.where(total > 0, fat / total.clamp_min(1e-12), torch.zeros_like(total))
