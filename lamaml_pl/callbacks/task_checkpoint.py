"""A checkpoint at the end of every task, written atomically, so a crashed run can resume."""

from __future__ import annotations

import os
from pathlib import Path

from pytorch_lightning.callbacks import Callback

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"


class TaskCheckpoint(Callback):
    """Writes ``<run>/checkpoints/last.ckpt`` after each task's evaluation row is recorded.

    The file is written under a temporary name and renamed over the old one, so a crash while
    writing leaves the previous checkpoint intact. It holds the weights, learnable LRs, optimiser
    states, buffers and memories, the task cursor, the accuracy rows and the RNG states
    (``ContinualLearner.on_save_checkpoint``).
    """

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking:
            return
        folder = Path(trainer.default_root_dir) / CHECKPOINT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{LAST}.partial"
        trainer.save_checkpoint(partial)
        os.replace(partial, folder / LAST)
