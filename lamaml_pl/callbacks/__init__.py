"""Lightning callbacks of lamaml_pl."""

from lamaml_pl.callbacks.gradient_alignment import GradientAlignment
from lamaml_pl.callbacks.task_checkpoint import TaskCheckpoint
from lamaml_pl.callbacks.task_progress import TaskProgressBar

__all__ = ["GradientAlignment", "TaskCheckpoint", "TaskProgressBar"]
