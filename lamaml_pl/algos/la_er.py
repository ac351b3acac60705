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

It is the La-MAML learner with the CIFAR glance's settings and another θ step: the glance,
the clipped α and θ steps, a population's member axis and the CUDA graph are La-MAML's
(:mod:`lamaml_pl.algos.lamaml`).

Quirk Q7 ``meta_loss`` ("last"): the original keeps only the last chunk's meta-loss (the
average is commented out); "mean" averages all chunks' meta-losses, as C-MAML / La-MAML do.
"""

from __future__ import annotations

import torch
from torch import nn

from lamaml_pl.algos.lamaml import META_LOSSES, LaMAML, summed
from lamaml_pl.errors import ConfigError
from lamaml_pl.stream import StreamInfo


class LaER(LaMAML):
    population_axes = ("alpha_init", "opt_lr", "grad_clip_norm")
    scenarios = LaMAML.scenarios + ("class_il",)  # ER's step needs no task id

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
        cuda_graph: bool,
        class_il_loss: str,
    ):
        if meta_loss not in META_LOSSES:
            raise ConfigError(f"algo.meta_loss={meta_loss!r} is unknown: use one of {', '.join(META_LOSSES)}")
        super().__init__(
            name,
            net,
            stream,
            learn_lr=True,
            sync_update=False,
            alpha_init=alpha_init,
            opt_lr=opt_lr,
            opt_wt=1.0,  # unused: θ steps by relu(α)
            glances=glances,
            memories=memories,
            replay_batch_size=replay_batch_size,
            grad_clip_norm=grad_clip_norm,
            second_order=second_order,
            use_old_task_memory=False,
            inner_clamp=True,
            memory_snapshot="alias",
            inner_alpha_relu=False,
            reservoir_exclusive=reservoir_exclusive,
            inner_chunks=inner_chunks,
            fast_mlp=False,
            cuda_graph=cuda_graph,
            class_il_loss=class_il_loss,
        )
        self.meta_loss, self.insert_every_epoch = meta_loss, insert_every_epoch

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        shuffled_x, shuffled_y = x, y
        for _ in range(self.glances):
            shuffled_x, shuffled_y, loss = self.glance(shuffled_x, shuffled_y, t)
        if self.insert_every_epoch or self.task_epoch == 0:  # the batch as it arrived, as the original
            self.memory.add(x, y, t, self.draws.uniforms(y.shape[-1], y.device))
        return loss.detach()

    def update(self, y, replay_x, replay_y, replay_t, with_loss: bool = True) -> torch.Tensor:
        """The glance's α gradient, the ER gradient of θ on the replay batch, then La-MAML's meta
        step (both clipped; α first, θ with the new α). Returns the ER loss (per member; it is
        computed for the step whatever ``with_loss`` says)."""
        _, grad_rate = self.autograd_glance(y.shape[-1], replay_x, replay_y, replay_t, theta_grads=False)
        weights = self.member_weights()
        with torch.enable_grad():
            loss = self.loss_at(dict(zip(self.weight_names, weights)), replay_x, replay_y, replay_t)
            grad_theta = list(torch.autograd.grad(summed(loss), weights))
        self.meta_step(grad_theta, grad_rate, weights)
        return loss.detach()
