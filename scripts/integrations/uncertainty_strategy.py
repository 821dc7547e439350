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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy
from scripts.integrations.image_doubt import DOUBT_VERSION, DoubtScorer
from scripts.io.atomic import atomic_write_text

__all__ = ["CACHE_FILE", "Uncertainty", "bundle_on_path", "cached_figures"]

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
        description: what MONAI Label shows for the strategy (``/info``); default: the doubt's.

    The chosen image is returned with its figures (``doubt``: entropy, flip disagreement, muscle voxels, score).
    Images that cannot be scored (e.g. refused by the bundle's input checks) are logged and left out; if none can
    be scored, the last error is raised.
    """

    def __init__(self, bundle_dir: str | Path, description: str | None = None) -> None:
        super().__init__(
            description
            or "Highest doubt of the served model: mean normalised entropy inside the predicted muscles and "
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
            ranked = self._rank(sorted(images), request, datastore)
        # sorted ids and max's first-wins: equal scores pick the same image every time
        best = max(ranked, key=lambda image: ranked[image]["score"])
        logger.info(
            "%s: %s (score %.4f) of %d unlabelled", type(self).__name__, best, ranked[best]["score"], len(images)
        )
        return {"id": best, **ranked[best]}

    def _rank(self, images: list[str], request: dict[str, Any], datastore: Datastore) -> dict[str, dict[str, Any]]:
        """image id -> ``{"score": the ranking figure, ...}`` (the rest is returned with the chosen image), for the
        unlabelled ``images`` (sorted); here the doubt's score and its figures (``doubt``)."""
        doubts = self._doubts(images, datastore)
        return {image: {"score": doubt["score"], "doubt": doubt} for image, doubt in doubts.items()}

    def _doubts(self, images: list[str], datastore: Datastore) -> dict[str, dict[str, Any]]:
        """image id -> its doubt figures, from the cache where still valid, else scored (and cached)."""
        scorer = self._get_scorer()
        stamp = {"model_mtime_ns": scorer.model_stamp(), "version": DOUBT_VERSION}
        return cached_figures(images, datastore, CACHE_FILE, "doubt", stamp, lambda path: scorer(path).as_dict())


def cached_figures(
    images: list[str],
    datastore: Datastore,
    cache_name: str,
    field: str,
    stamp: dict[str, Any],
    compute: Callable[[str], Any],
) -> dict[str, Any]:
    """image id -> its figures, from the cache file ``cache_name`` in the datastore folder where still valid, else
    computed by ``compute(image path)`` (JSON-ready) and cached.

    An entry is valid while its key (the image file's modification time and ``stamp``, e.g. the weights' time and the
    figures' version) is unchanged. The cache is written after each image, so a cancelled request keeps what it
    computed. Images whose figures cannot be computed are logged and left out.

    Raises:
        RuntimeError: no image's figures could be obtained (the last error is chained).
    """
    cache_file = _cache_file(datastore, cache_name)
    cache = _read_cache(cache_file)
    figures, error = {}, None
    for image in images:
        path = datastore.get_image_uri(image)
        key = {"image_mtime_ns": Path(path).stat().st_mtime_ns, **stamp}
        entry = cache.get(image)
        if entry is not None and entry.get("key") == key:
            figures[image] = entry[field]
            continue
        try:
            figures[image] = compute(path)
        except Exception as e:  # one unreadable study must not stop the ranking of the others
            logger.warning("%s: %s not computed for %s: %s", cache_name, field, image, e)
            error = e
            continue
        cache[image] = {"key": key, field: figures[image]}
        _write_cache(cache_file, cache)
        logger.info("%s: %s %s", image, field, figures[image])
    if not figures:
        raise RuntimeError(f"no {field} could be computed for any of {len(images)} image(s)") from error
    return figures


def _cache_file(datastore: Datastore, name: str) -> Path | None:
    """The cache in the local datastore's folder; None (no cache) for a datastore without one (e.g. DICOMweb)."""
    folder = getattr(datastore, "_datastore_path", None)
    return Path(folder) / name if folder else None


def _read_cache(cache_file: Path | None) -> dict[str, Any]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError) as e:  # a damaged cache only costs a recomputation
        logger.warning("cache %s unreadable (%s); computing afresh", cache_file, e)
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(cache_file: Path | None, cache: dict[str, Any]) -> None:
    if cache_file is not None:
        atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True) + "\n", overwrite=True)
