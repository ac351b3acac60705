"""Task-incremental CIFAR-100 and TinyImageNet-200.

The classes are shuffled with the run seed and cut into tasks of ``increment`` classes; labels
are remapped to their position in that order, so task k owns labels ``[k*increment, (k+1)*increment)``
and the task id is given at test time (the learner masks the other tasks' logits).
A ``validation`` fraction of every class's training images is held out for model selection;
the reported accuracy matrix comes from the test set (CIFAR's test split, TinyImageNet's
official val folder), and results.json carries both.
"""

from __future__ import annotations

import random
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader

from lamaml_pl.data.augment import ImageAugment
from lamaml_pl.data.datamodule import TaskSequentialDataModule
from lamaml_pl.data.datasets import TaskBalancedBatches, TaskSetBatches, TaskTensorDataset, keep_batch
from lamaml_pl.data.image_sources import ImageSplits, load_cifar100, load_tinyimagenet
from lamaml_pl.errors import ConfigError, require_positive
from lamaml_pl.stream import StreamInfo

SOURCES = ("cifar100", "tinyimagenet")
CLASS_ORDERS = ("random", "fixed")
# How each source's validation split shuffles the training set (the original loaders differ).
SPLIT_SHUFFLE = {"cifar100": "numpy", "tinyimagenet": "python"}


