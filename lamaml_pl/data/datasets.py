"""Datasets that hand out whole batches, so the loaders do no per-sample Python work."""
from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import Dataset


def keep_batch(batch):
    """collate_fn for datasets whose ``__getitems__`` already returns a stacked batch."""
    return batch


class TaskTensorDataset(Dataset):
    """One task's training samples as tensors; yields ``(x, y, t)`` batches via ``__getitems__``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, task_id: int | torch.Tensor):
        self.x, self.y = x, y
        self.t = task_id if isinstance(task_id, torch.Tensor) else torch.full_like(y, task_id)

    @classmethod
    def concat(cls, parts: list["TaskTensorDataset"]) -> "TaskTensorDataset":
        """Several tasks in one dataset, each sample keeping its task id (joint training)."""
        return cls(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]), torch.cat([p.t for p in parts]))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i], self.t[i]

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices)
        return self.x[idx], self.y[idx], self.t[idx]


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
