"""MONAI Label's ``uncertainty_typical`` next-sample strategy: the doubt of the served network, discounted for scans
unlike the rest of the studies (information-density weighting).

``uncertainty`` (:mod:`scripts.integrations.uncertainty_strategy`) ranks outliers first: in a simulated annotation
loop (docs/studies/annotation_loop.md) the scan the network doubted most was a field of view cut to another part of
the anatomy, every chain annotated it first, and that round lowered the held-out Dice. This strategy ranks each
unlabelled study by ``doubt * density ** beta`` (:func:`scripts.integrations.scan_typicality.typical_score`), where
the density is the study's mean similarity to the other studies of the datastore, unlabelled and labelled, in cheap
acquisition and anatomy descriptors (field of view, spacing, body fraction, cranio-caudal body profile;
:mod:`scripts.integrations.scan_typicality`). A study as typical as the rest keeps nearly its doubt; an atypical
acquisition is asked for only when the network doubts it far more than the typical ones.

The name keeps it next to ``uncertainty`` in Slicer's list: the same doubt, for typical studies. The doubts share
``uncertainty``'s cache (``.uncertainty_scores.json``); the descriptors, which depend on the image only, are kept in
``.typicality_descriptors.json`` in the datastore folder, keyed by image id, the image file's modification time and
:data:`scripts.integrations.scan_typicality.TYPICALITY_VERSION`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from monailabel.interfaces.datastore import Datastore
from scripts.integrations.image_doubt import DoubtScorer
from scripts.integrations.scan_typicality import (
    TYPICALITY_VERSION,
    ScanDescriptor,
    describe_scan,
    pool_density,
    typical_score,
)
from scripts.integrations.uncertainty_strategy import Uncertainty, cached_figures

__all__ = ["DESCRIPTOR_CACHE_FILE", "TypicalUncertainty"]

logger = logging.getLogger(__name__)

#: the descriptor cache, in the datastore folder (not an image pattern, so the datastore's file watcher ignores it).
DESCRIPTOR_CACHE_FILE = ".typicality_descriptors.json"


class TypicalUncertainty(Uncertainty):
    """Pick the unlabelled image with the highest ``doubt * density ** beta`` (see the module docstring).

    Args:
        bundle_dir: the served bundle (``<app>/model/<name>``), whose inference config and weights score the images.
        beta: weight of the density, >= 0 (1, Settles & Craven's default; 0 gives ``uncertainty``'s ranking).
        doubts_from: the app's ``uncertainty`` strategy, whose scorer and lock are then shared: one copy of the
            network in memory, and one scoring (and writer of the doubt cache) at a time across both strategies.

    The chosen image is returned with ``score``, its ``doubt`` figures and its ``density``. Images that cannot be
    scored or described are logged and left out; the density is computed over the images that could be described.
    """

    def __init__(self, bundle_dir: str | Path, beta: float = 1.0, doubts_from: Uncertainty | None = None) -> None:
        super().__init__(
            bundle_dir,
            "Highest doubt of the served model (as 'uncertainty') times the study's typicality: its mean similarity "
            "to the other studies in field of view, spacing and body profile, so that atypical scans come later",
        )
        typical_score(0.0, 1.0, beta)  # refuses a negative or non-finite beta now, not at the first request
        self.beta = float(beta)
        self._doubts_from = doubts_from
        if doubts_from is not None:
            if doubts_from.bundle_dir != self.bundle_dir:
                raise ValueError(f"doubts_from serves {doubts_from.bundle_dir}, not {self.bundle_dir}")
            self._lock = doubts_from._lock

    def _get_scorer(self) -> DoubtScorer:
        return super()._get_scorer() if self._doubts_from is None else self._doubts_from._get_scorer()

    def _rank(self, images: list[str], request: dict[str, Any], datastore: Datastore) -> dict[str, dict[str, Any]]:
        doubts = self._doubts(images, datastore)
        labelled = datastore.get_labeled_images(request.get("label_tag"), request.get("labels"))
        pool = sorted(set(images) | set(labelled))
        described = cached_figures(
            pool,
            datastore,
            DESCRIPTOR_CACHE_FILE,
            "descriptor",
            {"version": TYPICALITY_VERSION},
            lambda path: describe_scan(path).as_dict(),
        )
        density = pool_density({image: ScanDescriptor.from_dict(d) for image, d in described.items()})
        ranked = {
            image: {
                "score": typical_score(doubt["score"], density[image], self.beta),
                "doubt": doubt,
                "density": density[image],
            }
            for image, doubt in doubts.items()
            if image in density
        }
        if not ranked:
            raise RuntimeError(f"none of the {len(doubts)} scored unlabelled image(s) could be described")
        logger.info("uncertainty_typical: density over %d studies: %s", len(density), density)
        return ranked
