"""Online fine-tuning for N members (:class:`lamaml_pl.algos.Online`, batched): one SGD step
on each incoming batch, no clipping; lr may differ between members. Draws nothing."""

from __future__ import annotations

import torch

from lamaml_pl.algos.fast_mlp import one_hot
from lamaml_pl.algos.gradients import sgd_
from lamaml_pl.algos.online import Online
from lamaml_pl.population import stacked_mlp
from lamaml_pl.population.base import PopulationLearner
from lamaml_pl.population.member_rng import MemberRNG
from lamaml_pl.stream import StreamInfo


class PopulationOnline(PopulationLearner):
    def __init__(self, learners: list[Online], rngs: list[MemberRNG], stream: StreamInfo):
        super().__init__(learners, rngs, stream)
        self.register_buffer("lr", self.member_values(learners, "lr"), persistent=False)

    def plan_epoch(self, batch_sizes: list[int]) -> list[tuple]:
        return [() for _ in batch_sizes]

    @torch.no_grad()
    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int, draws: tuple) -> torch.Tensor:
        weights = list(self.weights)
        out, grads = stacked_mlp.grads(weights, x, one_hot(y, weights[-1].shape[-1], x.dtype))
        sgd_(weights, grads, self.lr)
        return stacked_mlp.cross_entropy(out, y)
