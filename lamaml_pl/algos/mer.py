"""MER: Meta-Experience Replay, Algorithm 1.

Riemer et al., "Learning to Learn without Forgetting by Maximizing Transfer and Minimizing
Interference", ICLR 2019. Examples are processed one at a time. For each example:
A = θ; repeat ``batches_per_example`` times { W = θ; the batch is the current example followed
by up to ``replay_batch_size`` samples drawn from the reservoir (MER's ``getBatch`` puts the
example first; La-MAML's replay batches put it last); one SGD step per sample of that batch, in
order; θ ← W + β(θ − W) }; θ ← A + γ(θ − A); offer the example to the reservoir.

On a GPU one example's whole loop (``batches_per_example`` × (1 + ``replay_batch_size``)
single-sample steps, 260 on CIFAR) can replay as one CUDA graph (``cuda_graph``): launched one
kernel at a time it is a few thousand launches per example.

``grad_clip_norm`` (Q18): the La-MAML copy norm-clips every per-sample gradient (10 in its CIFAR
runs); the original MER, whose numbers fill the MNIST table, does not clip (null).

A population's members (lr, beta and gamma may differ) take the same steps, each on its own
example, replay draws and buffer.
"""

from __future__ import annotations

import torch
from torch import nn

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.cuda_graph import GraphedStep
from lamaml_pl.algos.gradients import clip_norm_, per_member, sgd_
from lamaml_pl.algos.replay import ReservoirBuffer
from lamaml_pl.errors import ConfigError, require_positive, require_replay_fits
from lamaml_pl.stream import StreamInfo


class MER(ContinualLearner):
    population_axes = ("lr", "beta", "gamma")

    def __init__(
        self,
        name: str,
        net: nn.Module,
        stream: StreamInfo,
        lr: float,
        beta: float,
        gamma: float,
        memories: int,
        replay_batch_size: int,
        batches_per_example: int,
        grad_clip_norm: float | None,
        reservoir_exclusive: bool,
        cuda_graph: bool,
        class_il_loss: str,
    ):
        super().__init__(name, net, stream, class_il_loss)
        require_positive("algo", lr=lr, replay_batch_size=replay_batch_size, batches_per_example=batches_per_example)
        for key, value in (("algo.beta", beta), ("algo.gamma", gamma)):
            if not 0 < value <= 1:
                raise ConfigError(f"{key}={value} is not allowed: Reptile rates must lie in (0, 1]")
        if grad_clip_norm is not None:
            require_positive("algo", grad_clip_norm=grad_clip_norm)
        require_replay_fits(int(replay_batch_size), int(memories))
        self.save_hyperparameters(ignore=["name", "net", "stream"])
        self.lr, self.beta, self.gamma = lr, beta, gamma
        self.replay_batch_size, self.steps = int(replay_batch_size), int(batches_per_example)
        self.grad_clip_norm = grad_clip_norm
        self.memory = ReservoirBuffer(memories, stream.input_shape, exclusive=reservoir_exclusive)
        self.cuda_graph = cuda_graph
        self.graphed_update = GraphedStep(self.example_update, state=self.member_weights, key=self.graph_key)

    def stack_members(self, learners: list[MER]) -> None:
        # the clip too (one value, shared): a member's gradient is clipped by its own norm
        self.stack_values(learners, "lr", "beta", "gamma", *(["grad_clip_norm"] if self.grad_clip_norm else []))
        self.memory = ReservoirBuffer(
            self.memory.capacity, self.stream.input_shape, exclusive=self.memory.exclusive, members=self.n_members
        )

    def configure_optimizers(self):
        return []  # the many single-sample SGD steps are written out in sgd_step (one lr per member)

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        axis, tasks = self.sample_axis, torch.full_like(y, t)
        for i in range(y.shape[-1]):
            example = [batch.narrow(axis, i, 1) for batch in (x, y, tasks)]
            # every batch's replayed samples drawn before the example's steps (they draw nothing)
            replay = self.memory.sample(self.replay_batch_size, self.draws, batches=self.steps)
            full = replay[1].shape[-1] == self.replay_batch_size  # a fixed shape from here on
            update = self.graphed_update if self.cuda_graph and x.is_cuda and full else self.example_update
            loss = update(*example, *replay)
            self.memory.add(example[0], example[1], t, self.draws.uniforms(1, y.device))
        return loss.detach()

    def example_update(self, x, y, t, replay_x, replay_y, replay_t) -> torch.Tensor:
        """Algorithm 1 for one example and its ``steps`` replay batches (a population's: every
        member's own): no host sync, fixed shapes once the reservoir can fill a batch, so on a GPU
        it replays as one CUDA graph. Returns the loss the original logs (the last batch's summed,
        over ``steps``; per member)."""
        weights, axis = self.member_weights(), self.sample_axis
        before_example = [w.detach().clone() for w in weights]
        for step in range(self.steps):
            before_batch = [w.detach().clone() for w in weights]
            batch = [
                torch.cat([new, old.select(axis, step)], dim=axis)
                for new, old in ((x, replay_x), (y, replay_y), (t, replay_t))
            ]
            losses = [self.sgd_step(weights, *(b.narrow(axis, j, 1) for b in batch)) for j in range(batch[1].shape[-1])]
            interpolate(weights, before_batch, self.beta)
        interpolate(weights, before_example, self.gamma)
        return torch.stack(losses).sum(0) / self.steps

    def sgd_step(self, weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        loss = self.loss(self.net_logits(x), y, t)
        grads = list(torch.autograd.grad(loss.sum(), weights))  # a population: each member's own loss
        with torch.no_grad():
            if self.grad_clip_norm is not None:
                clip_norm_(grads, self.grad_clip_norm)
            sgd_(weights, grads, self.lr)
        return loss.detach()


@torch.no_grad()
def interpolate(weights: list[torch.Tensor], start: list[torch.Tensor], rate: float | torch.Tensor) -> None:
    """Reptile: θ ← start + rate · (θ − start), in place; ``rate`` one value per member for a population."""
    for w, s in zip(weights, start):
        w.copy_(torch.lerp(s, w, rate if isinstance(rate, float) else per_member(rate, w)))
