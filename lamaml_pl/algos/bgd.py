"""Bayesian Gradient Descent (Zeno et al., 2018), the optimiser of Meta-BGD.

Every parameter tensor has a factorised Gaussian posterior N(μ, σ²). A step averages, over
``mc_iters`` weight samples θ = μ + σ ⊙ ε, the gradient g and g ⊙ ε (each scaled by the batch
size, undoing the mean loss), then

    μ ← μ − η σ² ⊙ E[g]
    σ ← σ ⊙ sqrt(1 + (σ ⊙ E[gε] / 2)²) − σ² ⊙ E[gε] / 2

and leaves the weights at μ (what evaluation uses). Its per-parameter state lives in the
optimiser state, so checkpoints carry it. Every operation is element-wise, so the parameters may
be a population's stacked weights.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from lamaml_pl.algos.draws import GLOBAL_DRAWS
from lamaml_pl.errors import require_positive


class BGD(torch.optim.Optimizer):
    def __init__(self, params: Iterable[torch.Tensor], std_init: float, mean_eta: float, mc_iters: int):
        require_positive("algo", std_init=std_init, mean_eta=mean_eta, mc_iters=mc_iters)
        super().__init__(params, {"std_init": std_init, "mean_eta": mean_eta, "mc_iters": int(mc_iters)})
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["mean"] = p.detach().clone()
                state["std"] = torch.full_like(p, std_init)
                state["eps"] = torch.zeros_like(p)
                state["sum_grad"] = torch.zeros_like(p)
                state["sum_grad_eps"] = torch.zeros_like(p)

    def _params(self):
        for group in self.param_groups:
            for p in group["params"]:
                yield group, p, self.state[p]

    @torch.no_grad()
    def randomize_weights(self, draws=GLOBAL_DRAWS) -> None:
        """Set every tensor to a fresh sample μ + σ ⊙ ε, ε from ``draws`` (a population's: each
        member's from its own generator)."""
        draws.normal_([state["eps"] for _, _, state in self._params()])
        for _, p, state in self._params():
            p.copy_(state["mean"] + state["std"] * state["eps"])

    @torch.no_grad()
    def aggregate_grads(self, grads: list[torch.Tensor], batch_size: int) -> None:
        """Add this sample's gradient (× batch size) and gradient ⊙ ε to the sums: ``grads`` one
        per parameter, in the optimiser's order (no host sync: it can run in a CUDA graph)."""
        for (_, _, state), grad in zip(self._params(), grads, strict=True):
            g = grad * batch_size
            state["sum_grad"].add_(g)
            state["sum_grad_eps"].add_(g * state["eps"])

    def sums(self) -> list[torch.Tensor]:
        """The tensors :meth:`aggregate_grads` adds to."""
        return [state[name] for _, _, state in self._params() for name in ("sum_grad", "sum_grad_eps")]

    @torch.no_grad()
    def step(self, closure=None):
        for group, p, state in self._params():
            mean_grad = state["sum_grad"] / group["mc_iters"]
            mean_grad_eps = state["sum_grad_eps"] / group["mc_iters"]
            std = state["std"]
            state["mean"].sub_(group["mean_eta"] * std**2 * mean_grad)
            half = std * mean_grad_eps / 2
            state["std"] = std * torch.sqrt(1 + half**2) - std * half
            p.copy_(state["mean"])
            state["sum_grad"].zero_()
            state["sum_grad_eps"].zero_()
        return None