class ClassSplitDataModule(TaskSequentialDataModule):
    """A class-incremental image stream evaluated task-incrementally.

    Args:
        source: ``cifar100`` or ``tinyimagenet``.
        increment: classes per task (5: CIFAR-100 -> 20 tasks, TinyImageNet -> 40).
        validation: fraction of each class's training images held out (0.1 in every paper run).
        class_order: ``random`` (shuffled with ``seed``, as the paper) or ``fixed`` (0, 1, 2, ...).
        augment: ImageAugment arguments (mean, std, crop_padding, flip, brightness).
        tasks_per_batch, batches_per_epoch: the IID oracle's task-balanced sampler (joint mode
            only; null = plain shuffled batches over all tasks).
        cache_dir: where decoded TinyImageNet images are kept (null: decode every run).
    """

    def __init__(
        self,
        name: str,
        source: str,
        root: str,
        n_tasks: int,
        benchmark_tasks: int,
        augment: dict,
        increment: int,
        validation: float,
        class_order: str,
        epochs_per_task: int,
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        download: bool,
        cache_dir: str | None,
        joint: bool,
        shuffle: str,
        tasks_per_batch: int | None,
        batches_per_epoch: int | None,
        eval_tasks: str,
    ):
        super().__init__(
            name,
            n_tasks,
            benchmark_tasks,
            epochs_per_task,
            batch_size,
            eval_batch_size,
            joint,
            shuffle,
            seed,
            eval_tasks,
        )
        if source not in SOURCES:
            raise ConfigError(f"data.source={source!r} is unknown: use one of {', '.join(SOURCES)}")
        if class_order not in CLASS_ORDERS:
            raise ConfigError(f"data.class_order={class_order!r} is unknown: use one of {', '.join(CLASS_ORDERS)}")
        require_positive("data", increment=increment)
        if not 0 <= validation < 1:
            raise ConfigError(f"data.validation={validation} is not allowed: use a fraction in [0, 1)")
        if tasks_per_batch is not None:
            require_positive("data", tasks_per_batch=tasks_per_batch, batches_per_epoch=batches_per_epoch)
            if batch_size % tasks_per_batch or tasks_per_batch > n_tasks:
                raise ConfigError(
                    f"data.tasks_per_batch={tasks_per_batch} must divide data.batch_size={batch_size} "
                    f"and be at most data.n_tasks={n_tasks}"
                )
        self.source_name, self.root, self.increment = source, root, int(increment)
        self.validation, self.class_order = float(validation), class_order
        self.download, self.cache_dir = download, cache_dir
        self.tasks_per_batch, self.batches_per_epoch = tasks_per_batch, batches_per_epoch
        self.augment = ImageAugment(**augment)

    # ---- loading -----------------------------------------------------------------------------
    def load(self) -> None:
        images = self._read_source()
        if images.n_classes != self.benchmark_tasks * self.increment:
            raise ConfigError(
                f"data.root: {images.source} has {images.n_classes} classes, but data.benchmark_tasks="
                f"{self.benchmark_tasks} x data.increment={self.increment} needs "
                f"{self.benchmark_tasks * self.increment}"
            )
        self.source = images.source
        self.order = class_order(images.n_classes, self.class_order, self.seed)
        remap = torch.empty(images.n_classes, dtype=torch.long)
        remap[torch.tensor(self.order)] = torch.arange(images.n_classes)
        train_y, test_y = remap[images.train_y], remap[images.test_y]
        val_mask = validation_mask(images.train_y, self.validation, self.seed, SPLIT_SHUFFLE[self.source_name])
        self.train_sets, self.val_sets, self.test_sets = [], [], []
        for task in range(self.n_tasks):
            low, high = task * self.increment, (task + 1) * self.increment
            in_task = (train_y >= low) & (train_y < high)
            fit, held = in_task & ~val_mask, in_task & val_mask
            self.train_sets.append((images.train_x[fit], train_y[fit]))
            self.val_sets.append((images.train_x[held], train_y[held]))
            in_test = (test_y >= low) & (test_y < high)
            self.test_sets.append((images.test_x[in_test], test_y[in_test]))
        self.input_shape = tuple(images.train_x.shape[1:])
        self.n_classes = images.n_classes

    def _read_source(self) -> ImageSplits:
        if self.source_name == "cifar100":
            return load_cifar100(self.root, download=self.download)
        return load_tinyimagenet(self.root, cache_dir=self.cache_dir)

    # ---- what the trainer and the learner see ---------------------------------------------
    def stream_info(self) -> StreamInfo:
        return StreamInfo(
            n_tasks=self.n_tasks,
            n_classes=self.n_classes,
            input_shape=self.input_shape,
            epochs_per_task=self.epochs_per_task,
            joint=self.joint,
            test_sizes=[len(y) for _, y in self.test_sets],
            classes_per_task=self.increment,
            val_sizes=[len(y) for _, y in self.val_sets] if self.validation > 0 else [],
        )

    def train_dataset(self, task: int) -> TaskTensorDataset:
        x, y = self.train_sets[task]
        return TaskTensorDataset(x, y, task, transform=partial(self.augment, train=True))

    def eval_dataset(self, n_tasks: int) -> TaskSetBatches:
        return TaskSetBatches(self.test_sets[:n_tasks], self.eval_batch_size, self.normalise)

    def val_dataset(self, n_tasks: int) -> TaskSetBatches | None:
        if self.validation == 0:
            return None
        return TaskSetBatches(self.val_sets[:n_tasks], self.eval_batch_size, self.normalise)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return self.augment(images, train=False)

    def train_dataloader(self) -> DataLoader:
        if not (self.joint and self.tasks_per_batch):
            return super().train_dataloader()
        dataset = TaskTensorDataset.concat([self.train_dataset(k) for k in range(self.n_tasks)])
        sampler = TaskBalancedBatches(dataset.t, self.batch_size, self.tasks_per_batch, self.batches_per_epoch)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=keep_batch)

    def describe(self) -> dict:
        self.setup()
        return {
            "name": self.name,
            "data_source": self.source,
            "n_tasks": self.n_tasks,
            "classes_per_task": self.increment,
            "class_order": self.order,
            "train_per_task": [len(y) for _, y in self.train_sets],
            "val_per_task": [len(y) for _, y in self.val_sets],
            "test_per_task": [len(y) for _, y in self.test_sets],
            "reported_matrix": "test",
        }


def class_order(n_classes: int, kind: str, seed: int) -> list[int]:
    """``random``: ``random.seed(seed); random.shuffle(range(n))`` as the original loaders."""
    order = list(range(n_classes))
    if kind == "random":
        random.Random(seed).shuffle(order)
    return order


def validation_mask(labels: torch.Tensor, fraction: float, seed: int, shuffle: str) -> torch.Tensor:
    """True for the held-out images: per class (increasing id), the first
    ``floor(class size * fraction)`` of its images in a seeded shuffled order of the training set
    (NumPy's permutation for CIFAR, Python's ``random.shuffle`` for TinyImageNet, as the originals)."""
    n = len(labels)
    if shuffle == "numpy":
        order = torch.from_numpy(np.random.RandomState(seed).permutation(n))
    else:
        positions = list(range(n))
        random.Random(seed).shuffle(positions)
        order = torch.tensor(positions)
    mask = torch.zeros(n, dtype=torch.bool)
    shuffled = labels[order]
    for c in torch.unique(labels).tolist():
        members = order[shuffled == c]
        mask[members[: int(len(members) * fraction)]] = True
    return mask
