"""Reservoir replay buffer as preallocated tensors on the module's device (spec/algorithms.md §0.4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lamaml_pl.errors import require_positive


class ReservoirBuffer(nn.Module):
    """Reservoir sampling over a stream of ``(x, y, task)`` samples, kept in fixed-size tensors.

    Insertion follows the original code: the ``age``-th offered sample (1-based) is appended
    while the buffer is not full; afterwards an integer p is drawn uniformly from
    ``{0, ..., age}`` — inclusive, quirk Q10 — and the sample overwrites slot p if
    p < capacity. ``exclusive=True`` draws from ``{0, ..., age-1}`` (textbook reservoir).

    A batch is inserted with one vectorised draw and no host-device sync: when two samples of
    one batch pick the same slot the later one wins, as in the sequential original; rejected
    and losing samples are written to a scratch row past the end.
    """

    def __init__(self, capacity: int, sample_shape: Sequence[int], exclusive: bool = False):
        super().__init__()
        require_positive("algo.memories", capacity)
        self.capacity = int(capacity)
        self.exclusive = exclusive
        self.age = 0  # samples offered so far; a host-side int, so sizes never need a sync
        self.register_buffer("x", torch.zeros(self.capacity + 1, *sample_shape))
        self.register_buffer("y", torch.zeros(self.capacity + 1, dtype=torch.long))
        self.register_buffer("t", torch.zeros(self.capacity + 1, dtype=torch.long))

    def __len__(self) -> int:
        return min(self.age, self.capacity)

    def add(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | int) -> None:
        """Offer a batch of samples, in order."""
        n = len(y)
        device = self.y.device
        ages = torch.arange(self.age + 1, self.age + n + 1, device=device)
        upper = ages if self.exclusive else ages + 1
        drawn = (torch.rand(n, device=device) * upper).long()
        slots = torch.where(ages <= self.capacity, ages - 1, drawn)
        slots = torch.where(slots < self.capacity, slots, self.capacity)
        order = torch.arange(n, device=device)
        last_writer = torch.full((self.capacity + 1,), -1, device=device, dtype=torch.long)
        last_writer.scatter_reduce_(0, slots, order, reduce="amax")
        slots = torch.where(last_writer[slots] == order, slots, self.capacity)
        self.x.index_put_((slots,), x.detach().to(self.x.dtype))
        self.y.index_put_((slots,), y)
        tasks = t.to(device) if isinstance(t, torch.Tensor) else torch.full((n,), int(t), device=device)
        self.t.index_put_((slots,), tasks.expand(n))  # (a fill, not a host-to-device copy of t)
        self.age += n

    def sample(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``min(k, len)`` entries drawn uniformly with replacement (empty when the buffer is)."""
        k = min(k, len(self))
        idx = torch.randint(0, max(len(self), 1), (k,), device=self.y.device)
        return self.x.index_select(0, idx), self.y.index_select(0, idx), self.t.index_select(0, idx)

    def get_extra_state(self) -> dict:
        return {"age": self.age}

    def set_extra_state(self, state: dict) -> None:
        self.age = int(state["age"])
