"""Lightning callbacks of lamaml_pl."""

from lamaml_pl.callbacks.gradient_alignment import GradientAlignment
from lamaml_pl.callbacks.task_checkpoint import TaskCheckpoint
from lamaml_pl.callbacks.task_progress import TaskProgressBar
from lamaml_pl.callbacks.task_summary import TaskSummary

__all__ = ["GradientAlignment", "TaskCheckpoint", "TaskProgressBar", "TaskSummary"]
