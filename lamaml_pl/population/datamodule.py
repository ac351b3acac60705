"""The data of a population: each member's own stream, stacked into ``(N, B, ...)`` batches.

Members with the same seed share one source data module (the data depend only on the seed).
Every training epoch each member draws its sample order from its :class:`MemberRNG`, as its
single run's loader would from the global RNG; the test sets are shared by all members.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lamaml_pl.data.datamodule import TaskSequentialDataModule
from lamaml_pl.population.member_rng import MemberRNG


class MemberBatches(Dataset):
    """Batch b of every member: member i's samples ``orders[i, b*B:(b+1)*B]`` of its source."""

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, source_of: torch.Tensor, orders: torch.Tensor, batch_size: int
    ):
        self.x, self.y, self.source_of, self.orders, self.batch_size = x, y, source_of.unsqueeze(1), orders, batch_size

    def __len__(self) -> int:
        return -(-self.orders.shape[1] // self.batch_size)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor, None]:
        """(x, y, t): the task is the current one (no joint stream in a population)."""
        idx = self.orders[:, b * self.batch_size : (b + 1) * self.batch_size]
        return self.x[self.source_of, idx], self.y[self.source_of, idx], None


class PopulationDataModule(pl.LightningDataModule):
    def __init__(self, sources: list[TaskSequentialDataModule], rngs: list[MemberRNG]):
        super().__init__()
        self.unique = list(dict.fromkeys(sources))  # one per seed, in first-use order
        self.source_of = torch.tensor([self.unique.index(s) for s in sources])
        self.rngs = rngs
        first = self.unique[0]
        self.n_tasks, self.epochs_per_task, self.joint = first.n_tasks, first.epochs_per_task, first.joint
        self.batch_size, self.max_epochs = first.batch_size, first.max_epochs
        self.task_of_epoch = first.task_of_epoch

    def current_task_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        task = self.task_of_epoch(self.trainer.current_epoch)
        sets = [source.train_dataset(task) for source in self.unique]
        return torch.stack([s.x for s in sets]), torch.stack([s.y for s in sets])

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch
        x, y = self.current_task_data()
        evaluated_before = epoch % self.epochs_per_task == 0  # the row before training, or the last task's
        orders = torch.stack([rng.epoch_order(epoch, y.shape[1], evaluated_before) for rng in self.rngs])
        return DataLoader(MemberBatches(x, y, self.source_of, orders, self.batch_size), batch_size=None, shuffle=False)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        first = self.unique[0]
        first.trainer = self.trainer  # data.eval_tasks follows the training progress
        return first.val_dataloader()
