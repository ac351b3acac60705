"""A progress bar that names the task being learned instead of Lightning's epoch."""
from __future__ import annotations

import sys

from pytorch_lightning.callbacks import TQDMProgressBar

NON_TTY_REFRESH = 50  # batches between redraws when stderr is a log file, not a terminal


class TaskProgressBar(TQDMProgressBar):
    """Shows ``Task t/T (pass e/E)`` for the task-sequential loop."""

    def __init__(self) -> None:
        super().__init__(refresh_rate=1 if sys.stderr.isatty() else NON_TTY_REFRESH)

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        per_task = trainer.datamodule.epochs_per_task
        task, task_epoch = divmod(trainer.current_epoch, per_task)
        label = f"Task {task + 1}/{trainer.datamodule.n_tasks}"
        if per_task > 1:
            label += f" (pass {task_epoch + 1}/{per_task})"
        self.train_progress_bar.set_description(label)
