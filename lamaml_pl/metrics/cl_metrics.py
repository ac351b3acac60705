"""Continual-learning metrics from the accuracy matrix (GEM/MER code).

R[i, j] is the accuracy on task j after training task i; b is the row evaluated before any
training. All four numbers are means over all T tasks, as the original code computes them
(Q13: the j = T-1 term of BTI and the j = 0 term of FWT are 0 and still counted).
"""

from __future__ import annotations

import torch

INIT_TAG = -1  # tag of the evaluation row taken before any training


def retained_accuracy(R: torch.Tensor) -> float:
    """RA: mean accuracy over all tasks after the last task."""
    return R[-1].mean().item()


def learning_accuracy(R: torch.Tensor) -> float:
    """LA: mean accuracy on each task right after learning it (the diagonal)."""
    return R.diagonal().mean().item()


def backward_transfer(R: torch.Tensor) -> float:
    """BTI: mean over tasks of R[T-1, j] - R[j, j]; negative means forgetting."""
    return (R[-1] - R.diagonal()).mean().item()


def forward_transfer(R: torch.Tensor, baseline: torch.Tensor) -> float:
    """FWT: mean over tasks of R[j-1, j] - b[j], with the j = 0 entry fixed at 0."""
    T = R.shape[0]
    gains = torch.zeros(T, dtype=R.dtype)
    if T > 1:
        gains[1:] = R.diagonal(offset=1) - baseline[1:]
    return gains.mean().item()


def cl_metrics(R: torch.Tensor, baseline: torch.Tensor) -> dict[str, float]:
    """RA, BTI, LA and FWT in percent, from accuracies given as fractions."""
    R, baseline = R.double(), baseline.double()
    return {
        "ra": 100 * retained_accuracy(R),
        "bti": 100 * backward_transfer(R),
        "la": 100 * learning_accuracy(R),
        "fwt": 100 * forward_transfer(R, baseline),
    }


class AccuracyLog:
    """Every evaluation row of a run, each tagged with the task just trained (INIT_TAG: none).

    The matrix takes, for each task k, the last row tagged k; the baseline is the first row.
    """

    def __init__(self, n_tasks: int):
        self.n_tasks = n_tasks
        self.rows: list[list[float]] = []
        self.tags: list[int] = []

    def append(self, row: torch.Tensor | list[float], tag: int) -> None:
        row = [float(a) for a in row]
        if len(row) != self.n_tasks:
            raise ValueError(f"an accuracy row needs {self.n_tasks} entries, got {len(row)}")
        self.rows.append(row)
        self.tags.append(int(tag))

    def matrix(self) -> torch.Tensor:
        """The T x T matrix of the tasks finished so far (fewer rows while the stream runs)."""
        last_row_of = {tag: row for tag, row in zip(self.tags, self.rows) if tag != INIT_TAG}
        finished = sorted(last_row_of)
        return torch.tensor([last_row_of[k] for k in finished], dtype=torch.float64).reshape(-1, self.n_tasks)

    def baseline(self) -> torch.Tensor:
        return torch.tensor(self.rows[0], dtype=torch.float64)

    def complete(self) -> bool:
        return self.matrix().shape[0] == self.n_tasks

    def metrics(self) -> dict[str, float | int | None]:
        """All four once every task has its row. The joint IID oracle (one row, after all tasks):
        RA alone. A run stopped early: none of the four (they average over all T tasks), but
        ``tasks_trained`` and ``ra_trained``, the last row's mean over the tasks trained so far."""
        R = self.matrix()
        if self.complete():
            return cl_metrics(R, self.baseline())
        empty: dict[str, float | int | None] = {"ra": None, "bti": None, "la": None, "fwt": None}
        trained = max(self.tags) + 1 if len(R) else 0
        if trained == self.n_tasks:
            return {**empty, "ra": 100 * retained_accuracy(R)}
        if trained == 0:
            return empty
        return {**empty, "tasks_trained": trained, "ra_trained": 100 * R[-1, :trained].mean().item()}
