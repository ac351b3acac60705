"""Lightning callbacks of lamaml_pl."""
from lamaml_pl.callbacks.task_progress import TaskProgressBar

__all__ = ["TaskProgressBar"]
