"""N reservoir buffers in one set of tensors (a leading member axis), filled from given draws.

The insertion rule is :func:`lamaml_pl.algos.replay.reservoir_slots` (quirk Q10 included);
the uniform numbers come from each member's own generator (:mod:`member_rng`), so member i's
buffer holds what its single run's would. All members see the same number of samples, so the
age — and with it every size — is one host-side int.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lamaml_pl.algos.replay import reservoir_slots


class StackedReservoir(nn.Module):
    def __init__(self, n_members: int, capacity: int, sample_shape: Sequence[int], exclusive: bool = False):
        super().__init__()
        self.capacity, self.exclusive = int(capacity), exclusive
        self.age = 0
        self.register_buffer("x", torch.zeros(n_members, self.capacity + 1, *sample_shape))  # last row: scratch
        self.register_buffer("y", torch.zeros(n_members, self.capacity + 1, dtype=torch.long))

    def __len__(self) -> int:
        return min(self.age, self.capacity)

    def add(self, x: torch.Tensor, y: torch.Tensor, uniforms: torch.Tensor) -> None:
        """Offer each member's batch ``(N, B, ...)`` in order; ``uniforms`` ``(N, B)`` are the
        member's ``torch.rand(B)`` draws of this insertion."""
        n_members, n = y.shape
        slots = reservoir_slots(self.age, uniforms, self.capacity, self.exclusive)
        members = torch.arange(n_members, device=self.y.device).unsqueeze(1).expand(n_members, n)
        self.x.index_put_((members, slots), x.to(self.x.dtype))
        self.y.index_put_((members, slots), y)
        self.age += n

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Entries ``idx`` ``(N, k)`` of each member's buffer."""
        members = torch.arange(len(idx), device=idx.device).unsqueeze(1)
        return self.x[members, idx], self.y[members, idx]
