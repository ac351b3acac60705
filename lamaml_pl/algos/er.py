"""ER: experience replay with a reservoir buffer (La-MAML's ``eralg4``).

Each glance: draw ``replay_batch_size`` samples from the reservoir, add the incoming batch, take
one SGD step on the mean cross-entropy (gradient norm-clipped to ``grad_clip_norm``). After the
glances every incoming sample is offered to the reservoir.

Quirk Q11 ``insert_every_epoch`` (True): the original inserts the batch again in every epoch, so
multi-pass runs fill the buffer with duplicates and ``age`` grows with the epochs. False inserts
during a task's first pass only.
"""

from __future__ import annotations

import torch
from torch import nn

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.replay import ReservoirBuffer
from lamaml_pl.errors import require_positive, require_replay_fits
from lamaml_pl.stream import StreamInfo


class ER(ContinualLearner):
    population_axes = ("lr", "grad_clip_norm")

    def __init__(
        self,
        name: str,
        net: nn.Module,
        stream: StreamInfo,
        lr: float,
        memories: int,
        replay_batch_size: int,
        glances: int,
        grad_clip_norm: float,
        insert_every_epoch: bool,
        reservoir_exclusive: bool,
    ):
        super().__init__(name, net, stream)
        require_positive(
            "algo", lr=lr, replay_batch_size=replay_batch_size, glances=glances, grad_clip_norm=grad_clip_norm
        )
        require_replay_fits(int(replay_batch_size), int(memories))
        self.save_hyperparameters(ignore=["name", "net", "stream"])
        self.lr, self.replay_batch_size, self.glances = lr, int(replay_batch_size), int(glances)
        self.grad_clip_norm, self.insert_every_epoch = grad_clip_norm, insert_every_epoch
        self.memory = ReservoirBuffer(memories, stream.input_shape, exclusive=reservoir_exclusive)

    def configure_optimizers(self):
        return torch.optim.SGD(self.net.parameters(), lr=self.lr)

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        opt = self.optimizers()
        for _ in range(self.glances):
            mem_x, mem_y, mem_t = self.memory.sample(self.replay_batch_size)
            opt.zero_grad()
            batch_t = torch.cat([mem_t, torch.full_like(y, t)])
            loss = self.loss(self.net(torch.cat([mem_x, x])), torch.cat([mem_y, y]), batch_t)
            self.manual_backward(loss)
            nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip_norm)
            opt.step()
        if self.insert_every_epoch or self.task_epoch == 0:
            self.memory.add(x, y, t)
        return loss.detach()
