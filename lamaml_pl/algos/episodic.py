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
    ``n_memories`` samples of its task.
    """

    def __init__(self, n_tasks: int, n_memories: int, sample_shape: Sequence[int]):
        super().__init__()
        require_positive("algo", n_memories=n_memories)
        self.n_memories = int(n_memories)
        self.mem_cnt = 0
        self.register_buffer("x", torch.zeros(n_tasks, self.n_memories, *sample_shape))
        self.register_buffer("y", torch.zeros(n_tasks, self.n_memories, dtype=torch.long))

    def add(self, x: torch.Tensor, y: torch.Tensor, t: int) -> None:
        end = min(self.mem_cnt + len(y), self.n_memories)
        n = end - self.mem_cnt
        self.x[t, self.mem_cnt : end] = x[:n].detach()
        self.y[t, self.mem_cnt : end] = y[:n]
        self.mem_cnt = 0 if end == self.n_memories else end

    def get_extra_state(self) -> dict:
        return {"mem_cnt": self.mem_cnt}

    def set_extra_state(self, state: dict) -> None:
        self.mem_cnt = int(state["mem_cnt"])
