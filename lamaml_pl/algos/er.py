"""ER: experience replay with a reservoir buffer (La-MAML's ``eralg4``).

Each glance: draw ``replay_batch_size`` samples from the reservoir, add the incoming batch, take
one SGD step on the mean cross-entropy (gradient norm-clipped to ``grad_clip_norm``). After the
glances every incoming sample is offered to the reservoir. A population's members (lr and
grad_clip_norm may differ) take the same steps, each on its own batch and buffer.

Quirk Q11 ``insert_every_epoch`` (True): the original inserts the batch again in every epoch, so
multi-pass runs fill the buffer with duplicates and ``age`` grows with the epochs. False inserts
during a task's first pass only.
"""

from __future__ import annotations

import torch
from torch import nn

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.gradients import clip_norm_, sgd_
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
        class_il_loss: str,
    ):
        super().__init__(name, net, stream, class_il_loss)
        require_positive(
            "algo", lr=lr, replay_batch_size=replay_batch_size, glances=glances, grad_clip_norm=grad_clip_norm
        )
        require_replay_fits(int(replay_batch_size), int(memories))
        self.save_hyperparameters(ignore=["name", "net", "stream"])
        self.lr, self.replay_batch_size, self.glances = lr, int(replay_batch_size), int(glances)
        self.grad_clip_norm, self.insert_every_epoch = grad_clip_norm, insert_every_epoch
        self.memory = ReservoirBuffer(memories, stream.input_shape, exclusive=reservoir_exclusive)

    def stack_members(self, learners: list[ER]) -> None:
        self.stack_values(learners, "lr", "grad_clip_norm")
        self.memory = ReservoirBuffer(
            self.memory.capacity, self.stream.input_shape, exclusive=self.memory.exclusive, members=self.n_members
        )

    def configure_optimizers(self):
        return []  # the SGD step is written out in observe (one value of lr per member)

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        weights = self.member_weights()
        for _ in range(self.glances):
            loss = self.glance_loss(x, y, t)
            grads = list(torch.autograd.grad(loss.sum(), weights))
            with torch.no_grad():
                clip_norm_(grads, self.grad_clip_norm)
                sgd_(weights, grads, self.lr)
        if self.insert_every_epoch or self.task_epoch == 0:
            self.memory.add(x, y, t, self.draws.uniforms(y.shape[-1], y.device))
        return loss.detach()

    def glance_loss(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        """One glance's loss (per member): the mean cross-entropy of [replayed] + [incoming]."""
        batch_x, batch_y, batch_t = self.memory.before(x, y, t, self.replay_batch_size, self.draws, self.sample_axis)
        return self.loss(self.net_logits(batch_x), batch_y, batch_t)
