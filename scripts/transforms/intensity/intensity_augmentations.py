"""The configured intensity/contrast randomisation for other scanners, in acquisition order.

docs/design.md asks for transfer to unseen scanners: random contrast, bias field, thick slices, blur and
magnitude noise; this list is what ``configs/train.json`` appends to its random transforms.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.config import KeysCollection
from monai.transforms import (
    MapTransform,
    RandAdjustContrastd,
    RandBiasFieldd,
    RandGaussianSmoothd,
    RandRicianNoised,
)
from scripts.transforms.intensity.intensity_remap import RandIntensityRemapd
from scripts.transforms.intensity.low_resolution import RandLowResolutionAxisd
from scripts.transforms.parameters import is_number, parse_probability, parse_range

__all__ = ["intensity_augmentations"]


def intensity_augmentations(
    keys: KeysCollection = "image",
    prob: float = 0.15,
    *,
    remap_prob: float = 0.1,
    invert_prob: float = 0.2,
    gamma_range: tuple[float, float] = (0.7, 1.5),
    bias_coeff_range: tuple[float, float] = (-0.1, 0.1),
    low_resolution_factor_range: tuple[float, float] = (1.0, 2.5),
    low_resolution_world_axes: Sequence[int] = (0, 1, 2),
    blur_sigma_vox: tuple[float, float] = (0.25, 1.0),
    noise_std_relative: float = 0.05,
) -> list[MapTransform]:
    """The configured intensity/contrast randomisation for other scanners, in acquisition order.

    1. :class:`RandIntensityRemapd`: random histogram remap, sometimes inverted or non-monotonic (contrast);
    2. ``RandAdjustContrastd``: gamma in ``gamma_range`` on the min-max normalised image (range kept);
    3. ``RandBiasFieldd``: smooth multiplicative field ``exp(sum of Legendre terms, degree 3)``, coefficients
       uniform in ``bias_coeff_range`` (Van Leemput et al. 1999; Sudre et al. 2017);
    4. :class:`RandLowResolutionAxisd`: thick-slice simulation along one patient axis;
    5. ``RandGaussianSmoothd``: blur, sigma uniform in ``blur_sigma_vox`` voxels of the working grid;
    6. ``RandRicianNoised``: magnitude (Rician) noise, std uniform in [0, ``noise_std_relative`` x image std].

    Apply it to images only, after the spatial transforms, on non-negative magnitude images scaled to about
    [0, 1] (e.g. ``ScaleIntensityRangePercentilesd`` in the deterministic transforms): the bias field is
    multiplicative and Rician noise assumes magnitude data.

    Args:
        keys: image key(s); never the label.
        prob: probability of each MONAI piece and of the low-resolution step, in [0, 1].
        remap_prob: probability of the histogram remap, in [0, 1].
        invert_prob: probability that a remap is an inversion, in [0, 1].
        gamma_range: (low, high) gamma exponent.
        bias_coeff_range: (low, high) range of the bias-field polynomial coefficients.
        low_resolution_factor_range: (low >= 1, high) slice-thickening factor.
        low_resolution_world_axes: patient axes that may be degraded (0 = x, 1 = y, 2 = z).
        blur_sigma_vox: (low, high) Gaussian sigma in voxels, per axis.
        noise_std_relative: maximum noise std relative to the image std (>= 0).

    Returns:
        list of MONAI dictionary transforms, to append to ``train#random_transforms``.
    """
    prob = parse_probability(prob)
    remap_prob = parse_probability(remap_prob, "remap_prob")
    gamma = parse_range(gamma_range, "gamma_range")
    if gamma[0] <= 0:
        raise ValueError(f"gamma_range must be > 0, not {gamma_range!r}")
    bias = parse_range(bias_coeff_range, "bias_coeff_range")
    blur = parse_range(blur_sigma_vox, "blur_sigma_vox", minimum=0.0)
    if not is_number(noise_std_relative) or noise_std_relative < 0:
        raise ValueError(f"noise_std_relative must be a number >= 0, not {noise_std_relative!r}")
    return [
        RandIntensityRemapd(keys, prob=remap_prob, invert_prob=invert_prob, non_monotonic_prob=0.1),
        RandAdjustContrastd(keys, prob=prob, gamma=gamma),
        RandBiasFieldd(keys, prob=prob, degree=3, coeff_range=bias),
        RandLowResolutionAxisd(
            keys, prob=prob, factor_range=low_resolution_factor_range, world_axes=low_resolution_world_axes
        ),
        RandGaussianSmoothd(keys, prob=prob, sigma_x=blur, sigma_y=blur, sigma_z=blur),
        RandRicianNoised(
            keys, prob=prob, std=float(noise_std_relative), relative=True, channel_wise=True, sample_std=True
        ),
    ]
