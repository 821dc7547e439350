"""The common lumbar protocol on a phantom: an anatomy-complete subject cut to L2-L5, without the sacrum in view.

Shared by the end-to-end tests of ``lowest_vertebra`` (the bundle, MONAI Label, MONAI Deploy).
"""

from __future__ import annotations

import dataclasses

from scripts.phantom import Acquisition
from scripts.phantom.generate import PhantomSubject, generate_subject
from scripts.studies.level_validation import crop_to_z, generator_bounds, true_levels


def l2_l5_cut(seed: int = 11) -> tuple[PhantomSubject, dict[str, tuple[float, float]]]:
    """A low-geometry anatomy-complete phantom cut from the L5/S1 to the L1/L2 disc (27 slices of 5 mm at seed 11).

    Returns:
        The cut subject (every image cut alike, and the affine of the cut grid) and each level's true world z range
        (mm), ``{"L2": (z_low, z_high), ...}``.
    """
    subj = generate_subject(seed, Acquisition.preset("low"), anatomy="complete")
    planes = generator_bounds(seed, subj.subject_id)
    keys = list(subj.images)
    arrays, affine = crop_to_z([subj.images[k] for k in keys], subj.affine, planes["L5/S1"], planes["L1/L2"])
    cut = dataclasses.replace(subj, images=dict(zip(keys, arrays)), affine=affine)
    return cut, true_levels(planes)
