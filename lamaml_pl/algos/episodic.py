"""Per-task episodic memory of GEM / A-GEM: a ring buffer of ``n_memories`` samples per task."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lamaml_pl.errors import require_positive


class TaskRingMemory(nn.Module):
    """Row t holds task t's samples; one write position ``mem_cnt`` shared by all rows.

    As in GEM's code, the position is not reset when the task changes, and a batch larger than
    the room left before the end of the row is cut (its first samples are written); the
    position wraps to 0 when the row is full. With batch size 1 a row ends up holding the last
    ``n_memories`` samples of its task. ``members``: one memory per population member in the
    same tensors (a leading member axis); every member's batches are the same size, so the
    position is one host-side int.
    """

    def __init__(self, n_tasks: int, n_memories: int, sample_shape: Sequence[int], members: int | None = None):
        super().__init__()
        require_positive("algo", n_memories=n_memories)
        self.n_memories = int(n_memories)
        self.mem_cnt = 0
        self.lead = () if members is None else (slice(None),)  # the member axis, where there is one
        lead = () if members is None else (members,)
        self.register_buffer("x", torch.zeros(*lead, n_tasks, self.n_memories, *sample_shape))
        self.register_buffer("y", torch.zeros(*lead, n_tasks, self.n_memories, dtype=torch.long))

    def add(self, x: torch.Tensor, y: torch.Tensor, t: int) -> None:
        end = min(self.mem_cnt + y.shape[-1], self.n_memories)
        n = end - self.mem_cnt
        self.x[(*self.lead, t, slice(self.mem_cnt, end))] = x[(*self.lead, slice(n))].detach()
        self.y[(*self.lead, t, slice(self.mem_cnt, end))] = y[..., :n]
        self.mem_cnt = 0 if end == self.n_memories else end

    def rows(self, tasks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The memory rows of ``tasks``: x ``[..., len(tasks), n_memories, ...]`` and y."""
        return self.x[(*self.lead, tasks)], self.y[(*self.lead, tasks)]

    def get_extra_state(self) -> dict:
        return {"mem_cnt": self.mem_cnt}

    def set_extra_state(self, state: dict) -> None:
        self.mem_cnt = int(state["mem_cnt"])
