"""Meta-BGD: C-MAML's look-ahead meta-objective with Bayesian Gradient Descent over the weights
and the inner learning rates α (the La-MAML repository's ``meta-bgd``).

For every glance, ``mc_iters`` times: sample θ, α from the posterior, run the CIFAR La-MAML
inner loop (``inner_chunks`` chunks, always second order, inner gradients clamped to
±grad_clip_norm, raw α), backpropagate the mean meta-loss, norm-clip the θ gradients (not α's)
and add them to the BGD sums; then one BGD step, which leaves θ and α at their means.
The incoming batch enters the reservoir once, at the first glance's first sample. On a GPU each
sample's glance, clip and addition to the sums can replay as one CUDA graph (``cuda_graph``).

Q17 (kept, as published): α is itself a Bayesian parameter, the inner loop is second order
whatever ``second_order`` says, and α's gradients are not clipped.
"""

from __future__ import annotations

import torch
from torch import nn

from lamaml_pl.algos.bgd import BGD
from lamaml_pl.algos.gradients import clip_norm_
from lamaml_pl.algos.lamaml import LaMAML
from lamaml_pl.errors import require_positive
from lamaml_pl.stream import StreamInfo


class MetaBGD(LaMAML):
    """A population stacks every member's posterior (BGD is element-wise) and draws each member's
    weight samples, orders and replay from its own generator."""

    population_axes = ("alpha_init", "grad_clip_norm")

    def __init__(
        self,
        name: str,
        net: nn.Module,
        stream: StreamInfo,
        alpha_init: float,
        glances: int,
        memories: int,
        replay_batch_size: int,
        grad_clip_norm: float,
        inner_chunks: int,
        std_init: float,
        mean_eta: float,
        mc_iters: int,
        reservoir_exclusive: bool,
        cuda_graph: bool,
    ):
        require_positive("algo", mc_iters=mc_iters)
        super().__init__(
            name,
            net,
            stream,
            learn_lr=False,
            sync_update=True,
            opt_lr=1.0,  # unused, as opt_wt: the BGD optimizer takes every step (configure_optimizers)
            opt_wt=1.0,
            alpha_init=alpha_init,
            glances=glances,
            memories=memories,
            replay_batch_size=replay_batch_size,
            grad_clip_norm=grad_clip_norm,
            second_order=True,
            use_old_task_memory=False,
            inner_clamp=True,
            inner_alpha_relu=False,
            reservoir_exclusive=reservoir_exclusive,
            inner_chunks=inner_chunks,
            memory_snapshot="alias",
            fast_mlp=False,  # second order: the autograd glance
            cuda_graph=cuda_graph,
            class_il_loss=None,  # task-IL only, as the family's glance
        )
        self.std_init, self.mean_eta, self.mc_iters = std_init, mean_eta, int(mc_iters)

    def configure_optimizers(self):
        return BGD([*self.member_weights(), *self.alpha], self.std_init, self.mean_eta, self.mc_iters)

    def updated_tensors(self) -> list[torch.Tensor]:
        return self.optimizers().optimizer.sums()

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        bgd = self.optimizers().optimizer
        for glance in range(self.glances):
            for sample in range(self.mc_iters):
                bgd.randomize_weights(self.draws)
                x, y, meta_loss = self.glance(x, y, t)
                if glance == 0 and sample == 0:
                    self.memory.add(x, y, t, self.draws.uniforms(y.shape[-1], y.device))
            bgd.step()
        return meta_loss.detach()

    def update(self, y, replay_x, replay_y, replay_t, with_loss: bool = True) -> torch.Tensor:
        """One weight sample's glance (raw α, clamped, second order), its θ gradients norm-clipped
        (α's not: Q17), added to BGD's sums; returns the meta-loss (whatever ``with_loss`` says).
        No host sync: on a GPU, one CUDA graph."""
        meta_loss, grads = self.autograd_glance(y.shape[-1], replay_x, replay_y, replay_t)
        clip_norm_(grads[: len(self.alpha)], self.grad_clip_norm)
        self.optimizers().optimizer.aggregate_grads(grads, y.shape[-1])
        return meta_loss
