"""GEM and A-GEM: gradient projections against a per-task episodic memory.

Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", NeurIPS 2017;
Chaudhry et al., "Efficient Lifelong Learning with A-GEM", ICLR 2019.
Both as the La-MAML repository's copies run them.

Per incoming batch: write it into task t's memory row; then for each glance compute the gradient
of every earlier observed task's whole memory row, then the gradient g of the current batch; if g
conflicts with the past gradients, replace it by its projection; one SGD step.

Quirks (faithful defaults; the option gives the other behaviour):
- Q6 ``qp_eps``: the ridge on the QP's diagonal (0 in GEM's and MER's code, which produced the
  MNIST rows; La-MAML's copy adds 1e-3, its CIFAR / TinyImageNet presets); ``grad_clip_norm``
  (La-MAML's copy clips every gradient to this norm before projecting; null = no clipping, as
  original GEM/MER).
- Q4 ``register_task0`` (A-GEM, False): the original starts its task counter at 0, so task 0 is
  never registered: no projection during task 1 and task 0 never protected. True registers it.
- Q5 (A-GEM): the reference gradient is the mean of the per-task memory gradients, not the
  gradient of one random memory batch as in the A-GEM paper. Kept as published.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.episodic import TaskRingMemory
from lamaml_pl.algos.gradients import clip_factor, clip_norm_, per_member, project_agem, project_gem, sgd_
from lamaml_pl.errors import ConfigError, require_non_negative, require_positive
from lamaml_pl.stream import StreamInfo


class GEM(ContinualLearner):
    """GEM: project g onto {g~ : g~ · g_k >= 0 for every past task k} when any g · g_k < 0.

    A population's members (lr and grad_clip_norm may differ) take the same steps, each on its
    own batches and memory, each projected on its own (one quadratic program per member)."""

    population_axes = ("lr", "grad_clip_norm")

    def __init__(
        self,
        name: str,
        net: nn.Module,
        stream: StreamInfo,
        lr: float,
        n_memories: int,
        memory_strength: float,
        glances: int,
        grad_clip_norm: float | None,
        qp_eps: float,
        class_il_loss: str,
    ):
        super().__init__(name, net, stream, class_il_loss)
        require_positive("algo", lr=lr, glances=glances)
        if grad_clip_norm is not None:
            require_positive("algo", grad_clip_norm=grad_clip_norm)
        require_non_negative("algo", memory_strength=memory_strength, qp_eps=qp_eps)
        self.save_hyperparameters(ignore=["name", "net", "stream"])
        self.lr, self.glances = lr, int(glances)
        self.memory_strength, self.grad_clip_norm, self.qp_eps = memory_strength, grad_clip_norm, qp_eps
        self.memory = TaskRingMemory(stream.n_tasks, n_memories, stream.input_shape)
        self.observed_tasks: list[int] = []
        self.last_task = self.first_last_task()

    def stack_members(self, learners: list[GEM]) -> None:
        clipped = [m.grad_clip_norm is not None for m in learners]
        if any(clipped) and not all(clipped):
            values = ", ".join("null" if m.grad_clip_norm is None else str(m.grad_clip_norm) for m in learners)
            raise ConfigError(
                f"population.grad_clip_norm=[{values}]: a population of algo={self.algo_name} clips every "
                "member or none: give numbers only, or leave algo.grad_clip_norm=null"
            )
        self.stack_values(learners, "lr", *(["grad_clip_norm"] if all(clipped) else []))
        self.memory = TaskRingMemory(
            self.stream.n_tasks, self.memory.n_memories, self.stream.input_shape, members=self.n_members
        )

    def first_last_task(self) -> int:
        """The task id the counter starts at; any t different from it is registered on arrival."""
        return -1

    def configure_optimizers(self):
        return []  # the SGD step is written out in observe (one value of lr per member)

    def algorithm_state(self) -> dict:
        return {"observed_tasks": self.observed_tasks, "last_task": self.last_task}

    def load_algorithm_state(self, state: dict) -> None:
        self.observed_tasks, self.last_task = list(state["observed_tasks"]), state["last_task"]

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        if t != self.last_task:
            self.observed_tasks.append(t)
            self.last_task = t
        self.memory.add(x, y, t)
        weights, past_tasks = self.member_weights(), self.observed_tasks[:-1]
        for _ in range(self.glances):
            loss = self.loss(self.net_logits(x), y, t)
            grads = list(torch.autograd.grad(loss.sum(), weights))
            if self.grad_clip_norm is not None:
                clip_norm_(grads, self.grad_clip_norm)
            if past_tasks:
                grads = self.projected(grads, self.memory_gradients(past_tasks))
            with torch.no_grad():
                sgd_(weights, grads, self.lr)
        return loss.detach()

    def memory_gradients(self, tasks: list[int]) -> torch.Tensor:
        """``[..., len(tasks), n_params]``: each task's mean CE gradient over its whole memory
        row, norm-clipped if set — all rows (of every member) in one vectorised pass."""
        weights = dict(zip(self.weight_names, (w.detach() for w in self.member_weights())))

        def task_loss(w, x, y, k):
            return self.loss(functional_call(self.net, w, (x,)), y, k)

        per_task = vmap(grad(task_loss), in_dims=(None, 0, 0, 0))
        if self.weights is not None:
            per_task = vmap(per_task, in_dims=(0, 0, 0, None))
        idx = torch.tensor(tasks, device=self.memory.y.device)
        grads = per_task(weights, *self.memory.rows(idx), idx)
        lead = grads[self.weight_names[0]].shape[: self.sample_axis + 1]
        flat = torch.cat([g.reshape(*lead, -1) for g in grads.values()], dim=-1)
        if self.grad_clip_norm is not None:
            norms = torch.linalg.vector_norm(flat, dim=-1, keepdim=True)
            clip = self.grad_clip_norm
            clip = per_member(clip, norms) if isinstance(clip, torch.Tensor) else clip
            flat = flat * clip_factor(norms, clip)
        return flat

    def projected(self, grads: list[torch.Tensor], past: torch.Tensor) -> list[torch.Tensor]:
        """The gradients after each member's projection against its own past-task gradients."""
        lead = grads[0].shape[: self.sample_axis]  # the member axis, where there is one
        g = torch.cat([gr.reshape(*lead, -1) for gr in grads], dim=-1)
        rows = zip(g.reshape(-1, g.shape[-1]), past.reshape(-1, *past.shape[-2:]))
        flat = torch.stack([self.project(g_k, past_k) for g_k, past_k in rows]).view_as(g)
        parts = flat.split([gr.shape[len(lead) :].numel() for gr in grads], dim=-1)
        return [part.reshape(gr.shape) for part, gr in zip(parts, grads)]

    def project(self, g: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        """One member's projection of g (``[n_params]``) against its ``[tasks, n_params]``."""
        if bool((past @ g < 0).any()):
            return project_gem(g, past, self.memory_strength, self.qp_eps)
        return g


class AGEM(GEM):
    """A-GEM: one constraint, against the mean of the past tasks' memory gradients (Q5)."""

    def __init__(
        self,
        name: str,
        net: nn.Module,
        stream: StreamInfo,
        lr: float,
        n_memories: int,
        glances: int,
        grad_clip_norm: float | None,
        register_task0: bool,
        class_il_loss: str,
    ):
        self.register_task0 = register_task0
        # no quadratic program: GEM's margin and ridge play no part
        super().__init__(
            name,
            net,
            stream,
            lr=lr,
            n_memories=n_memories,
            memory_strength=0.0,
            glances=glances,
            grad_clip_norm=grad_clip_norm,
            qp_eps=0.0,
            class_il_loss=class_il_loss,
        )

    def first_last_task(self) -> int:
        return -1 if self.register_task0 else 0  # Q4: starting at 0 never registers task 0

    def project(self, g: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        return project_agem(g, past)
