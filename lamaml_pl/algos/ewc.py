"""EWC as in MER's / GEM's code.

Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks", PNAS 2017.
At every task switch the "Fisher" of the finished task is the square of the mini-batch-mean
gradient over the first ``n_memories`` examples seen of that task, at the current weights, and
the anchor is the current weights. Loss = CE + memory_strength · Σ_k Σ F_k ⊙ (θ − θ_k)², no ½.

The sum over past tasks is kept in closed form, Σ_k F_k (θ − θ_k)² = A ⊙ (θ − μ)² + c with
A = Σ_k F_k, μ = Σ_k F_k θ_k / A and c = Σ_k F_k θ_k² − A μ², so each step costs the same
whatever the number of past tasks; value and gradient equal the per-task sum.
"""

from __future__ import annotations

import torch
from torch import nn

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.errors import require_non_negative, require_positive
from lamaml_pl.stream import StreamInfo


class EWC(ContinualLearner):
    def __init__(
        self,
        name: str,
        net: nn.Module,
        stream: StreamInfo,
        lr: float,
        memory_strength: float,
        n_memories: int,
        class_il_loss: str,
    ):
        super().__init__(name, net, stream, class_il_loss)
        require_positive("algo", lr=lr, n_memories=n_memories)
        require_non_negative("algo", memory_strength=memory_strength)
        self.save_hyperparameters(ignore=["name", "net", "stream"])
        self.lr, self.memory_strength, self.n_memories = lr, memory_strength, int(n_memories)
        for i, p in enumerate(net.parameters()):
            self.register_buffer(f"fisher_sum_{i}", torch.zeros_like(p))  # A
            self.register_buffer(f"anchor_{i}", torch.zeros_like(p))  # μ
            self.register_buffer(f"offset_{i}", torch.zeros(()))  # c, summed over elements
        self.store_x: list[torch.Tensor] = []
        self.store_y: list[torch.Tensor] = []

    def configure_optimizers(self):
        return torch.optim.SGD(self.net.parameters(), lr=self.lr)

    def algorithm_state(self) -> dict:
        return {"store_x": self.store_x, "store_y": self.store_y}

    def load_algorithm_state(self, state: dict) -> None:
        self.store_x, self.store_y = list(state["store_x"]), list(state["store_y"])

    def consolidation(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        n = len(list(self.net.parameters()))
        return [
            (getattr(self, f"fisher_sum_{i}"), getattr(self, f"anchor_{i}"), getattr(self, f"offset_{i}"))
            for i in range(n)
        ]

    def on_task_start(self, t: int) -> None:
        if self.store_y:
            stored_x, stored_y = torch.cat(self.store_x)[: self.n_memories], torch.cat(self.store_y)[: self.n_memories]
            self.consolidate(stored_x, stored_y, t - 1)
        self.store_x, self.store_y = [], []

    @torch.enable_grad()
    def consolidate(self, x: torch.Tensor, y: torch.Tensor, task: int) -> None:
        """Add the finished task's (F, θ*) to the closed-form sum."""
        self.net.zero_grad(set_to_none=False)
        self.loss(self.net(x), y, task).backward()
        with torch.no_grad():
            for p, (A, mu, c) in zip(self.net.parameters(), self.consolidation()):
                fisher = p.grad**2
                weighted = A * mu + fisher * p  # Σ F_k θ_k
                squares = c + (A * mu**2).sum() + (fisher * p**2).sum()  # Σ F_k θ_k²
                A += fisher
                mu.copy_(torch.where(A > 0, weighted / A.clamp_min(1e-30), torch.zeros_like(mu)))
                c.copy_(squares - (A * mu**2).sum())
        self.net.zero_grad(set_to_none=False)

    def penalty(self) -> torch.Tensor:
        """Σ_k Σ F_k ⊙ (θ − θ_k)² over all finished tasks (without memory_strength)."""
        return sum(
            ((A * (p - mu) ** 2).sum() + c) for p, (A, mu, c) in zip(self.net.parameters(), self.consolidation())
        )

    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        if sum(len(s) for s in self.store_y) < self.n_memories:
            self.store_x.append(x.detach())
            self.store_y.append(y.detach())
        opt = self.optimizers()
        opt.zero_grad()
        loss = self.loss(self.net(x), y, t) + self.memory_strength * self.penalty()
        self.manual_backward(loss)
        opt.step()
        return loss.detach()
