"""C-MAML, Sync-La-MAML and La-MAML: one learner, two switches (``learn_lr``, ``sync_update``).

Gupta, Yadav & Paull, "La-MAML: Look-ahead Meta Learning for Continual Learning", NeurIPS 2020.
For every glance at an incoming batch B of task t:

    fast_0 = θ;  for each sample (x_i, y_i) of B:  fast_i = fast_{i-1} - relu(α) ⊙ ∇ CE(fast_{i-1}; x_i, y_i)
    L_meta = mean_i CE(fast_i; replay ∪ B)
    α ← α - opt_lr ∇_α L_meta                                     (learn_lr)
    θ ← θ - opt_wt ∇_θ L_meta            (sync_update)   or   θ ← θ - relu(α) ⊙ ∇_θ L_meta

with both gradient groups norm-clipped to ``grad_clip_norm`` first. The La-MAML weight step uses
the α just updated ("look-ahead"). Fast weights run through ``torch.func.functional_call``.

The CIFAR / TinyImageNet variant is the same learner with ``inner_chunks`` = the original's
``cifar_batches``: the inner loop steps over that many chunks of ⌈B/n⌉ samples, second order,
with value-clamped inner gradients and raw α in the inner step (its presets). On task-incremental
streams every loss is the base class's masked cross-entropy: the inner loss over the current
task's classes, the meta-loss with each replayed sample's own task. The original code's quirks
(Q1 ``inner_clamp``, Q2 ``memory_snapshot``, Q3 ``inner_alpha_relu``, Q10
``reservoir_exclusive``, Q16 short batches) are options with faithful defaults: docs/quirks.md.

Two implementations of the glance: the autograd reference here (any net, second order, masks,
clamps), and, first order on an MLP (the MNIST runs), ``fast_mlp``: gradients written by hand,
without forming the first layer's fast weights, so the meta pass of all inner steps is a few
large matrix products (:mod:`lamaml_pl.algos.fast_mlp`). Float32 rounds the two differently and
La-MAML's trajectory amplifies that: a seed's RA moves by about a point. On a GPU either glance
and its meta step are captured once per input shape and replayed as one CUDA graph
(``cuda_graph``; same numbers, tested): the conv nets' second-order glance is over a thousand
small kernels, which cost far more to launch one by one than to run.

A population steps its members through the same ``observe`` and the same glance, every tensor
with a leading member axis (the conv nets' members through ``vmap``): α, opt_lr, opt_wt and
grad_clip_norm may differ between members.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.cuda_graph import GraphedStep
from lamaml_pl.algos.draws import take
from lamaml_pl.algos.fast_mlp import FactoredGlance
from lamaml_pl.algos.gradients import clip_norm_, per_member, sgd_
from lamaml_pl.algos.replay import ReservoirBuffer
from lamaml_pl.errors import ConfigError, require_positive, require_replay_fits
from lamaml_pl.nets import MLP, stacked_mlp
from lamaml_pl.stream import StreamInfo

MEMORY_SNAPSHOTS = ("alias", "copy")
META_LOSSES = ("mean", "last")  # of the inner steps' meta-losses: their mean, or the last one's alone


class LaMAML(ContinualLearner):
    """The La-MAML family. Presets: C-MAML (learn_lr off, sync on), Sync (both on),
    La-MAML (learn_lr on, sync off) — ``conf/algo/{cmaml,sync,lamaml}.yaml``."""

    population_axes = ("alpha_init", "opt_lr", "opt_wt", "grad_clip_norm")
    # the paper's settings: the conv-net glance is one CUDA graph over each task's masked head,
    # which a class-incremental head (wider every task) does not have
    scenarios = ("domain_il", "task_il")
    meta_loss = "mean"  # the family's meta-objective (:data:`META_LOSSES`)

    def __init__(
        self,
        name: str,
        net: nn.Module,
        stream: StreamInfo,
        learn_lr: bool,
        sync_update: bool,
        alpha_init: float,
        opt_lr: float,
        opt_wt: float,
        glances: int,
        memories: int,
        replay_batch_size: int,
        grad_clip_norm: float,
        second_order: bool,
        use_old_task_memory: bool,
        inner_clamp: bool,
        memory_snapshot: str,
        inner_alpha_relu: bool,
        reservoir_exclusive: bool,
        inner_chunks: int | None,
        fast_mlp: bool,
        cuda_graph: bool,
        class_il_loss: str | None,  # None: the family's own glance is task-IL only; La-ER's gives one
    ):
        super().__init__(name, net, stream, class_il_loss)
        if inner_chunks is not None:
            require_positive("algo", inner_chunks=inner_chunks)
        require_positive(
            "algo",
            alpha_init=alpha_init,
            opt_lr=opt_lr,
            opt_wt=opt_wt,
            glances=glances,
            replay_batch_size=replay_batch_size,
            grad_clip_norm=grad_clip_norm,
        )
        if memory_snapshot not in MEMORY_SNAPSHOTS:
            raise ConfigError(
                f"algo.memory_snapshot={memory_snapshot!r} is unknown: use one of {', '.join(MEMORY_SNAPSHOTS)}"
            )
        require_replay_fits(int(replay_batch_size), int(memories))
        self.save_hyperparameters(ignore=["name", "net", "stream"])
        self.learn_lr, self.sync_update = learn_lr, sync_update
        self.opt_lr, self.opt_wt = opt_lr, opt_wt
        self.glances = int(glances)
        self.replay_batch_size = int(replay_batch_size)
        self.grad_clip_norm = grad_clip_norm
        self.second_order = second_order
        self.use_old_task_memory = use_old_task_memory
        self.inner_clamp = inner_clamp
        self.memory_snapshot = memory_snapshot
        self.inner_alpha_relu = inner_alpha_relu
        self.inner_chunks = inner_chunks
        # the hand-written glance: first order, an MLP with a hidden layer, an unmasked stream, and
        # unclamped inner gradients (the first layer's are then outer products)
        self.fast_mlp = (
            fast_mlp
            and not second_order
            and not inner_clamp
            and inner_chunks is None
            and isinstance(net, MLP)
            and len(net) > 1
            and stream.classes_per_task is None
        )
        self.factored = FactoredGlance()  # keeps its inner loop's buffers from glance to glance
        self.cuda_graph = cuda_graph
        self.graphed_update = GraphedStep(self.update, state=self.updated_tensors, key=self.graph_key)
        self.alpha = nn.ParameterList([nn.Parameter(torch.full_like(p, float(alpha_init))) for p in net.parameters()])
        self.memory = ReservoirBuffer(memories, stream.input_shape, exclusive=reservoir_exclusive)
        self.old_task_memory: ReservoirBuffer | None = None

    def check_population(self) -> None:
        super().check_population()
        if self.memory_snapshot != "alias":
            raise ConfigError(f"algo.memory_snapshot={self.memory_snapshot!r}: a population supports alias only")

    def stack_members(self, learners: list[LaMAML]) -> None:
        self.alpha = nn.ParameterList(
            nn.Parameter(a) for a in stacked_mlp.stack_parameters([m.alpha for m in learners])
        )
        self.stack_values(learners, "opt_lr", "opt_wt", "grad_clip_norm")
        self.memory = ReservoirBuffer(
            self.memory.capacity, self.stream.input_shape, exclusive=self.memory.exclusive, members=self.n_members
        )

    def configure_optimizers(self):
        return []  # the α step (SGD at opt_lr) and the θ step are written out in meta_step

    def updated_tensors(self) -> list[torch.Tensor]:
        """What :meth:`update` changes in place (restored after the CUDA graph's warm-up run)."""
        return [*self.member_weights(), *self.alpha]

    def on_task_start(self, t: int) -> None:
        if self.memory_snapshot == "copy":
            self.old_task_memory = copy.deepcopy(self.memory)

    def algorithm_state(self) -> dict:
        return {"old_task_memory": None if self.old_task_memory is None else self.old_task_memory.state_dict()}

    def load_algorithm_state(self, state: dict) -> None:
        if state["old_task_memory"] is not None:
            self.old_task_memory = copy.deepcopy(self.memory)
            self.old_task_memory.load_state_dict(state["old_task_memory"])

    # ---- the update ------------------------------------------------------------------------
    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        # only the last glance's loss is reported: the hand-written glance skips the others'
        for glance in range(self.glances):
            x, y, meta_loss = self.glance(x, y, t, with_loss=glance == self.glances - 1)
            if glance == 0 and self.task_epoch == 0:
                self.memory.add(x, y, t, self.draws.uniforms(y.shape[-1], y.device))
        return meta_loss.detach()

    def glance(self, x: torch.Tensor, y: torch.Tensor, t: int, with_loss: bool = True) -> tuple:
        """One glance at the incoming batch, as the family (La-ER, Meta-BGD too) takes it: shuffle
        it, draw its replay batch, take :meth:`update` (on a GPU replayed as a CUDA graph); returns
        the shuffled batch and the update's loss."""
        order = self.draws.order(y.shape[-1], y.device)
        x, y = take(x, order), take(y, order)
        replay = self.replay_batch(x, y, t)
        if self.cuda_graph and x.is_cuda:
            return x, y, self.graphed_update(y, *replay)
        return x, y, self.update(y, *replay, with_loss=with_loss)

    def update(self, y, replay_x, replay_y, replay_t, with_loss: bool = True) -> torch.Tensor | None:
        """One glance at the incoming batch and its meta step: the hand-written glance or the
        autograd one. The meta-batch ends with the incoming batch (:meth:`replay_batch`), whose
        labels are ``y``. No host sync, static shapes: on a GPU it runs as one CUDA graph."""
        if self.fast_mlp:
            weights, alpha = self.member_weights(), list(self.alpha)
            return hand_written_update_(self, weights, alpha, replay_x, replay_y, y.shape[-1], with_loss)
        meta_loss, grads = self.autograd_glance(y.shape[-1], replay_x, replay_y, replay_t)
        self.meta_step(grads[: len(self.alpha)], grads[len(self.alpha) :])
        return meta_loss

    def autograd_glance(
        self, n: int, replay_x, replay_y, replay_t, theta_grads: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The inner loop on fast weights over the meta-batch's last ``n`` samples (the incoming
        batch), a meta-loss after each inner step (``meta_loss``: their mean, or the last step's
        alone); returns that meta-loss (per member) and its gradients, θ's (``theta_grads``) then α's."""
        weights, alpha, axis = self.member_weights(), list(self.alpha), self.sample_axis
        with torch.enable_grad():
            fast = dict(zip(self.weight_names, weights))
            rates = [F.relu(a) if self.inner_alpha_relu else a for a in alpha]
            incoming = [batch.narrow(axis, batch.shape[axis] - n, n) for batch in (replay_x, replay_y, replay_t)]
            size = 1 if self.inner_chunks is None else -(-n // self.inner_chunks)
            chunks = list(zip(*(batch.split(size, axis) for batch in incoming)))
            meta_losses = []
            for step, (chunk_x, chunk_y, chunk_t) in enumerate(chunks, start=1):
                fast = self.inner_step(fast, rates, chunk_x, chunk_y, chunk_t)
                if self.meta_loss == "mean" or step == len(chunks):
                    meta_losses.append(self.loss_at(fast, replay_x, replay_y, replay_t))
            meta_loss = torch.stack(meta_losses).mean(0)
            grads = torch.autograd.grad(summed(meta_loss), [*weights, *alpha] if theta_grads else alpha)
        return meta_loss.detach(), list(grads)

    def replay_batch(self, x: torch.Tensor, y: torch.Tensor, t: int) -> tuple[torch.Tensor, ...]:
        """[replayed samples] + [the incoming batch] with their task ids, drawn once per glance
        before any insertion."""
        source = self.memory
        if self.use_old_task_memory and t > 0 and self.old_task_memory is not None:
            source = self.old_task_memory
        return source.before(x, y, t, self.replay_batch_size, self.draws, self.sample_axis)

    def loss_at(self, fast: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.loss(self.logits_at(fast, x), y, t)

    def inner_step(
        self,
        fast: dict[str, torch.Tensor],
        rates: list[torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """fast <- fast - rate * grad, with ``rates`` = relu(α) (or α, Q3) computed once per glance."""
        loss = summed(self.loss_at(fast, x, y, t))
        grads = torch.autograd.grad(loss, list(fast.values()), create_graph=self.second_order)
        if self.inner_clamp:  # a population: each member's own bound
            limit = self.grad_clip_norm
            bounds = [limit if self.weights is None else per_member(limit, g) for g in grads]
            grads = [g.clamp(-b, b) for g, b in zip(grads, bounds)]
        return {name: torch.addcmul(w, g, lr, value=-1) for (name, w), g, lr in zip(fast.items(), grads, rates)}

    def meta_step(
        self,
        grad_theta: list[torch.Tensor],
        grad_rate: list[torch.Tensor] | None,
        weights: list[torch.Tensor] | None = None,
        alpha: list[torch.Tensor] | None = None,
    ) -> None:
        """:func:`meta_step_` with this learner's settings; ``weights``/``alpha``: the parameter
        lists, if the caller has them."""
        meta_step_(self, weights or self.member_weights(), alpha or list(self.alpha), grad_theta, grad_rate)


def summed(loss: torch.Tensor) -> torch.Tensor:
    """What to differentiate: a single run's loss, or the sum of a population's members' losses
    (each member's gradient is its own loss's: members share no weights)."""
    return loss if loss.dim() == 0 else loss.sum()


@torch.no_grad()
def hand_written_update_(
    learner, weights, alpha, replay_x, replay_y, n: int, with_loss: bool = True
) -> torch.Tensor | None:
    """The glance for a first-order MLP with gradients by hand (``learner.factored``:
    :mod:`fast_mlp`), then :func:`meta_step_`, for one learner or (every tensor with a member
    axis) a population's members. Returns the mean meta-loss (per member; None with ``with_loss``
    off: the glance then skips it). It computes in the weights' dtype: mixed precision's autocast
    applies to autograd's ops, not to these kernels and their kept buffers."""
    rates = torch._foreach_clamp_min(alpha, 0.0) if learner.inner_alpha_relu else alpha  # relu(α)
    with torch.autocast(replay_x.device.type, enabled=False):
        meta_loss, grad_theta, grad_rate = learner.factored(
            weights, rates, replay_x, replay_y, n, rate_grads=learner.learn_lr, with_loss=with_loss
        )
    if learner.learn_lr and learner.inner_alpha_relu:  # relu's derivative: sign(relu(α)) is 1 where α > 0, else 0
        torch._foreach_mul_(grad_rate, torch._foreach_sign(rates))
    meta_step_(learner, weights, alpha, grad_theta, grad_rate)
    return meta_loss


@torch.no_grad()
def meta_step_(learner, weights, alpha, grad_theta, grad_rate) -> None:
    """Clip both gradient groups (as ``clip_grad_norm_``), then the α step (SGD at opt_lr) and the
    θ step (sync: SGD at opt_wt; else θ -= relu(α) ⊙ ∇θ with the new α: look-ahead). Without
    learn_lr (C-MAML) ∇α plays no part and may be None. ``learner`` holds learn_lr, sync_update,
    opt_lr, opt_wt and grad_clip_norm: numbers for one learner, one value per member for a
    population (every tensor then has a member axis)."""
    clip_norm_(grad_theta, learner.grad_clip_norm)
    if learner.learn_lr:
        clip_norm_(grad_rate, learner.grad_clip_norm)
        sgd_(alpha, grad_rate, learner.opt_lr)
    if learner.sync_update:
        sgd_(weights, grad_theta, learner.opt_wt)
    else:
        torch._foreach_mul_(grad_theta, torch._foreach_clamp_min(alpha, 0.0))  # (in place: ours to scale)
        torch._foreach_sub_(weights, grad_theta)
