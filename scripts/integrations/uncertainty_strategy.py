"""MONAI Label's ``uncertainty`` next-sample strategy: the unlabelled study the served network doubts most.

Each unlabelled image is scored with :class:`scripts.integrations.image_doubt.DoubtScorer` (the bundle's own
preprocessing and network, plain and mirrored; see that module for the figures and their cost) and the one with the
highest doubt is returned. Scores are kept in ``.uncertainty_scores.json`` in the datastore folder, keyed by image
id, the image file's modification time, the weights file's modification time and
:data:`scripts.integrations.image_doubt.DOUBT_VERSION`, so a request scores only new or changed images, and a
training round (which rewrites the weights) makes every image be scored again.

This is the one module of the bundle that imports ``monailabel``; it is loaded only by the MONAI Label app that
:mod:`scripts.integrations.monailabel_app` prepares, never by the bundle's runtime.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy
from scripts.integrations.image_doubt import DOUBT_VERSION, DoubtScorer
from scripts.io.atomic import atomic_write_text

__all__ = ["CACHE_FILE", "Uncertainty", "bundle_on_path"]

logger = logging.getLogger(__name__)

#: the score cache, in the datastore folder (not an image pattern, so the datastore's file watcher ignores it).
CACHE_FILE = ".uncertainty_scores.json"


@contextmanager
def bundle_on_path(bundle_dir: str | Path) -> Iterator[None]:
    """Put the bundle root first on ``sys.path`` for the block, as MONAI Label's bundle tasks do around each call.

    Why: the config's ``scripts.*`` targets import from the bundle copy; MONAI Label removes the root again after
    each of its own calls.
    """
    root = str(Path(bundle_dir).resolve())
    sys.path.insert(0, root)
    try:
        yield
    finally:
        sys.path.remove(root)


class Uncertainty(Strategy):
    """Pick the unlabelled image with the highest doubt of the bundle's network (see the module docstring).

    Args:
        bundle_dir: the served bundle (``<app>/model/<name>``), whose inference config and weights score the images.

    The chosen image is returned with its figures (``doubt``: entropy, flip disagreement, muscle voxels, score).
    Images that cannot be scored (e.g. refused by the bundle's input checks) are logged and left out; if none can
    be scored, the last error is raised.
    """

    def __init__(self, bundle_dir: str | Path) -> None:
        super().__init__(
            "Highest doubt of the served model: mean normalised entropy inside the predicted muscles and "
            "disagreement between the plain and the left-right mirrored pass"
        )
        self.bundle_dir = Path(bundle_dir).resolve()
        self._scorer: DoubtScorer | None = None
        # one scoring at a time: the network and its batch-norm buffers are shared, and so is the cache file
        self._lock = threading.Lock()

    def _get_scorer(self) -> DoubtScorer:
        if self._scorer is None:
            self._scorer = DoubtScorer(self.bundle_dir)
            logger.info("uncertainty strategy: bundle %s, %s", self.bundle_dir, self._scorer.describe())
        return self._scorer

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any] | None:
        images = datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels"))
        if not images:
            return None
        with self._lock, bundle_on_path(self.bundle_dir):
            doubts = self._doubts(sorted(images), datastore)
        # sorted ids and max's first-wins: equal scores pick the same image every time
        best = max(doubts, key=lambda image: doubts[image]["score"])
        logger.info("uncertainty: %s (doubt %.4f) of %d unlabelled", best, doubts[best]["score"], len(images))
        return {"id": best, "score": doubts[best]["score"], "doubt": doubts[best]}

    def _doubts(self, images: list[str], datastore: Datastore) -> dict[str, dict[str, Any]]:
        """image id -> its doubt figures, from the cache where still valid, else scored (and cached)."""
        scorer = self._get_scorer()
        cache_file = _cache_file(datastore)
        cache = _read_cache(cache_file)
        model_stamp = scorer.model_stamp()
        doubts, error = {}, None
        for image in images:
            path = datastore.get_image_uri(image)
            key = {
                "image_mtime_ns": Path(path).stat().st_mtime_ns,
                "model_mtime_ns": model_stamp,
                "version": DOUBT_VERSION,
            }
            entry = cache.get(image)
            if entry is not None and entry.get("key") == key:
                doubts[image] = entry["doubt"]
                continue
            try:
                doubts[image] = scorer(path).as_dict()
            except Exception as e:  # one unreadable study must not stop the ranking of the others
                logger.warning("uncertainty: %s not scored: %s", image, e)
                error = e
                continue
            cache[image] = {"key": key, "doubt": doubts[image]}
            _write_cache(cache_file, cache)  # after each image: a cancelled request keeps what it scored
            logger.info("uncertainty: %s doubt %s", image, doubts[image])
        if not doubts:
            raise RuntimeError(f"no unlabelled image could be scored ({len(images)} tried)") from error
        return doubts


def _cache_file(datastore: Datastore) -> Path | None:
    """The cache in the local datastore's folder; None (no cache) for a datastore without one (e.g. DICOMweb)."""
    folder = getattr(datastore, "_datastore_path", None)
    return Path(folder) / CACHE_FILE if folder else None


def _read_cache(cache_file: Path | None) -> dict[str, Any]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError) as e:  # a damaged cache only costs a recomputation
        logger.warning("uncertainty: cache %s unreadable (%s); scoring afresh", cache_file, e)
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(cache_file: Path | None, cache: dict[str, Any]) -> None:
    if cache_file is not None:
        atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True) + "\n", overwrite=True)
