"""La-ER: experience replay whose weight step uses per-parameter learning rates α learned by a
look-ahead meta-objective (La-MAML's ``eralg4`` with ``learn_lr``).

For every glance at an incoming batch B of task t:

    permute B; draw the replay batch R = [replayed] + B once
    fast = θ;  for each of ``inner_chunks`` chunks of B:  fast ← fast − clamp(∇ CE(fast; chunk), ±c) ⊙ α
                                                          meta_i = CE(fast; R)
    α ← α − opt_lr ∇_α meta_last                          (norm-clipped, θ and α groups separately)
    θ ← θ − relu(α) ⊙ clip(∇_θ CE(θ; R))                  (a plain ER step with the new α)

Raw α in the inner step (no relu); first order unless ``second_order``. Every incoming sample is
offered to the reservoir after the glances, in every epoch (Q11, as ER).

Quirk Q7 ``meta_loss`` ("last"): the original keeps only the last chunk's meta-loss (the
average is commented out); "mean" averages all chunks' meta-losses, as C-MAML / La-MAML do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.draws import shuffled_order
from lamaml_pl.algos.replay import ReservoirBuffer
from lamaml_pl.errors import ConfigError, require_positive, require_replay_fits
from lamaml_pl.stream import StreamInfo

META_LOSSES = ("last", "mean")


class LaER(ContinualLearner):
    def __init__(
        self,
        name: str,
        net: nn.Module,
        stream: StreamInfo,
        alpha_init: float,
        opt_lr: float,
        memories: int,
        replay_batch_size: int,
        glances: int,
        inner_chunks: int,
        grad_clip_norm: float,
        second_order: bool,
        meta_loss: str,
        insert_every_epoch: bool,
        reservoir_exclusive: bool,
    ):
        super().__init__(name, net, stream)
        require_positive(
            "algo",
            alpha_init=alpha_init,
            opt_lr=opt_lr,
            replay_batch_size=replay_batch_size,
            glances=glances,
            inner_chunks=inner_chunks,
            grad_clip_norm=grad_clip_norm,
        )
        if meta_loss not in META_LOSSES:
            raise ConfigError(f"algo.meta_loss={meta_loss!r} is unknown: use one of {', '.join(META_LOSSES)}")
        require_replay_fits(int(replay_batch_size), int(memories))
        self.save_hyperparameters(ignore=["name", "net", "stream"])
        self.opt_lr, self.replay_batch_size, self.glances = opt_lr, int(replay_batch_size), int(glances)
        self.inner_chunks, self.grad_clip_norm, self.second_order = int(inner_chunks), grad_clip_norm, second_order
        self.meta_loss, self.insert_every_epoch = meta_loss, insert_every_epoch
        self.weight_names = [n for n, _ in net.named_parameters()]
        self.alpha = nn.ParameterList([nn.Parameter(torch.full_like(p, float(alpha_init))) for p in net.parameters()])
        self.memory = ReservoirBuffer(memories, stream.input_shape, exclusive=reservoir_exclusive)

    def configure_optimizers(self):
        return torch.optim.SGD(self.alpha.parameters(), lr=self.opt_lr)

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        alpha_opt = self.optimizers()
        weights = list(self.net.parameters())
        for _ in range(self.glances):
            order = shuffled_order(len(y), y.device)
            x, y = x[order], y[order]
            mem_x, mem_y, mem_t = self.memory.sample(self.replay_batch_size)
            batch_x, batch_y = torch.cat([mem_x, x]), torch.cat([mem_y, y])
            batch_t = torch.cat([mem_t, torch.full_like(y, t)])

            fast = dict(zip(self.weight_names, weights))
            meta_losses = []
            size = -(-len(y) // self.inner_chunks)
            for chunk_x, chunk_y in zip(x.split(size), y.split(size)):
                inner = self.loss(functional_call(self.net, fast, (chunk_x,)), chunk_y, t)
                grads = torch.autograd.grad(inner, list(fast.values()), create_graph=self.second_order)
                fast = {
                    n: w - g.clamp(-self.grad_clip_norm, self.grad_clip_norm) * a
                    for (n, w), g, a in zip(fast.items(), grads, self.alpha)
                }
                meta_losses.append(self.loss(functional_call(self.net, fast, (batch_x,)), batch_y, batch_t))
            meta = meta_losses[-1] if self.meta_loss == "last" else torch.stack(meta_losses).mean()

            alpha_opt.zero_grad()
            self.net.zero_grad()
            self.manual_backward(meta)  # (the original also clips the θ grads it then discards)
            nn.utils.clip_grad_norm_(self.alpha.parameters(), self.grad_clip_norm)
            alpha_opt.step()

            self.net.zero_grad()
            loss = self.loss(self.net(batch_x), batch_y, batch_t)
            self.manual_backward(loss)
            nn.utils.clip_grad_norm_(weights, self.grad_clip_norm)
            with torch.no_grad():
                for w, a in zip(weights, self.alpha):
                    w.sub_(w.grad * F.relu(a))
        if self.insert_every_epoch or self.task_epoch == 0:
            self.memory.add(x, y, t)
        return loss.detach()
