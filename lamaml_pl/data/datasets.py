"""Datasets that hand out whole batches, so the loaders do no per-sample Python work, and the
train loader that hands them out a window of batches at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def keep_batch(batch):
    """collate_fn for datasets whose ``__getitems__`` already returns a stacked batch."""
    return batch


class Windows(Sampler[list]):
    """A batch sampler's batches in groups of ``size`` consecutive ones (the last may be shorter):
    the incoming batches of one Lightning step. Iterating it iterates ``batches`` once, so the
    random draws of their order are those of ``batches`` alone."""

    def __init__(self, batches: Iterable, size: int):
        self.batches, self.size = batches, int(size)

    def __len__(self) -> int:
        return -(-len(self.batches) // self.size)

    def __iter__(self):
        window = []
        for batch in self.batches:
            window.append(batch)
            if len(window) == self.size:
                yield window
                window = []
        if window:
            yield window


class WindowedBatches(Dataset):
    """Item = the list of ``dataset``'s batches of one window, each fetched as a batch
    (``__getitems__`` of a list of samples, or ``__getitem__`` of a batch number)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.fetch = getattr(dataset, "__getitems__", dataset.__getitem__)

    def __getitem__(self, window: list) -> list:
        return [self.fetch(batch) for batch in window]


def window_loader(dataset: Dataset, batches: Iterable, size: int, generator: torch.Generator | None = None):
    """A train loader whose every item is a window of ``size`` batches (``batches``: the batch
    sampler, e.g. ``BatchSampler(RandomSampler(dataset), B)``): one Lightning step learns them
    all, so Lightning's per-step loop runs once per window, not once per incoming batch. The
    loader draws from the global RNG (or ``generator``) as ``DataLoader(dataset, B, shuffle=True)``
    does: one seed for its iterator, then the sampler's."""
    return DataLoader(
        WindowedBatches(dataset),
        sampler=Windows(batches, size),
        batch_size=None,
        collate_fn=keep_batch,
        generator=generator,
    )


class TaskTensorDataset(Dataset):
    """One task's training samples as tensors; yields ``(x, y, t)`` batches via ``__getitems__``.

    ``transform`` (optional) maps a stacked batch of stored inputs to model inputs, e.g. uint8
    images to augmented, normalised floats; it runs once per batch, not per sample, and takes a
    ``generator`` keyword for its random draws: ``generator``, the pass's augmentation generator
    (None: torch's global RNG).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        task_id: int | torch.Tensor,
        transform: Callable[..., torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ):
        self.x, self.y = x, y
        self.t = task_id if isinstance(task_id, torch.Tensor) else torch.full_like(y, task_id)
        self.transform, self.generator = transform, generator

    def for_pass(self, device: torch.device, generator: torch.Generator | None) -> TaskTensorDataset:
        """A training pass's view: the same samples on ``device`` (batches are cut there, with no
        copy per batch), augmented from ``generator``."""
        return TaskTensorDataset(self.x.to(device), self.y.to(device), self.t.to(device), self.transform, generator)

    @classmethod
    def concat(cls, parts: list[TaskTensorDataset]) -> TaskTensorDataset:
        """Several tasks in one dataset, each sample keeping its task id (joint training)."""
        return cls(
            torch.cat([p.x for p in parts]),
            torch.cat([p.y for p in parts]),
            torch.cat([p.t for p in parts]),
            parts[0].transform,
        )

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        x, y, t = self.__getitems__([i])
        return x[0], y[0], t[0]

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices, device=self.y.device)
        x = self.x[idx]
        return (x if self.transform is None else self.transform(x, generator=self.generator)), self.y[idx], self.t[idx]


class EvalBatches(Dataset):
    """Every task's test set as a flat list of ready-made ``(x, y, t)`` batches.

    One loader over all tasks is cheaper than T loaders; batches are built lazily by
    ``make_inputs(task, start, stop)`` so no transformed test set is ever held in memory.
    """

    def __init__(
        self,
        n_tasks: int,
        n_samples: int,
        batch_size: int,
        make_inputs: Callable[[int, int, int], torch.Tensor],
        labels: torch.Tensor,
    ):
        self.n_tasks, self.n_samples, self.batch_size = n_tasks, n_samples, batch_size
        self.make_inputs, self.labels = make_inputs, labels
        self.batches_per_task = -(-n_samples // batch_size)

    def __len__(self) -> int:
        return self.n_tasks * self.batches_per_task

    def __getitem__(self, k: int):
        task, chunk = divmod(k, self.batches_per_task)
        start = chunk * self.batch_size
        stop = min(start + self.batch_size, self.n_samples)
        y = self.labels[start:stop]
        return self.make_inputs(task, start, stop), y, torch.full_like(y, task)


class TaskSetBatches(Dataset):
    """Test (or validation) sets that differ per task, as a flat list of ``(x, y, t)`` batches.

    ``sets[k]`` = task k's stored inputs and labels; ``transform`` turns a slice of stored inputs
    into model inputs when the batch is requested.
    """

    def __init__(
        self,
        sets: list[tuple[torch.Tensor, torch.Tensor]],
        batch_size: int,
        transform: Callable[[torch.Tensor], torch.Tensor],
    ):
        self.sets, self.transform = sets, transform
        self.index = [
            (task, start, min(start + batch_size, len(y)))
            for task, (_, y) in enumerate(sets)
            for start in range(0, len(y), batch_size)
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int):
        task, start, stop = self.index[k]
        x, y = self.sets[task]
        labels = y[start:stop]
        return self.transform(x[start:stop]), labels, torch.full_like(labels, task)


class TaskBalancedBatches(Sampler[list[int]]):
    """The IID oracle's batches: ``tasks_per_batch`` distinct tasks drawn
    uniformly, ``batch_size / tasks_per_batch`` distinct samples of each, shuffled; a fixed number
    of batches per epoch. Draws from torch's global RNG."""

    def __init__(self, task_ids: torch.Tensor, batch_size: int, tasks_per_batch: int, batches_per_epoch: int):
        self.members = [torch.nonzero(task_ids == k).flatten() for k in range(int(task_ids.max()) + 1)]
        self.per_task = batch_size // tasks_per_batch
        self.tasks_per_batch, self.batches_per_epoch = tasks_per_batch, batches_per_epoch

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self):
        for _ in range(self.batches_per_epoch):
            tasks = torch.randperm(len(self.members))[: self.tasks_per_batch]
            picks = [self.members[k][torch.randperm(len(self.members[k]))[: self.per_task]] for k in tasks.tolist()]
            batch = torch.cat(picks)
            yield batch[torch.randperm(len(batch))].tolist()
