"""A first-order La-MAML glance on an MLP with the gradients written by hand (no autograd graph).

First order, the inner gradients g_j are constants, so the fast weights after inner step i are
``fast_i = θ - S_i ⊙ r`` with ``S_i = Σ_{j≤i} g_j`` and r the inner rates (relu(α) or α). With
``G_i = ∇ L_meta(fast_i)`` the meta-gradients are then exactly

    ∇_θ L_meta = mean_i G_i          ∇_r L_meta = -mean_i S_i ⊙ G_i

— what backpropagating through the whole chain computes, without building it. Each inner step
is two forward/backward passes of the MLP (the sample; the replay batch), a few dozen small
tensor ops. Used by :class:`~lamaml_pl.algos.lamaml.LaMAML` when ``second_order`` is off, the
net is an :class:`~lamaml_pl.nets.MLP` and the stream is not task-masked; results equal the
autograd path's up to floating-point summation order (tested).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def mlp_loss_and_grads(
    weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Mean cross-entropy of an MLP ``[W1, b1, W2, b2, ...]`` (ReLU between layers) and its
    gradient with respect to every tensor."""
    activations = [x]
    h = x
    n_layers = len(weights) // 2
    for k in range(n_layers):
        z = torch.addmm(weights[2 * k + 1], h, weights[2 * k].t())
        if k < n_layers - 1:
            h = torch.relu(z)
            activations.append(h)
    loss = F.cross_entropy(z, y)
    dz = torch.softmax(z, dim=1)
    dz[torch.arange(len(y), device=y.device), y] -= 1
    dz = dz / len(y)
    grads: list[torch.Tensor] = [None] * len(weights)  # type: ignore[list-item]
    for k in reversed(range(n_layers)):
        grads[2 * k] = dz.t() @ activations[k]
        grads[2 * k + 1] = dz.sum(dim=0)
        if k > 0:
            dz = (dz @ weights[2 * k]) * (activations[k] > 0)
    return loss, grads


@torch.no_grad()
def first_order_glance(
    weights: list[torch.Tensor],
    rates: list[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    replay_x: torch.Tensor,
    replay_y: torch.Tensor,
    inner_clamp: float | None,
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """One glance: an inner step per sample of (x, y), the meta-loss on the replay batch after
    each. Returns the mean meta-loss, ∇_θ and ∇_r of it."""
    x, replay_x = x.flatten(1), replay_x.flatten(1)
    fast = [w.detach() for w in weights]
    cumulative = [torch.zeros_like(w) for w in fast]  # S_i
    grad_theta = [torch.zeros_like(w) for w in fast]  # Σ G_i
    grad_rate = [torch.zeros_like(w) for w in fast]  # Σ S_i ⊙ G_i
    total = x.new_zeros(())
    for i in range(len(y)):
        _, inner = mlp_loss_and_grads(fast, x[i : i + 1], y[i : i + 1])
        if inner_clamp is not None:
            inner = [g.clamp(-inner_clamp, inner_clamp) for g in inner]
        fast = torch._foreach_sub(fast, torch._foreach_mul(inner, rates))
        torch._foreach_add_(cumulative, inner)
        meta, outer = mlp_loss_and_grads(fast, replay_x, replay_y)
        torch._foreach_add_(grad_theta, outer)
        torch._foreach_addcmul_(grad_rate, cumulative, outer)
        total += meta
    n = len(y)
    return total / n, torch._foreach_div(grad_theta, n), torch._foreach_div(grad_rate, -n)
