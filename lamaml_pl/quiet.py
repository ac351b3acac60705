"""Third-party messages a user cannot act on, silenced: the run prints its own device, seed and
per-task lines, and warnings that concern this code's choices are answered here, not repeated."""

from __future__ import annotations

import logging
import warnings

IGNORED_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",  # Lightning's pytree against a newer torch
    r"The number of training batches .* is smaller than the logging interval",  # a task of few batches
    r".*does not have many workers which may be a bottleneck",  # the data are tensors in memory
    r".*weights_only.*",  # the task checkpoints are written and read by this code
)
# Lightning's info lines: GPU/TPU availability, the litlogger tip, "Seed set to", "`Trainer.fit` stopped"
INFO_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.seed")


def quiet_third_party() -> None:
    for pattern in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in INFO_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
