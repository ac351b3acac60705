"""DER++: dark experience replay (Buzzega et al., "Dark Experience for General Continual
Learning: a Strong, Simple Baseline", NeurIPS 2020).

A reservoir buffer keeps each sample with the logits the net gave it when it arrived. Each
glance is one SGD step on

    CE(net(B)) + alpha · MSE(net(x'), z') + beta · CE(net(x''), y'')

with (x', z') and (x'', y'') two independent draws of ``replay_batch_size`` stored samples: the
first term learns the incoming batch B, the second keeps the stored logits (distilling the past
function, not only its labels), the third replays the labels. After the glances the batch is
offered to the reservoir with its logits of the first glance (before this batch's updates).
On task-incremental streams the cross-entropies are the usual per-task masked ones; the logit
term matches every output, as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.replay import ReservoirBuffer
from lamaml_pl.errors import require_non_negative, require_positive, require_replay_fits
from lamaml_pl.stream import StreamInfo


class DERPP(ContinualLearner):
    def __init__(
        self,
        name: str,
        net: nn.Module,
        stream: StreamInfo,
        lr: float,
        alpha: float,
        beta: float,
        memories: int,
        replay_batch_size: int,
        glances: int,
        reservoir_exclusive: bool,
        class_il_loss: str,
    ):
        super().__init__(name, net, stream, class_il_loss)
        require_positive("algo", lr=lr, replay_batch_size=replay_batch_size, glances=glances)
        require_non_negative("algo", alpha=alpha, beta=beta)
        require_replay_fits(int(replay_batch_size), int(memories))
        self.save_hyperparameters(ignore=["name", "net", "stream"])
        self.lr, self.alpha, self.beta = lr, alpha, beta
        self.replay_batch_size, self.glances = int(replay_batch_size), int(glances)
        with torch.no_grad():  # the width of the stored logits: the net's outputs, whatever the net
            n_outputs = net(torch.zeros(1, *stream.input_shape, dtype=next(net.parameters()).dtype)).shape[1]
        self.memory = ReservoirBuffer(
            memories, stream.input_shape, exclusive=reservoir_exclusive, extras={"logits": (n_outputs,)}
        )

    def configure_optimizers(self):
        return torch.optim.SGD(self.net.parameters(), lr=self.lr)

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        opt = self.optimizers()
        for glance in range(self.glances):
            opt.zero_grad()
            logits = self.net(x)
            if glance == 0:
                arrival_logits = logits.detach()
            loss = self.loss(logits, y, t)
            if len(self.memory) > 0:
                past_x, _, _, past_logits = self.memory.sample(self.replay_batch_size, self.draws)
                loss = loss + self.alpha * F.mse_loss(self.net(past_x), past_logits)
                past_x, past_y, past_t, _ = self.memory.sample(self.replay_batch_size, self.draws)
                loss = loss + self.beta * self.loss(self.net(past_x), past_y, past_t)
            self.manual_backward(loss)
            opt.step()
        self.memory.add(x, y, t, self.draws.uniforms(y.shape[-1], y.device), logits=arrival_logits)
        return loss.detach()
