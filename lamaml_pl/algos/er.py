"""ER: experience replay with a reservoir buffer (La-MAML's ``eralg4``).

Each glance: draw ``replay_batch_size`` samples from the reservoir, add the incoming batch, take
one SGD step on the mean cross-entropy (gradient norm-clipped to ``grad_clip_norm``). After the
glances every incoming sample is offered to the reservoir. A population's members (lr and
grad_clip_norm may differ) take the same steps, each on its own batch and buffer.

``cuda_graph``: on a GPU, once the reservoir fills a replay batch, each glance (the step on the
drawn replay batch and the incoming one) replays as one CUDA graph; the draws and the insertion
stay outside it. ``fast_mlp``: on an MLP the glance's gradients are written out
(:func:`~lamaml_pl.algos.fast_mlp.mlp_loss_grads`), equal to autograd's to rounding (tested in float64).

Quirk Q11 ``insert_every_epoch`` (True): the original inserts the batch again in every epoch, so
multi-pass runs fill the buffer with duplicates and ``age`` grows with the epochs. False inserts
during a task's first pass only.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

import torch
from torch import nn

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.cuda_graph import GraphedStep
from lamaml_pl.algos.fast_mlp import mlp_loss_grads
from lamaml_pl.algos.gradients import clip_norm_, sgd_
from lamaml_pl.algos.replay import ReservoirBuffer, replayed_then_incoming
from lamaml_pl.errors import ConfigError, require_positive, require_replay_fits
from lamaml_pl.nets import MLP
from lamaml_pl.stream import StreamInfo


class ER(ContinualLearner):
    population_axes = ("lr", "grad_clip_norm")
    hand_written_glance: ClassVar[bool] = True  # fast_mlp can write this glance's gradients out

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
        fast_mlp: bool,
        cuda_graph: bool,
    ):
        super().__init__(name, net, stream, class_il_loss)
        if fast_mlp and not self.hand_written_glance:
            raise ConfigError(f"algo.fast_mlp=true: {name}'s glance has no hand-written gradients; use false")
        require_positive(
            "algo", lr=lr, replay_batch_size=replay_batch_size, glances=glances, grad_clip_norm=grad_clip_norm
        )
        require_replay_fits(int(replay_batch_size), int(memories))
        self.save_hyperparameters(ignore=["name", "net", "stream"])
        self.lr, self.replay_batch_size, self.glances = lr, int(replay_batch_size), int(glances)
        self.grad_clip_norm, self.insert_every_epoch = grad_clip_norm, insert_every_epoch
        self.memory = ReservoirBuffer(memories, stream.input_shape, exclusive=reservoir_exclusive)
        self.fast_mlp = fast_mlp and isinstance(net, MLP)
        self.cuda_graph = cuda_graph
        self.graphed_update = GraphedStep(self.glance, state=self.member_weights, key=self.graph_key)

    def stack_members(self, learners: list[ER]) -> None:
        self.stack_values(learners, "lr", "grad_clip_norm")
        self.memory = ReservoirBuffer(
            self.memory.capacity, self.stream.input_shape, exclusive=self.memory.exclusive, members=self.n_members
        )

    def configure_optimizers(self):
        return []  # the SGD step is written out in observe (one value of lr per member)

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        tasks = torch.full_like(y, t)
        for _ in range(self.glances):
            replay = self.memory.sample(self.replay_batch_size, self.draws)[:3]  # drawn outside the graph
            full = replay[1].shape[-1] == self.replay_batch_size  # a fixed shape from here on
            glance = self.graphed_update if self.cuda_graph and x.is_cuda and full else self.glance
            loss = glance(x, y, tasks, *replay)
        if self.insert_every_epoch or self.task_epoch == 0:
            self.memory.add(x, y, tasks, self.draws.uniforms(y.shape[-1], y.device))
        return loss.detach()

    def glance(self, x, y, tasks, *replay: torch.Tensor) -> torch.Tensor:
        """One SGD step on the replayed and the incoming samples (a population's: every member on
        its own); no host sync, so on a GPU it replays as one CUDA graph. Returns the loss (per member)."""
        weights = self.member_weights()
        if self.fast_mlp:
            batch_x, batch_y, batch_t = replayed_then_incoming(replay, (x, y, tasks), self.sample_axis)
            with torch.no_grad():
                loss, grads = mlp_loss_grads(weights, batch_x, partial(self.loss_and_logit_grad, y=batch_y, t=batch_t))
        else:
            loss = self.glance_loss((x, y, tasks), replay)
            grads = list(torch.autograd.grad(loss.sum(), weights))
        with torch.no_grad():
            clip_norm_(grads, self.grad_clip_norm)
            sgd_(weights, grads, self.lr)
        return loss.detach()

    def glance_loss(self, incoming: tuple[torch.Tensor, ...], replay: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """One glance's loss (per member) from the incoming and the replayed (x, y, task ids): the
        mean cross-entropy of their batch."""
        batch_x, batch_y, batch_t = replayed_then_incoming(replay, incoming, self.sample_axis)
        return self.loss(self.net_logits(batch_x), batch_y, batch_t)
