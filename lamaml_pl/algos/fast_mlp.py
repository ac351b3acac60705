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


def mlp_grads(weights: list[torch.Tensor], x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and the gradient of the mean cross-entropy of an MLP ``[W1, b1, W2, b2, ...]``
    (ReLU between layers), with ``targets`` the one-hot labels; the fewest tensor ops we found
    (each costs microseconds of dispatch at these sizes)."""
    activations = [x]
    n_layers = len(weights) // 2
    for k in range(n_layers - 1):
        activations.append(torch.relu(torch.addmm(weights[2 * k + 1], activations[-1], weights[2 * k].t())))
    logits = torch.addmm(weights[-1], activations[-1], weights[-2].t())
    dz = torch.softmax(logits, dim=1) - targets
    if len(x) > 1:
        dz = dz.div_(len(x))
    grads: list[torch.Tensor] = [None] * len(weights)  # type: ignore[list-item]
    for k in reversed(range(n_layers)):
        grads[2 * k] = dz.t().mm(activations[k])
        grads[2 * k + 1] = dz.sum(dim=0)
        if k > 0:
            dz = torch.ops.aten.threshold_backward(dz.mm(weights[2 * k]), activations[k], 0)
    return logits, grads


def one_hot(labels: torch.Tensor, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """``F.one_hot(labels).to(dtype)`` without its bounds check, which waits for the GPU (and so
    cannot run inside a CUDA graph)."""
    return torch.zeros(*labels.shape, n_classes, dtype=dtype, device=labels.device).scatter_(-1, labels.unsqueeze(-1), 1.0)


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
    n_classes = weights[-1].shape[0]
    targets, replay_targets = one_hot(y, n_classes, x.dtype), one_hot(replay_y, n_classes, x.dtype)
    fast = [w.detach() for w in weights]
    cumulative = [torch.zeros_like(w) for w in fast]  # S_i
    grad_theta = [torch.zeros_like(w) for w in fast]  # Σ G_i
    grad_rate = [torch.zeros_like(w) for w in fast]  # Σ S_i ⊙ G_i
    meta_logits = []
    for i in range(len(y)):
        _, inner = mlp_grads(fast, x[i : i + 1], targets[i : i + 1])
        if inner_clamp is not None:
            inner = torch._foreach_clamp_max(torch._foreach_clamp_min(inner, -inner_clamp), inner_clamp)
        torch._foreach_add_(cumulative, inner)
        fast = torch._foreach_sub(fast, torch._foreach_mul(inner, rates))
        logits, outer = mlp_grads(fast, replay_x, replay_targets)
        torch._foreach_add_(grad_theta, outer)
        torch._foreach_addcmul_(grad_rate, cumulative, outer)
        meta_logits.append(logits)
    n = len(y)
    meta_loss = F.cross_entropy(torch.cat(meta_logits), replay_y.repeat(n))  # the mean of the n meta-losses
    return meta_loss, torch._foreach_div(grad_theta, n), torch._foreach_div(grad_rate, -n)
