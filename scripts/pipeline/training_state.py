"""The validation's best score as part of a training's resumable state.

train.json saves the trainer, network, optimizer and scheduler every few epochs so that a killed run resumes
(``models/train_state``). The best-model saver (``CheckpointSaver`` with ``key_metric_filename="model.pt"``) keeps
its best score in memory only, so a resumed run used to start from "no best yet": its first validation replaced
``models/model.pt`` even when it scored below the model saved before the interruption. :class:`ValidationBest`
puts that score (and the evaluator's ``best_metric``/``best_metric_epoch``) into the saved state and restores it.
:class:`ValidateAtStart` gives a fine-tune the same guard from its first epoch: the starting weights are validated
before any step, so they are the score to beat. :class:`LastWeights` keeps the last epoch's weights when the run
finishes (the training state is removed then) and says which weights ``model.pt`` holds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.engines import Workflow
from monai.handlers import CheckpointSaver
from scripts.configuration.values import as_bool
from scripts.io.atomic import atomic_write

logger = logging.getLogger(__name__)


class ValidationBest:
    """Checkpointable view of the validation's best key metric.

    An object with ``state_dict``/``load_state_dict``, to be listed in the ``save_dict`` of the trainer's state
    saver and in the ``load_dict`` of its resume loader, under the same name.

    Args:
        evaluator: the validation engine (its ``state.best_metric`` and ``state.best_metric_epoch``).
        saver: the validation's ``CheckpointSaver`` built with ``save_key_metric=True`` (it decides whether a new
            score replaces the saved best model).

    Raises:
        ValueError: when ``saver`` does not save on the key metric.
    """

    def __init__(self, evaluator: Workflow, saver: CheckpointSaver) -> None:
        if getattr(saver, "_key_metric_checkpoint", None) is None:
            raise ValueError("ValidationBest needs the validation's CheckpointSaver with save_key_metric=True")
        self.evaluator = evaluator
        self.saver = saver

    def state_dict(self) -> dict[str, Any]:
        """The best score so far, as plain numbers and strings (loadable with ``torch.load(weights_only=True)``)."""
        saved = self.saver._key_metric_checkpoint.state_dict()
        return {
            "best_metric": float(self.evaluator.state.best_metric),
            "best_metric_epoch": int(self.evaluator.state.best_metric_epoch),
            "saved": [[float(priority), str(name)] for priority, name in saved["_saved"]],
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned: later validations must beat that score to replace the model."""
        missing = {"best_metric", "best_metric_epoch", "saved"} - set(state_dict)
        if missing:
            raise ValueError(f"validation state lacks {sorted(missing)}; was it saved by ValidationBest?")
        self.evaluator.state.best_metric = float(state_dict["best_metric"])
        self.evaluator.state.best_metric_epoch = int(state_dict["best_metric_epoch"])
        self.saver._key_metric_checkpoint.load_state_dict(
            {"_saved": [(float(priority), str(name)) for priority, name in state_dict["saved"]]}
        )


class ValidateAtStart:
    """Validate the starting weights once when training starts, so that only a better model replaces ``model.pt``.

    Why: the best-model saver starts with no score, so without this the first validation of a fine-tune writes
    ``model.pt`` whatever it scores, and a MONAI Label round can serve a model worse than the one it started from
    (found by ``scripts.studies.annotation_loop``). Attach it after every handler that loads the starting weights
    (MONAI Label adds a ``CheckpointLoader`` to the trainer's handlers; train.json attaches this in its ``run`` list,
    after the trainer is built): handlers of one event run in the order they were attached.

    Args:
        evaluator: the validation engine whose handlers include the best-model ``CheckpointSaver``.
        enabled: False attaches nothing (training from scratch has no score worth keeping).
    """

    def __init__(self, evaluator: Workflow, enabled: bool = True) -> None:
        self.evaluator = evaluator
        self.enabled = as_bool(enabled, "enabled")
        #: the starting weights' validation score, once measured
        self.metric: float | None = None

    def attach(self, engine: Engine) -> None:
        """Run the validation at ``engine``'s start (``Events.STARTED``), when enabled."""
        if self.enabled:
            engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.evaluator.run()
        self.metric = float(self.evaluator.state.best_metric)


class LastWeights:
    """When a training finishes: save the last epoch's weights beside the best model and say what ``model.pt`` holds.

    Why: ``model.pt`` holds the best validation model, and the training state (the only copy of the last weights)
    is removed when the run finishes. A fine-tune whose epochs never beat the starting weights' validation score
    (:class:`ValidateAtStart`) then left ``model.pt`` as the starting model with only the metric log to say so
    (found on a spine-network fine-tune whose stronger augmentation lowered the phantom validation Dice: 40 epochs,
    ``model.pt`` byte-identical to the start, the last weights gone). Now the last weights are kept and a warning
    says that ``model.pt`` is the starting model.

    Args:
        network: the trained network (a ``DistributedDataParallel`` wrapper is unwrapped; only rank 0 saves).
        path: where the last weights go (a state_dict, as ``model.pt``), e.g. ``<ckpt_dir>/model_last.pt``.
        evaluator: the validation engine (its ``state.best_metric`` and ``best_metric_epoch``).
        start: the :class:`ValidateAtStart` of this run, whose score ``model.pt`` had to beat (None: no check).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        path: str | os.PathLike,
        evaluator: Workflow,
        start: ValidateAtStart | None = None,
    ) -> None:
        self.network = network
        self.path = Path(path)
        self.evaluator = evaluator
        self.start = start

    def attach(self, engine: Engine) -> None:
        """Run at ``engine``'s end (``Events.COMPLETED``: a finished run, not an interrupted one)."""
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return
        state = getattr(self.network, "module", self.network).state_dict()
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))
        best, epoch = float(self.evaluator.state.best_metric), int(self.evaluator.state.best_metric_epoch)
        logger.info(
            "last epoch's weights (epoch %d): %s; model.pt: the best validation, %.4f",
            engine.state.epoch,
            self.path,
            best,
        )
        start = None if self.start is None else self.start.metric
        if start is not None and best <= start:
            logger.warning(
                "no epoch of this run beat the starting weights' validation score %.4f (best %.4f, epoch %d), so "
                "model.pt holds the starting weights. The last epoch's weights are in %s; to do better, lower the "
                "learning rate, train longer, or check the validation subjects",
                start,
                best,
                epoch,
                self.path,
            )
