"""C-MAML, Sync-La-MAML and La-MAML for N members: the first-order MLP glance of
:mod:`lamaml_pl.algos.fast_mlp` and :meth:`LaMAML.meta_step`, batched over the member axis.

Per member: fast weights ``fast_i = θ - S_i ⊙ r`` (``S_i`` the cumulative inner gradients, ``r``
= relu(α) or α), ``∇θ = mean_i G_i`` and ``∇α = -mean_i S_i ⊙ G_i`` with ``G_i`` the meta-gradient
at ``fast_i``; then both groups norm-clipped, the α step (learn_lr) and the θ step (sync: SGD at
``opt_wt``; else ``θ -= relu(α_new) ⊙ ∇θ``). α, opt_lr, opt_wt and grad_clip_norm may differ
between members. The sums are computed as the members' single runs compute them: factored
(``algo.factored_glance``, the default) or sample by sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lamaml_pl.algos.cuda_graph import GraphedStep
from lamaml_pl.algos.fast_mlp import one_hot, stacked_views, tail_grads
from lamaml_pl.algos.lamaml import LaMAML
from lamaml_pl.population import stacked_mlp
from lamaml_pl.population.base import PopulationLearner
from lamaml_pl.population.member_rng import MemberRNG
from lamaml_pl.population.reservoir import StackedReservoir
from lamaml_pl.stream import StreamInfo


class PopulationLaMAML(PopulationLearner):
    def __init__(self, learners: list[LaMAML], rngs: list[MemberRNG], stream: StreamInfo, cuda_graph: bool = True):
        super().__init__(learners, rngs, stream)
        self.cuda_graph = cuda_graph
        self.graphed_glance = GraphedStep(self.glance, state=lambda: [*self.weights, *self.alpha])
        first = learners[0]
        self.learn_lr, self.sync_update = first.learn_lr, first.sync_update
        self.glances, self.replay_batch_size = first.glances, first.replay_batch_size
        self.inner_clamp, self.inner_alpha_relu = first.inner_clamp, first.inner_alpha_relu
        self.factored_glance = first.factored_glance
        self.alpha = nn.ParameterList(
            [nn.Parameter(a, requires_grad=False) for a in stacked_mlp.stack_mlps([m.alpha for m in learners])]
        )
        for name in ("opt_lr", "opt_wt", "grad_clip_norm"):
            self.register_buffer(name, self.member_values(learners, name), persistent=False)
        self.memory = StackedReservoir(
            self.n_members, first.memory.capacity, stream.input_shape, exclusive=first.memory.exclusive
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
                self.memory.add(x, y, inserts)
        return meta_loss

    def glance(self, x, y, replay_x, replay_y) -> torch.Tensor:
        """One meta-update of every member; returns the mean meta-losses (N,). No host sync:
        on a GPU it runs as a CUDA graph (``population.cuda_graph``)."""
        weights, alpha = list(self.weights), list(self.alpha)
        rates = [F.relu(a) if self.inner_alpha_relu else a for a in alpha]
        if self.factored_glance:
            losses, grad_theta, grad_rate = self.factored_grads(weights, rates, x, y, replay_x, replay_y)
        else:
            losses, grad_theta, grad_rate = self.sample_by_sample_grads(weights, rates, x, y, replay_x, replay_y)
        if self.learn_lr and self.inner_alpha_relu:
            torch._foreach_mul_(grad_rate, [a > 0 for a in alpha])
        self.meta_step(weights, alpha, grad_theta, grad_rate)
        return losses

    def sample_by_sample_grads(self, weights, rates, x, y, replay_x, replay_y) -> tuple:
        """Each member's mean meta-loss, ∇θ and ∇rate, one inner step after the other."""
        n_classes = weights[-1].shape[-1]
        targets, replay_targets = one_hot(y, n_classes, x.dtype), one_hot(replay_y, n_classes, x.dtype)
        fast = weights
        cumulative = [torch.zeros_like(w) for w in weights]
        grad_theta = [torch.zeros_like(w) for w in weights]
        grad_rate = [torch.zeros_like(w) for w in weights]
        losses = []
        n = y.shape[1]
        for i in range(n):
            _, inner = stacked_mlp.grads(fast, x[:, i : i + 1], targets[:, i : i + 1])
            if self.inner_clamp:
                inner = [g.clamp(-c, c) for g, c in zip(inner, self.clip_bounds(inner))]
            torch._foreach_add_(cumulative, inner)
            fast = torch._foreach_sub(fast, torch._foreach_mul(inner, rates))
            out, outer = stacked_mlp.grads(fast, replay_x, replay_targets)
            torch._foreach_add_(grad_theta, outer)
            torch._foreach_addcmul_(grad_rate, cumulative, outer)
            losses.append(stacked_mlp.cross_entropy(out, replay_y))
        losses = torch.stack(losses, dim=1).mean(dim=1)
        return losses, torch._foreach_div(grad_theta, n), torch._foreach_div(grad_rate, -n)

    def factored_grads(self, weights, rates, x, y, replay_x, replay_y) -> tuple:
        """:class:`~lamaml_pl.algos.fast_mlp.FactoredGlance` for every member at once (the same
        sums with a member axis in front; no blank-pixel skipping: the members' digits differ).
        ∇rate is None without learn_lr (C-MAML)."""
        members, n, m = x.shape[0], x.shape[1], replay_x.shape[1]
        w1, r1, tail = weights[0], rates[0], weights[1:]
        shapes = [w[0] for w in tail]
        n_classes = tail[-1].shape[-1]
        targets, replay_targets = one_hot(y, n_classes, x.dtype), one_hot(replay_y, n_classes, x.dtype)
        tail_rate = torch.cat([r.flatten(1) for r in rates[1:]], dim=1)

        # the inner loop: row (member, j) of ``fast`` / ``inner`` = the tail after step j / its g_j
        fast = x.new_empty(members * n, tail_rate.shape[1])
        inner = torch.empty_like(fast)
        fast_sets, inner_sets = stacked_views(fast, shapes), stacked_views(inner, shapes)
        delta = x.new_empty(members, n, w1.shape[1])
        first = torch.bmm(x, w1.transpose(1, 2))
        rows, cols = torch.triu_indices(n, n, 1, device=x.device)
        pair_shifts = torch.bmm(x[:, rows] * x[:, cols], r1.transpose(1, 2))
        before, before_flat = tail, torch.cat([w.flatten(1) for w in tail], dim=1)
        for j in range(n):
            _, dz = tail_grads(
                before,
                first[:, j : j + 1],
                targets[:, j : j + 1],
                [v.view(members, n, *v.shape[1:])[:, j] for v in inner_sets],
            )
            delta[:, j] = dz[:, 0]
            start = j * n - j * (j + 1) // 2
            first[:, j + 1 :].addcmul_(pair_shifts[:, start : start + n - 1 - j], dz, value=-1)
            after = fast.view(members, n, -1)[:, j]
            torch.addcmul(before_flat, inner.view(members, n, -1)[:, j], tail_rate, value=-1, out=after)
            before, before_flat = [v.view(members, n, *v.shape[1:])[:, j] for v in fast_sets], after

        # the meta pass of every member's n fast-weight sets at once
        masked = (replay_x.unsqueeze(1) * x.unsqueeze(2)).view(members, n * m, -1)
        upper = torch.ones(n, n, dtype=x.dtype, device=x.device).triu_()
        shifts = torch.bmm(masked, r1.transpose(1, 2)).view(members, n, m, -1).mul_(delta.unsqueeze(2))
        shifts = torch.matmul(upper.t(), shifts.view(members, n, -1)).view(members, n, m, -1)
        first = (torch.bmm(replay_x, w1.transpose(1, 2)).unsqueeze(1) - shifts).view(members * n, m, -1)
        outer = torch.empty_like(inner)
        step_targets = replay_targets.unsqueeze(1).expand(-1, n, -1, -1).reshape(members * n, m, n_classes)
        out, dz = tail_grads(fast_sets, first, step_targets, stacked_views(outer, shapes))
        losses = stacked_mlp.cross_entropy(out.view(members, n * m, n_classes), replay_y.repeat(1, n))
        dz = dz.view(members, n, m, -1)
        grad_theta = [
            torch.bmm(dz.sum(1).transpose(1, 2), replay_x).div_(n),
            *stacked_views(outer.view(members, n, -1).sum(1).div_(n), shapes),
        ]
        if not self.learn_lr:
            return losses, grad_theta, None
        later = torch.matmul(upper, outer.view(members, n, -1))
        rate_tail = (inner.view(members, n, -1) * later).sum(1).div_(-n)
        suffix = torch.matmul(upper, dz.view(members, n, -1)).view(members, n, m, -1).mul_(delta.unsqueeze(2))
        rate_w1 = torch.bmm(suffix.view(members, n * m, -1).transpose(1, 2), masked).div_(-n)
        return losses, grad_theta, [rate_w1, *stacked_views(rate_tail, shapes)]

    def clip_bounds(self, like: list[torch.Tensor]) -> list[torch.Tensor]:
        return [stacked_mlp.per_member(self.grad_clip_norm, g) for g in like]

    def meta_step(self, weights, alpha, grad_theta, grad_rate) -> None:
        stacked_mlp.clip_norms_(grad_theta, self.grad_clip_norm)
        if self.learn_lr:
            stacked_mlp.clip_norms_(grad_rate, self.grad_clip_norm)
            for a, g in zip(alpha, grad_rate):
                a.sub_(g * stacked_mlp.per_member(self.opt_lr, g))
        for w, g, a in zip(weights, grad_theta, alpha):
            step = g * stacked_mlp.per_member(self.opt_wt, g) if self.sync_update else g * F.relu(a)
            w.sub_(step)
