"""GEM and A-GEM: gradient projections against a per-task episodic memory.

Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", NeurIPS 2017;
Chaudhry et al., "Efficient Lifelong Learning with A-GEM", ICLR 2019.
Both as the La-MAML repository's copies run them.

Per incoming batch: write it into task t's memory row; then for each glance compute the gradient
of every earlier observed task's whole memory row, then the gradient g of the current batch; if g
conflicts with the past gradients, replace it by its projection; one SGD step.

Quirks (faithful defaults; the option gives the other behaviour):
- Q6 ``qp_eps`` (1e-3): the ridge on the QP's diagonal; ``grad_clip_norm`` (GEM's copy clips
  every gradient to this norm before projecting; null = no clipping, as original GEM/MER).
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
from lamaml_pl.algos.gradients import flat_grad, project_agem, project_gem, write_flat_grad
from lamaml_pl.errors import require_non_negative, require_positive
from lamaml_pl.stream import StreamInfo


class GEM(ContinualLearner):
    """GEM: project g onto {g~ : g~ · g_k >= 0 for every past task k} when any g · g_k < 0."""

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
    ):
        super().__init__(name, net, stream)
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

    def first_last_task(self) -> int:
        """The task id the counter starts at; any t different from it is registered on arrival."""
        return -1

    def configure_optimizers(self):
        return torch.optim.SGD(self.net.parameters(), lr=self.lr)

    def algorithm_state(self) -> dict:
        return {"observed_tasks": self.observed_tasks, "last_task": self.last_task}

    def load_algorithm_state(self, state: dict) -> None:
        self.observed_tasks, self.last_task = list(state["observed_tasks"]), state["last_task"]

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        if t != self.last_task:
            self.observed_tasks.append(t)
            self.last_task = t
        self.memory.add(x, y, t)
        opt = self.optimizers()
        past_tasks = self.observed_tasks[:-1]
        for _ in range(self.glances):
            opt.zero_grad()
            loss = self.loss(self.net(x), y, t)
            self.manual_backward(loss)
            if self.grad_clip_norm is not None:
                nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip_norm)
            if past_tasks:
                g = flat_grad(self.net.parameters())
                past = self.memory_gradients(past_tasks)
                write_flat_grad(self.net.parameters(), self.project(g, past))
            opt.step()
        return loss.detach()

    def memory_gradients(self, tasks: list[int]) -> torch.Tensor:
        """[len(tasks), n_params]: each task's mean CE gradient over its whole memory row,
        norm-clipped if set — all rows in one vectorised pass (torch.func.vmap)."""
        params = {name: p.detach() for name, p in self.net.named_parameters()}

        def task_loss(p, x, y, k):
            return self.loss(functional_call(self.net, p, (x,)), y, k)

        idx = torch.tensor(tasks, device=self.memory.y.device)
        grads = vmap(grad(task_loss), in_dims=(None, 0, 0, 0))(params, self.memory.x[idx], self.memory.y[idx], idx)
        flat = torch.cat([g.reshape(len(tasks), -1) for g in grads.values()], dim=1)
        if self.grad_clip_norm is not None:
            norms = torch.linalg.vector_norm(flat, dim=1, keepdim=True)
            flat = flat * (self.grad_clip_norm / (norms + 1e-6)).clamp(max=1.0)
        return flat

    def project(self, g: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
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
        )

    def first_last_task(self) -> int:
        return -1 if self.register_task0 else 0  # Q4: starting at 0 never registers task 0

    def project(self, g: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        return project_agem(g, past.mean(dim=0))
