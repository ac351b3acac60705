"""The accuracy matrix and the continual-learning metrics derived from it."""

from lamaml_pl.metrics.cl_metrics import INIT_TAG, AccuracyLog, cl_metrics
from lamaml_pl.metrics.task_accuracy import TaskAccuracy

__all__ = ["INIT_TAG", "AccuracyLog", "TaskAccuracy", "cl_metrics"]
