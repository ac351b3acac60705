"""Per-task accuracy over one evaluation pass, as a torchmetrics Metric (sum states: DDP-safe)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric


class TaskAccuracy(Metric):
    """Accuracy of every task from batches that carry their task ids; with ``members``, of every
    member of a population at once (predictions ``(members, B)`` of one shared batch).

    ``denominators`` (optional, one per task) replaces the number of samples seen; the MNIST
    evaluation of the original divides by the full test-set size although it scores one sample
    fewer (Q12 of docs/quirks.md).
    """

    full_state_update = False

    def __init__(self, n_tasks: int, denominators: Sequence[int] | None = None, members: int | None = None):
        super().__init__()
        lead = () if members is None else (members,)
        self.add_state("correct", default=torch.zeros(*lead, n_tasks, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros(*lead, n_tasks, dtype=torch.float64), dist_reduce_fx="sum")
        self.denominators = None if denominators is None else torch.tensor(denominators, dtype=torch.float64)

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, task_ids: torch.Tensor, members: torch.Tensor | None = None
    ) -> None:
        """``members``: the members (rows) these predictions belong to, when not all of them (a
        population whose members' test sets differ: each set is scored for its own members)."""
        # out of place: states reset under Lightning's inference mode cannot be updated in place
        hits = (preds == target).to(torch.float64)
        seen = torch.ones_like(task_ids, dtype=torch.float64).expand_as(hits)
        if members is None:
            self.correct = self.correct.index_add(-1, task_ids, hits)
            self.total = self.total.index_add(-1, task_ids, seen)
            return
        self.correct = self.correct.index_put((members,), self.correct[members].index_add(-1, task_ids, hits))
        self.total = self.total.index_put((members,), self.total[members].index_add(-1, task_ids, seen))

    def compute(self) -> torch.Tensor:
        denominators = self.total if self.denominators is None else self.denominators.to(self.total.device)
        return self.correct / denominators.clamp_min(1)

    def finish(self) -> torch.Tensor:
        """This pass's accuracies on the CPU, ``(tasks,)`` or ``(members, tasks)``, NaN for the
        tasks it did not evaluate (``data.eval_tasks``); the counts start over."""
        rows = self.compute().reshape(self.correct.shape).cpu()  # torchmetrics squeezes a 1-task row to 0-d
        rows[self.total.cpu() == 0] = float("nan")
        self.reset()
        return rows
