"""Where a learner's random numbers come from, and batches that may carry a member axis.

A learner draws through ``self.draws``: a single run from torch's global RNG, on the batch's device
(:class:`GlobalDraws`, as the original code draws); a population's members each from their own
generator (``lamaml_pl.population.member_rng.MemberDraws``), stacked along a leading member axis.
The learner's update is the same code for both.
"""

from __future__ import annotations

import torch


def shuffled_order(n: int, device: torch.device) -> torch.Tensor:
    """A uniformly random order of ``n`` samples: ``randperm`` (the original's draw) on the CPU;
    on a GPU the ranks of n uniforms, because a small CUDA ``randperm`` is computed on the host
    and copied over, which stalls the host until the GPU's queue is empty, every glance."""
    if device.type == "cpu":
        return torch.randperm(n, device=device)
    return torch.rand(n, device=device).argsort()


class GlobalDraws:
    """A single run's draws: torch's global RNG (of the device the tensors live on)."""

    def order(self, n: int, device: torch.device) -> torch.Tensor:
        return shuffled_order(n, device)

    def indices(self, high: int, k: int, device: torch.device) -> torch.Tensor:
        """``k`` integers uniform in ``[0, high)``."""
        return torch.randint(0, high, (k,), device=device)

    def uniforms(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.rand(n, device=device)

    def integers_below(self, highs: list[list[int]]) -> list[list[int]]:
        """For each member's list of bounds (a single run: one list), an integer uniform in
        ``[0, high)`` per bound, drawn in order on the CPU."""
        return [[int(torch.randint(high, ())) for high in member] for member in highs]

    def normal_(self, tensors: list[torch.Tensor]) -> None:
        """Fill ``tensors`` with standard normals, one after another."""
        for tensor in tensors:
            tensor.normal_()

    def state(self) -> None:
        return None  # the global states are checkpointed by TaskCheckpoint


GLOBAL_DRAWS = GlobalDraws()  # stateless: one for every single run


def take(batch: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``batch[index]`` along the sample axis: ``index`` ``(k,)``, or ``(members, k)`` with one
    row per member of a ``(members, B, ...)`` batch."""
    if index.dim() == 1:
        return batch.index_select(0, index)
    return batch[torch.arange(len(index), device=index.device).unsqueeze(1), index]
