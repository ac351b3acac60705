"""MER: Meta-Experience Replay, Algorithm 1.

Riemer et al., "Learning to Learn without Forgetting by Maximizing Transfer and Minimizing
Interference", ICLR 2019. Examples are processed one at a time. For each example:
A = θ; repeat ``batches_per_example`` times { W = θ; the batch is the current example followed
by up to ``replay_batch_size`` samples drawn from the reservoir (MER's ``getBatch`` puts the
example first; La-MAML's replay batches put it last); one SGD step per sample of that batch, in
order; θ ← W + β(θ − W) }; θ ← A + γ(θ − A); offer the example to the reservoir.

``grad_clip_norm`` (Q18): the La-MAML copy norm-clips every per-sample gradient (10 in its CIFAR
runs); the original MER, whose numbers fill the MNIST table, does not clip (null).
"""

from __future__ import annotations

import torch
from torch import nn

from lamaml_pl.algos.base import ContinualLearner
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

    def configure_optimizers(self):
        # holds the lr (so schedulers and checkpoints see it); the many tiny per-sample steps
        # are applied directly in sgd_step, which is cheaper than optimizer.step()
        return torch.optim.SGD(self.net.parameters(), lr=self.lr)

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        params = list(self.net.parameters())
        lr = self.optimizers().param_groups[0]["lr"]
        for i in range(len(y)):
            before_example = [p.detach().clone() for p in params]
            for _ in range(self.steps):
                before_batch = [p.detach().clone() for p in params]
                mem_x, mem_y, mem_t = self.memory.sample(self.replay_batch_size)
                batch_x, batch_y = torch.cat([x[i : i + 1], mem_x]), torch.cat([y[i : i + 1], mem_y])
                batch_t = torch.cat([torch.full_like(y[:1], t), mem_t])
                losses = [
                    self.sgd_step(params, batch_x[j : j + 1], batch_y[j : j + 1], batch_t[j : j + 1], lr)
                    for j in range(len(batch_y))
                ]
                interpolate(params, before_batch, self.beta)
            interpolate(params, before_example, self.gamma)
            self.memory.add(x[i : i + 1], y[i : i + 1], t)
        return torch.stack(losses).sum() / self.steps  # the loss the original logs

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
