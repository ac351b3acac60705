"""A progress bar that names the task being learned instead of Lightning's epoch (on a terminal:
a log file gets :class:`~lamaml_pl.callbacks.task_summary.TaskSummary`'s line per task)."""

from __future__ import annotations

from pytorch_lightning.callbacks import TQDMProgressBar


class TaskProgressBar(TQDMProgressBar):
    """Shows ``Task t/T (pass e/E)`` for the task-sequential loop."""

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        data = trainer.datamodule
        per_task = data.epochs_per_task
        if data.joint:
            label = f"All {data.n_tasks} tasks (joint)"
        else:
            label = f"Task {data.task_of_epoch(trainer.current_epoch) + 1}/{data.n_tasks}"
        if per_task > 1:
            label += f" (pass {trainer.current_epoch % per_task + 1}/{per_task})"
        self.train_progress_bar.set_description(label)

    def get_metrics(self, trainer, pl_module) -> dict:
        """The learner's mean loss over its last logging window (``report_loss``) beside the bar."""
        metrics = super().get_metrics(trainer, pl_module)
        if getattr(pl_module, "train_loss", None) is not None:
            metrics["loss"] = f"{pl_module.train_loss:.3g}"
        return metrics
