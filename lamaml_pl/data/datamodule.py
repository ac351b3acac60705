"""The task-sequential LightningDataModule: one ``trainer.fit`` walks the whole task stream.

An epoch is one pass over one task's training data, so the trainer runs
``n_tasks * epochs_per_task`` epochs and the current task is ``current_epoch // epochs_per_task``.
With ``joint=True`` (the IID multi-task oracle) every epoch is one pass over all tasks' training
data at once, each sample carrying its own task id.
The train loader is rebuilt every epoch (``reload_dataloaders_every_n_epochs=1``) and follows
the task; validation covers the test sets of all tasks in one loader of ``(x, y, t)`` batches.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import replace
from typing import ClassVar

import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler

from lamaml_pl.data.augment import augmentation_generator, pass_seed
from lamaml_pl.data.datasets import TaskTensorDataset, window_loader
from lamaml_pl.errors import ConfigError, require_positive
from lamaml_pl.stream import StreamInfo

SHUFFLES = ("global", "seeded")
EVAL_TASKS = ("all", "seen_and_next")
REPORTED_SPLITS = ("test", "validation")


class TaskSequentialDataModule(pl.LightningDataModule):
    """Base class: subclasses say how to build a task's train set and the evaluation batches
    (``n_tasks``/``benchmark_tasks`` null: known once the data are read), and whether the
    evaluation sets depend on the run's seed (``seeded_evaluation``: a
    population then scores each seed's members on their own sets)."""

    seeded_evaluation: ClassVar[bool] = True
    batches_per_step = 1  # incoming batches per Lightning step (a run sets trainer.batches_per_step)

    def __init__(
        self,
        name: str,
        n_tasks: int | None,
        benchmark_tasks: int | None,
        epochs_per_task: int,
        batch_size: int,
        eval_batch_size: int,
        joint: bool,
        shuffle: str,
        seed: int,
        eval_tasks: str,
        validation: float,
        reported_split: str,
    ):
        super().__init__()
        if shuffle not in SHUFFLES:
            raise ConfigError(f"data.shuffle={shuffle!r} is unknown: use one of {', '.join(SHUFFLES)}")
        if eval_tasks not in EVAL_TASKS:
            raise ConfigError(f"data.eval_tasks={eval_tasks!r} is unknown: use one of {', '.join(EVAL_TASKS)}")
        if not 0 <= validation < 1:
            raise ConfigError(f"data.validation={validation} is not allowed: use a fraction in [0, 1)")
        if reported_split not in REPORTED_SPLITS:
            raise ConfigError(
                f"data.reported_split={reported_split!r} is unknown: use one of {', '.join(REPORTED_SPLITS)}"
            )
        require_positive(
            "data", epochs_per_task=epochs_per_task, batch_size=batch_size, eval_batch_size=eval_batch_size
        )
        if n_tasks is not None:
            require_positive("data", n_tasks=n_tasks)
        if n_tasks is not None and benchmark_tasks is not None and n_tasks > benchmark_tasks:
            raise ConfigError(
                f"data.n_tasks={n_tasks} is larger than the {name} benchmark, "
                f"which has {benchmark_tasks} tasks: use 1..{benchmark_tasks}"
            )
        self.name = name
        self.n_tasks = benchmark_tasks if n_tasks is None else n_tasks  # null: all of the benchmark's
        self.benchmark_tasks = benchmark_tasks
        self.epochs_per_task = epochs_per_task
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.joint = joint
        self.shuffle = shuffle
        self.seed = seed
        self.eval_tasks = eval_tasks
        self.validation = float(validation)  # held-out share of the training data (0: no validation split)
        self.reported_split = reported_split
        self._ready = False

    @property
    def max_epochs(self) -> int:
        self.setup()
        return self.epochs_per_task if self.joint else self.n_tasks * self.epochs_per_task

    def task_of_epoch(self, epoch: int) -> int:
        """The task being learned; in joint mode all of them, tagged as the last."""
        if self.joint:
            return self.n_tasks - 1
        return min(epoch // self.epochs_per_task, self.n_tasks - 1)

    def setup(self, stage: str | None = None) -> None:
        if not self._ready:
            self.load()
            self._ready = True

    @property
    def info(self) -> StreamInfo:
        """The stream as the learner sees it. With ``reported_split=validation`` (tuning) the
        validation sets are the scored matrix and the test sets are never evaluated."""
        self.setup()
        info = self.stream_info()
        if self.reported_split == "test":
            return info
        if not info.val_sizes:
            raise ConfigError(
                f"data.reported_split=validation but data={self.name} holds no validation split here: "
                "set data.validation to a fraction in (0, 1)"
            )
        return replace(info, test_sizes=info.val_sizes, val_sizes=[])

    @abstractmethod
    def load(self) -> None:
        """Read the base data and build the per-task transforms (called once)."""

    @abstractmethod
    def stream_info(self) -> StreamInfo: ...

    @abstractmethod
    def train_dataset(self, task: int) -> Dataset: ...

    @abstractmethod
    def eval_dataset(self, n_tasks: int) -> Dataset:
        """The test sets of tasks ``0 .. n_tasks-1`` as ``(x, y, t)`` batches (``batch_size=None``)."""

    def val_dataset(self, n_tasks: int) -> Dataset | None:
        """Held-out validation batches for model selection, if the benchmark has a split."""
        return None

    def tasks_to_evaluate(self) -> int:
        """How many tasks (a prefix) this evaluation covers: all of them, or with
        ``eval_tasks=seen_and_next`` during training the tasks seen so far and the next one —
        all that RA, BTI, LA and FWT need (FWT: the next task and the row before training, which
        stays complete); the other entries of the row are left empty (NaN)."""
        trainer = self.trainer
        if self.eval_tasks == "all" or self.joint or trainer is None or trainer.state.fn != "fit":
            return self.n_tasks
        return min(self.n_tasks, self.task_of_epoch(trainer.current_epoch) + 2)

    def eval_device(self) -> torch.device:
        """Where the evaluated model lives (the CPU outside a Trainer)."""
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    @abstractmethod
    def describe(self) -> dict:
        """What results.json records about the data: source, task transforms, sizes."""

    def train_dataloader(self) -> DataLoader:
        """The pass's batches, ``batches_per_step`` at a time (:func:`window_loader`), cut from the
        task's samples on the learner's device. Reshuffled every epoch: ``shuffle=global`` draws
        the order from torch's global RNG (as the original); ``seeded`` from a generator seeded
        with (seed, epoch), so the order does not depend on what else consumed random numbers."""
        epoch = self.trainer.current_epoch if self.trainer else 0
        generator = torch.Generator().manual_seed(pass_seed(self.seed, epoch)) if self.shuffle == "seeded" else None
        dataset = self.pass_dataset(epoch)
        return window_loader(dataset, self.pass_batches(dataset, generator), self.batches_per_step, generator)

    def pass_dataset(self, epoch: int) -> TaskTensorDataset:
        """The samples of training pass ``epoch`` (joint: every task's) on the learner's device,
        augmented from the pass's own generator."""
        if self.joint:
            dataset = TaskTensorDataset.concat([self.train_dataset(k) for k in range(self.n_tasks)])
        else:
            dataset = self.train_dataset(self.task_of_epoch(epoch))
        return dataset.for_pass(self.eval_device(), augmentation_generator(self.seed, epoch))

    def pass_batches(self, dataset: TaskTensorDataset, generator: torch.Generator | None) -> Sampler:
        """The pass's batches of sample indices: ``batch_size`` at a time in a shuffled order."""
        return BatchSampler(RandomSampler(dataset, generator=generator), self.batch_size, drop_last=False)

    def eval_split(self, dataloader_idx: int) -> tuple[int, torch.Tensor | None]:
        """What evaluation loader ``dataloader_idx`` holds: the split (0: the test sets, 1: the
        validation sets) and the population members it scores (None: every one)."""
        return dataloader_idx, None

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The test sets (the reported matrix); then the validation sets, where there are any.
        With ``reported_split=validation``: the validation sets alone."""
        n_tasks = self.tasks_to_evaluate()
        held_out = self.val_dataset(n_tasks)
        if self.reported_split == "validation":
            return DataLoader(held_out, batch_size=None, shuffle=False)
        test = DataLoader(self.eval_dataset(n_tasks), batch_size=None, shuffle=False)
        return test if held_out is None else [test, DataLoader(held_out, batch_size=None, shuffle=False)]
