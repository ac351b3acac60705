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
"""

from __future__ import annotations

import torch
from torch import nn

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.cuda_graph import GraphedStep
from lamaml_pl.algos.replay import ReservoirBuffer
from lamaml_pl.errors import ConfigError, require_positive, require_replay_fits
from lamaml_pl.stream import StreamInfo


class MER(ContinualLearner):
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
    ):
        super().__init__(name, net, stream)
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
        self.graphed_update = GraphedStep(
            self.example_update, state=lambda: list(self.net.parameters()), key=self.graph_key
        )

    def configure_optimizers(self):
        # holds the lr (so schedulers and checkpoints see it); the many tiny per-sample steps
        # are applied directly in sgd_step, which is cheaper than optimizer.step()
        return torch.optim.SGD(self.net.parameters(), lr=self.lr)

    def graph_key(self) -> tuple:
        return super().graph_key(), self.optimizers().param_groups[0]["lr"]  # both baked into the graph

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        tasks = torch.full_like(y, t)
        for i in range(len(y)):
            # every batch's replayed samples drawn before the example's steps (they draw nothing)
            replay = self.memory.sample(self.replay_batch_size, batches=self.steps)
            full = replay[1].shape[-1] == self.replay_batch_size  # a fixed shape from here on
            update = self.graphed_update if self.cuda_graph and x.is_cuda and full else self.example_update
            loss = update(x[i : i + 1], y[i : i + 1], tasks[i : i + 1], *replay)
            self.memory.add(x[i : i + 1], y[i : i + 1], t)
        return loss.detach()

    def example_update(self, x, y, t, replay_x, replay_y, replay_t) -> torch.Tensor:
        """Algorithm 1 for one example and its ``steps`` replay batches: no host sync, fixed
        shapes once the reservoir can fill a batch, so on a GPU it replays as one CUDA graph.
        Returns the loss the original logs (the last batch's summed, over ``steps``)."""
        params = list(self.net.parameters())
        lr = self.optimizers().param_groups[0]["lr"]
        before_example = [p.detach().clone() for p in params]
        for step in range(self.steps):
            before_batch = [p.detach().clone() for p in params]
            batch = [torch.cat([new, old[step]]) for new, old in ((x, replay_x), (y, replay_y), (t, replay_t))]
            losses = [self.sgd_step(params, *(b[j : j + 1] for b in batch), lr) for j in range(len(batch[1]))]
            interpolate(params, before_batch, self.beta)
        interpolate(params, before_example, self.gamma)
        return torch.stack(losses).sum() / self.steps

    def sgd_step(
        self, params: list[nn.Parameter], x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, lr: float
    ) -> torch.Tensor:
        loss = self.loss(self.net(x), y, t)
        grads = torch.autograd.grad(loss, params)
        if self.grad_clip_norm is not None:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            grads = torch._foreach_mul(grads, torch.clamp(self.grad_clip_norm / (norm + 1e-6), max=1.0))
        with torch.no_grad():
            torch._foreach_add_(params, grads, alpha=-lr)
        return loss.detach()


@torch.no_grad()
def interpolate(params: list[nn.Parameter], start: list[torch.Tensor], rate: float) -> None:
    """Reptile: θ ← start + rate · (θ − start), in place."""
    for p, s in zip(params, start):
        p.copy_(torch.lerp(s, p, rate))
