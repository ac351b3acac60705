"""Class-split streams over any labelled image set: CIFAR-100, TinyImageNet-200, Split MNIST,
Split Fashion-MNIST, Split CIFAR-10 and a folder of your own images.

The classes are shuffled with the run seed and cut into tasks of ``increment`` classes; labels
are remapped to their position in that order, so task k owns labels ``[k*increment, (k+1)*increment)``.
``scenario`` says what the learner is told: ``task_il`` gives the task id at test time (the
learner masks the other tasks' logits), ``class_il`` does not (one head over every class seen so
far). A ``validation`` fraction of every class's training images is held out for model
selection; the reported accuracy matrix comes from the test set, and results.json carries both.
"""

from __future__ import annotations

import random
from functools import partial

import numpy as np
import torch
from torch.utils.data import Sampler

from lamaml_pl.data.augment import ImageAugment
from lamaml_pl.data.datamodule import TaskSequentialDataModule
from lamaml_pl.data.datasets import TaskBalancedBatches, TaskSetBatches, TaskTensorDataset
from lamaml_pl.data.image_folder import load_image_folder
from lamaml_pl.data.image_sources import (
    ImageSplits,
    load_cifar,
    load_fashion_mnist,
    load_mnist_images,
    load_tinyimagenet,
)
from lamaml_pl.errors import ConfigError, require_positive
from lamaml_pl.stream import StreamInfo

# How each source is read (the data module's settings in, uint8 images out).
SOURCES = {
    "cifar100": lambda dm: load_cifar("cifar100", dm.root, dm.download),
    "cifar10": lambda dm: load_cifar("cifar10", dm.root, dm.download),
    "tinyimagenet": lambda dm: load_tinyimagenet(dm.root, cache_dir=dm.cache_dir),
    "mnist": lambda dm: load_mnist_images(dm.root, download=dm.download),
    "fashion_mnist": lambda dm: load_fashion_mnist(dm.root, dm.download, dm.use_package, dm.cache_dir),
    "imagefolder": lambda dm: load_image_folder(dm.root, dm.image_size, dm.test_fraction, dm.cache_dir),
}
SCENARIOS = ("task_il", "class_il")
CLASS_ORDERS = ("random", "fixed")
# How the validation split shuffles the training set: TinyImageNet's original loader differs.
SPLIT_SHUFFLE = {"tinyimagenet": "python"}


