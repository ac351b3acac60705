"""The data of a population: each member's own stream, stacked into ``(N, B, ...)`` batches.

Members with the same seed share one source data module (the data depend only on the seed).
Every training epoch each member draws its sample order from its :class:`MemberRNG`, as its
single run's loader would from the global RNG, and its batches' augmentations (CIFAR,
TinyImageNet) from its single run's augmentation generator of the pass. The test sets are shared by all
members where they do not depend on the seed (MNIST); else each seed's are scored for its own
members.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lamaml_pl.data.augment import augmentation_generator
from lamaml_pl.data.datamodule import TaskSequentialDataModule
from lamaml_pl.data.datasets import window_loader
from lamaml_pl.errors import ConfigError
from lamaml_pl.population.member_rng import MemberRNG


class MemberBatches(Dataset):
    """Batch b of every member: member i's samples ``orders[i, b*B:(b+1)*B]`` of its source,
    through the source's ``transform`` with member i's augmentation generator."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        source_of: torch.Tensor,
        orders: torch.Tensor,
        batch_size: int,
        transform,
        generators: list[torch.Generator],
    ):
        self.x, self.y, self.source_of, self.orders, self.batch_size = x, y, source_of.unsqueeze(1), orders, batch_size
        self.transform, self.generators = transform, generators

    def __len__(self) -> int:
        return -(-self.orders.shape[1] // self.batch_size)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor, None]:
        """(x, y, t): the task is the current one (no joint stream in a population)."""
        idx = self.orders[:, b * self.batch_size : (b + 1) * self.batch_size]
        x = self.x[self.source_of, idx]
        if self.transform is not None:
            x = torch.stack([self.transform(images, generator=g) for images, g in zip(x, self.generators)])
        return x, self.y[self.source_of, idx], None


class PopulationDataModule(pl.LightningDataModule):
    def __init__(self, sources: list[TaskSequentialDataModule], rngs: list[MemberRNG]):
        super().__init__()
        if sources[0].shuffle != "global":
            raise ConfigError(
                f"data.shuffle={sources[0].shuffle!r}: a population replays each member's data order as its single "
                "run draws it from torch's global RNG; use data.shuffle=global"
            )
        self.unique = list(dict.fromkeys(sources))  # one per seed, in first-use order
        self.source_of = torch.tensor([self.unique.index(s) for s in sources])
        self.rngs = rngs
        first = self.unique[0]
        self.n_tasks, self.epochs_per_task, self.joint = first.n_tasks, first.epochs_per_task, first.joint
        self.batch_size, self.max_epochs = first.batch_size, first.max_epochs
        self.task_of_epoch = first.task_of_epoch
        self.eval_loaders = 2 if first.info.val_sizes else 1  # test sets (+ validation sets)

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch
        task = self.task_of_epoch(epoch)
        device = self.trainer.strategy.root_device
        sets = [source.train_dataset(task) for source in self.unique]
        x, y = torch.stack([s.x for s in sets]).to(device), torch.stack([s.y for s in sets]).to(device)
        # the row before training, or the last task's: one draw per evaluation loader
        evaluated_before = self.eval_loaders if epoch % self.epochs_per_task == 0 else 0
        orders = torch.stack([rng.epoch_order(epoch, y.shape[1], evaluated_before) for rng in self.rngs])
        seeds = [self.unique[k].seed for k in self.source_of.tolist()]
        generators = [augmentation_generator(seed, epoch) for seed in seeds]
        batches = MemberBatches(
            x, y, self.source_of.to(device), orders.to(device), self.batch_size, sets[0].transform, generators
        )
        return window_loader(batches, range(len(batches)), self.unique[0].batches_per_step)  # the sources' window

    def val_dataloader(self) -> list[DataLoader]:
        """Every seed's evaluation sets where they differ (``seeded_evaluation``), each scored
        for its own members; else the first's, for all."""
        sources = self.unique if self.unique[0].seeded_evaluation else self.unique[:1]
        loaders, self.routes = [], []
        for index, source in enumerate(sources):
            source.trainer = self.trainer  # data.eval_tasks follows the training progress
            found = source.val_dataloader()
            members = (self.source_of == index).nonzero().flatten() if len(sources) > 1 else None
            for split, loader in enumerate(found if isinstance(found, list) else [found]):
                loaders.append(loader)
                self.routes.append((split, members))
        return loaders

    def eval_split(self, dataloader_idx: int) -> tuple[int, torch.Tensor | None]:
        return self.routes[dataloader_idx]
