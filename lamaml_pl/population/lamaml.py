"""C-MAML, Sync-La-MAML and La-MAML for N members: the first-order MLP glance of
:mod:`lamaml_pl.algos.fast_mlp` and :meth:`LaMAML.meta_step`, batched over the member axis.

Per member: fast weights ``fast_i = θ - S_i ⊙ r`` (``S_i`` the cumulative inner gradients, ``r``
= relu(α) or α), ``∇θ = mean_i G_i`` and ``∇α = -mean_i S_i ⊙ G_i`` with ``G_i`` the meta-gradient
at ``fast_i``; then both groups norm-clipped, the α step (learn_lr) and the θ step (sync: SGD at
``opt_wt``; else ``θ -= relu(α_new) ⊙ ∇θ``). α, opt_lr, opt_wt and grad_clip_norm may differ
between members. The glance is the single runs' own (:class:`~lamaml_pl.algos.fast_mlp.FactoredGlance`
with a member axis).
"""

from __future__ import annotations

import torch
from torch import nn

from lamaml_pl.algos.cuda_graph import GraphedStep
from lamaml_pl.algos.fast_mlp import FactoredGlance
from lamaml_pl.algos.lamaml import LaMAML, hand_written_update_
from lamaml_pl.algos.replay import ReservoirBuffer
from lamaml_pl.population import stacked_mlp
from lamaml_pl.population.base import PopulationLearner
from lamaml_pl.population.member_rng import MemberRNG
from lamaml_pl.stream import StreamInfo


class PopulationLaMAML(PopulationLearner):
    def __init__(self, learners: list[LaMAML], rngs: list[MemberRNG], stream: StreamInfo, cuda_graph: bool = True):
        super().__init__(learners, rngs, stream)
        self.cuda_graph = cuda_graph
        self.graphed_glance = GraphedStep(self.glance, state=lambda: [*self.weights, *self.alpha])
        first = learners[0]
        self.learn_lr, self.sync_update = first.learn_lr, first.sync_update
        self.glances, self.replay_batch_size = first.glances, first.replay_batch_size
        self.inner_alpha_relu = first.inner_alpha_relu
        self.factored = FactoredGlance()
        self.alpha = nn.ParameterList(
            [nn.Parameter(a, requires_grad=False) for a in stacked_mlp.stack_mlps([m.alpha for m in learners])]
        )
        for name in ("opt_lr", "opt_wt", "grad_clip_norm"):
            self.register_buffer(name, self.member_values(learners, name), persistent=False)
        self.memory = ReservoirBuffer(
            first.memory.capacity, stream.input_shape, exclusive=first.memory.exclusive, members=self.n_members
        )

    def plan_epoch(self, batch_sizes: list[int]) -> list[tuple]:
        """Per batch and glance, as :meth:`LaMAML.observe` draws them: the glance's sample order,
        the replay indices, and (first glance of a task's first pass) the reservoir's uniforms."""
        plan, age = [], self.memory.age
        for size in batch_sizes:
            # the buffer's size at each glance: the batch is inserted after the first glance
            stored = [
                min(age + (size if g > 0 and self.task_epoch == 0 else 0), self.memory.capacity)
                for g in range(self.glances)
            ]
            orders, replays, uniforms = [], [], []
            for rng in self.rngs:
                member_orders, member_replays = [], []
                for glance in range(self.glances):
                    member_orders.append(rng.randperm(size))
                    member_replays.append(
                        rng.randint(max(stored[glance], 1), min(self.replay_batch_size, stored[glance]))
                    )
                    if glance == 0 and self.task_epoch == 0:
                        uniforms.append(rng.rand(size))
                orders.append(torch.stack(member_orders))
                replays.append(member_replays)
            inserts = torch.stack(uniforms) if uniforms else torch.empty(len(self.rngs), 0)
            replays = [torch.stack([member[g] for member in replays]) for g in range(self.glances)]
            plan.append((torch.stack(orders), *replays, inserts))
            if self.task_epoch == 0:
                age += size
        return plan

    @torch.no_grad()
    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int, draws: tuple) -> torch.Tensor:
        orders, *replays, inserts = draws
        members = torch.arange(self.n_members, device=x.device).unsqueeze(1)
        for glance in range(self.glances):
            order = orders[:, glance]
            x, y = x[members, order], y[members, order]
            mem_x, mem_y = self.memory.gather(replays[glance])
            step = self.graphed_glance if self.cuda_graph and x.is_cuda else self.glance
            meta_loss = step(x, y, torch.cat([mem_x, x], dim=1), torch.cat([mem_y, y], dim=1))
            if glance == 0 and self.task_epoch == 0:
                self.memory.add(x, y, t, inserts)
        return meta_loss

    def glance(self, x, y, replay_x, replay_y) -> torch.Tensor:
        """One meta-update of every member (:func:`hand_written_update_`); returns the mean
        meta-losses (N,). No host sync: on a GPU it runs as a CUDA graph (``population.cuda_graph``)."""
        return hand_written_update_(self, list(self.weights), list(self.alpha), replay_x, replay_y, y.shape[1])