class ClassSplitDataModule(TaskSequentialDataModule):
    """A stream of tasks that each bring new classes.

    Args:
        source: one of :data:`SOURCES`.
        scenario: ``task_il`` (the task id is known at test time) or ``class_il`` (it is not).
        benchmark_tasks, n_tasks: the benchmark's tasks and how many of them run (null: as many
            as the data's classes make, ``n_classes // increment``).
        increment: classes per task (5: CIFAR-100 -> 20 tasks, TinyImageNet -> 40).
        samples_per_task: a seeded subset of every task's training images (null: all of them).
        validation: fraction of each class's training images held out (0.1 in every paper run).
        class_order: ``random`` (shuffled with ``seed``, as the paper) or ``fixed`` (0, 1, 2, ...).
        augment: ImageAugment arguments (mean, std, crop_padding, flip, brightness); ``mean``/``std``
            null take the training images' own per-channel values.
        tasks_per_batch, batches_per_epoch: the IID oracle's task-balanced sampler (joint mode
            only; null = plain shuffled batches over all tasks).
        cache_dir: where decoded image files are kept (null: decode every run).
        image_size, test_fraction: a folder of images only — the size every image is resized
            to (null: their own) and the share of every class held out as the test set when the
            folder has no ``test/``.
        use_package: Fashion-MNIST only: read Debian's package when ``root`` holds no copy
            (its config: while ``root`` is left at its default).
    """

    def __init__(
        self,
        name: str,
        source: str,
        scenario: str,
        root: str,
        n_tasks: int | None,
        benchmark_tasks: int | None,
        augment: dict,
        increment: int,
        samples_per_task: int | None,
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
        reported_split: str,
        image_size: int | None = None,
        test_fraction: float | None = None,
        use_package: bool = False,
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
            validation,
            reported_split,
        )
        if source not in SOURCES:
            raise ConfigError(f"data.source={source!r} is unknown: use one of {', '.join(SOURCES)}")
        if scenario not in SCENARIOS:
            raise ConfigError(f"data.scenario={scenario!r} is unknown: use one of {', '.join(SCENARIOS)}")
        if class_order not in CLASS_ORDERS:
            raise ConfigError(f"data.class_order={class_order!r} is unknown: use one of {', '.join(CLASS_ORDERS)}")
        require_positive("data", increment=increment)
        if samples_per_task is not None:
            require_positive("data", samples_per_task=samples_per_task)
        if tasks_per_batch is not None:
            require_positive("data", tasks_per_batch=tasks_per_batch, batches_per_epoch=batches_per_epoch)
            if batch_size % tasks_per_batch or (n_tasks is not None and tasks_per_batch > n_tasks):
                raise ConfigError(
                    f"data.tasks_per_batch={tasks_per_batch} must divide data.batch_size={batch_size} "
                    f"and be at most data.n_tasks={n_tasks}"
                )
        self.source_name, self.scenario, self.root, self.increment = source, scenario, root, int(increment)
        self.image_size, self.test_fraction, self.use_package = image_size, test_fraction, use_package
        self.samples_per_task = samples_per_task
        self.class_order = class_order
        self.download, self.cache_dir = download, cache_dir
        self.tasks_per_batch, self.batches_per_epoch = tasks_per_batch, batches_per_epoch
        self.augment_settings = dict(augment)

    # ---- loading -----------------------------------------------------------------------------
    def load(self) -> None:
        images = SOURCES[self.source_name](self)
        self._fit_task_count(images)
        self.augment = ImageAugment(**channel_statistics(self.augment_settings, images.train_x))
        self.source = images.source
        self.order = class_order(images.n_classes, self.class_order, self.seed)
        self.class_names = [images.class_names[k] for k in self.order] if images.class_names else None
        remap = torch.empty(images.n_classes, dtype=torch.long)
        remap[torch.tensor(self.order)] = torch.arange(images.n_classes)
        train_y, test_y = remap[images.train_y], remap[images.test_y]
        val_mask = validation_mask(
            images.train_y, self.validation, self.seed, SPLIT_SHUFFLE.get(self.source_name, "numpy")
        )
        self.train_sets, self.val_sets, self.test_sets = [], [], []
        subsets = torch.Generator().manual_seed(self.seed)
        for task in range(self.n_tasks):
            low, high = task * self.increment, (task + 1) * self.increment
            in_task = (train_y >= low) & (train_y < high)
            fit, held = in_task & ~val_mask, in_task & val_mask
            fit = self._subset(fit.nonzero().flatten(), task, subsets)
            self.train_sets.append((images.train_x[fit], train_y[fit]))
            self.val_sets.append((images.train_x[held], train_y[held]))
            in_test = (test_y >= low) & (test_y < high)
            self.test_sets.append((images.test_x[in_test], test_y[in_test]))
        self.input_shape = tuple(images.train_x.shape[1:])
        self.n_classes = images.n_classes

        for task, (_, y) in enumerate(self.test_sets):
            if len(y) == 0:
                raise ConfigError(f"data.root: {self.source} has no test images for the classes of task {task}")

    def _subset(self, indices: torch.Tensor, task: int, generator: torch.Generator) -> torch.Tensor:
        """``samples_per_task`` of a task's training images, drawn with the run's seed (in their
        stored order); all of them when it is null."""
        if self.samples_per_task is None:
            return indices
        if self.samples_per_task > len(indices):
            raise ConfigError(
                f"data.samples_per_task={self.samples_per_task} exceeds the {len(indices)} training images of "
                f"task {task}: use at most {len(indices)}, or null for all of them"
            )
        return indices[torch.randperm(len(indices), generator=generator)[: self.samples_per_task].sort().values]

    def _fit_task_count(self, images: ImageSplits) -> None:
        """A fixed benchmark must have exactly its classes; a folder's task count follows from its
        classes (null) or must fit into them."""
        need = None if self.benchmark_tasks is None else self.benchmark_tasks * self.increment
        if need is not None and images.n_classes != need:
            raise ConfigError(
                f"data.root: {images.source} has {images.n_classes} classes, but data.benchmark_tasks="
                f"{self.benchmark_tasks} x data.increment={self.increment} needs {need}"
            )
        if self.benchmark_tasks is None:
            self.benchmark_tasks = images.n_classes // self.increment
            if self.benchmark_tasks == 0:
                raise ConfigError(
                    f"data.increment={self.increment} is more than the {images.n_classes} classes of {images.source}"
                )
            left = images.n_classes % self.increment
            if left and self.n_tasks is None:  # every class was asked for: none may be dropped
                fits = [k for k in range(1, images.n_classes + 1) if images.n_classes % k == 0]
                raise ConfigError(
                    f"data.increment={self.increment} does not divide the {images.n_classes} classes of "
                    f"{images.source}: {left} would be left out. Use an increment of {', '.join(map(str, fits))}, "
                    f"or data.n_tasks=<k> to run the first k tasks of {self.increment} classes"
                )
        if self.n_tasks is None:
            self.n_tasks = self.benchmark_tasks
        elif self.n_tasks > self.benchmark_tasks:
            raise ConfigError(
                f"data.n_tasks={self.n_tasks} x data.increment={self.increment} needs "
                f"{self.n_tasks * self.increment} classes, but {images.source} has {images.n_classes}"
            )

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
            scenario=self.scenario,
            val_sizes=[len(y) for _, y in self.val_sets] if self.validation > 0 else [],
        )

    def train_dataset(self, task: int) -> TaskTensorDataset:
        """Task ``task``'s training images, augmented batch by batch; without random
        augmentations normalised once here (per-sample arithmetic: the same values)."""
        x, y = self.train_sets[task]
        if not self.augment.draws:
            return TaskTensorDataset(self.normalise(x), y, task)
        return TaskTensorDataset(x, y, task, transform=partial(self.augment, train=True))

    def eval_dataset(self, n_tasks: int) -> TaskSetBatches:
        return TaskSetBatches(self.test_sets[:n_tasks], self.eval_batch_size, self.normalise)

    def val_dataset(self, n_tasks: int) -> TaskSetBatches | None:
        if self.validation == 0:
            return None
        return TaskSetBatches(self.val_sets[:n_tasks], self.eval_batch_size, self.normalise)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return self.augment(images, train=False)

    def pass_batches(self, dataset: TaskTensorDataset, generator: torch.Generator | None) -> Sampler:
        """The joint oracle's task-balanced batches where ``tasks_per_batch`` is set."""
        if not (self.joint and self.tasks_per_batch):
            return super().pass_batches(dataset, generator)
        return TaskBalancedBatches(dataset.t.cpu(), self.batch_size, self.tasks_per_batch, self.batches_per_epoch)

    def describe(self) -> dict:
        self.setup()
        return {
            "name": self.name,
            "data_source": self.source,
            "scenario": self.scenario,
            "n_tasks": self.n_tasks,
            "classes_per_task": self.increment,
            "class_order": self.order,
            **({"class_names": self.class_names} if self.class_names else {}),  # in task order
            "samples_per_task": self.samples_per_task,
            "train_per_task": [len(y) for _, y in self.train_sets],
            "val_per_task": [len(y) for _, y in self.val_sets],
            "test_per_task": [len(y) for _, y in self.test_sets],
            "reported_matrix": self.reported_split,
        }


def channel_statistics(augment: dict, train_x: torch.Tensor) -> dict:
    """The augment settings with a null ``mean``/``std`` replaced by the training images' own
    per-channel values (in [0, 1] units)."""
    missing = [key for key in ("mean", "std") if augment.get(key) is None]
    if not missing:
        return augment
    pixels = train_x.transpose(0, 1).reshape(train_x.shape[1], -1).double() / 255
    stats = {"mean": pixels.mean(dim=1).tolist(), "std": pixels.std(dim=1).tolist()}
    return {**augment, **{key: stats[key] for key in missing}}


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
