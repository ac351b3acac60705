"""ER for N members (:class:`lamaml_pl.algos.ER`, batched): per glance an SGD step on the mean
cross-entropy of [replayed samples; the incoming batch], norm-clipped; then the batch is offered
to the reservoir. lr and grad_clip_norm may differ between members."""

from __future__ import annotations

import torch

from lamaml_pl.algos.er import ER
from lamaml_pl.algos.fast_mlp import one_hot
from lamaml_pl.algos.gradients import clip_norm_, sgd_
from lamaml_pl.algos.replay import ReservoirBuffer
from lamaml_pl.population import stacked_mlp
from lamaml_pl.population.base import PopulationLearner
from lamaml_pl.population.member_rng import MemberRNG
from lamaml_pl.stream import StreamInfo


class PopulationER(PopulationLearner):
    def __init__(self, learners: list[ER], rngs: list[MemberRNG], stream: StreamInfo):
        super().__init__(learners, rngs, stream)
        first = learners[0]
        self.glances, self.replay_batch_size = first.glances, first.replay_batch_size
        self.insert_every_epoch = first.insert_every_epoch
        for name in ("lr", "grad_clip_norm"):
            self.register_buffer(name, self.member_values(learners, name), persistent=False)
        self.memory = ReservoirBuffer(
            first.memory.capacity, stream.input_shape, exclusive=first.memory.exclusive, members=self.n_members
        )

    @property
    def inserting(self) -> bool:
        return self.insert_every_epoch or self.task_epoch == 0

    def plan_epoch(self, batch_sizes: list[int]) -> list[tuple]:
        """Per batch, as :meth:`ER.observe` draws them: a replay draw per glance, then the
        reservoir's uniforms."""
        plan, age = [], self.memory.age
        for size in batch_sizes:
            stored = min(age, self.memory.capacity)
            k = min(self.replay_batch_size, stored)
            replays, uniforms = [], []
            for rng in self.rngs:
                replays.append(torch.stack([rng.randint(max(stored, 1), k) for _ in range(self.glances)]))
                if self.inserting:
                    uniforms.append(rng.rand(size))
            inserts = torch.stack(uniforms) if uniforms else torch.empty(len(self.rngs), 0)
            plan.append((torch.stack(replays), inserts))
            if self.inserting:
                age += size
        return plan

    @torch.no_grad()
    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int, draws: tuple) -> torch.Tensor:
        replays, inserts = draws
        weights = list(self.weights)
        for glance in range(self.glances):
            mem_x, mem_y = self.memory.gather(replays[:, glance])
            batch_y = torch.cat([mem_y, y], dim=1)
            out, grads = stacked_mlp.grads(
                weights, torch.cat([mem_x, x], dim=1), one_hot(batch_y, weights[-1].shape[-1], x.dtype)
            )
            loss = stacked_mlp.cross_entropy(out, batch_y)
            clip_norm_(grads, self.grad_clip_norm)
            sgd_(weights, grads, self.lr)
        if self.inserting:
            self.memory.add(x, y, t, inserts)
        return loss
