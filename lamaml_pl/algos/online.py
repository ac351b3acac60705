"""Online ("single"): plain SGD fine-tuning on the stream, the lower bound of the tables.

MER's / GEM's ``single``: one SGD step on the cross-entropy of each
incoming batch; no replay, no regularisation, no clipping. MER ran it with batch size 1.
The same update on a joint stream of all tasks (``data.joint=true``) is the IID oracle
(``algo=iid``). A population's members (lr may differ) take the same step, each on its own batch.
"""

from __future__ import annotations

import torch
from torch import nn

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.gradients import sgd_
from lamaml_pl.errors import require_positive
from lamaml_pl.stream import StreamInfo


class Online(ContinualLearner):
    population_axes = ("lr",)
    joint_stream = True  # on data.joint=true it is the IID oracle (algo=iid)

    def __init__(self, name: str, net: nn.Module, stream: StreamInfo, lr: float, class_il_loss: str):
        super().__init__(name, net, stream, class_il_loss)
        require_positive("algo", lr=lr)
        self.save_hyperparameters(ignore=["name", "net", "stream"])
        self.lr = lr

    def stack_members(self, learners: list[Online]) -> None:
        self.stack_values(learners, "lr")

    def configure_optimizers(self):
        return []  # the SGD step is written out in observe (one value of lr per member)

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        weights = self.member_weights()
        loss = self.loss(self.net_logits(x), y, t)
        grads = torch.autograd.grad(loss.sum(), weights)
        with torch.no_grad():
            sgd_(weights, list(grads), self.lr)
        return loss.detach()
