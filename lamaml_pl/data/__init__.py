"""Task streams and the task-sequential DataModule."""

from lamaml_pl.data.class_split import ClassSplitDataModule
from lamaml_pl.data.datamodule import TaskSequentialDataModule
from lamaml_pl.data.mnist import MnistDataModule

__all__ = ["ClassSplitDataModule", "MnistDataModule", "TaskSequentialDataModule"]
