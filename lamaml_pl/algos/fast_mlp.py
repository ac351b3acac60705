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


def mlp_grads(
    weights: list[torch.Tensor], x: torch.Tensor, targets: torch.Tensor, out: list[torch.Tensor],
    transposed: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """The gradient of the mean cross-entropy of an MLP ``[W1, b1, W2, b2, ...]`` (ReLU between
    layers, ``targets`` the one-hot labels), written into the tensors ``out``; returns the logits.
    ``transposed``: the weight matrices' ``.t()`` views, if the caller keeps them. The fewest
    tensor ops we found: at these sizes each costs microseconds of dispatch."""
    n_layers = len(weights) // 2
    transposed = transposed or [weights[2 * k].t() for k in range(n_layers)]
    activations = [x]
    for k in range(n_layers - 1):
        activations.append(torch.addmm(weights[2 * k + 1], activations[-1], transposed[k]).relu_())
    logits = torch.addmm(weights[-1], activations[-1], transposed[-1])
    dz = torch.softmax(logits, dim=1).sub_(targets)
    if len(x) > 1:
        dz = dz.div_(len(x))
    for k in reversed(range(n_layers)):
        torch.mm(dz.t(), activations[k], out=out[2 * k])
        torch.sum(dz, dim=0, out=out[2 * k + 1])
        if k > 0:
            dz = torch.ops.aten.threshold_backward(dz.mm(weights[2 * k]), activations[k], 0)
    return logits


def one_hot(labels: torch.Tensor, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """``F.one_hot(labels).to(dtype)`` without its bounds check, which waits for the GPU (and so
    cannot run inside a CUDA graph)."""
    return torch.zeros(*labels.shape, n_classes, dtype=dtype, device=labels.device).scatter_(-1, labels.unsqueeze(-1), 1.0)


def layer_views(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """``flat`` cut into tensors shaped as ``like`` (views: writing them writes ``flat``)."""
    return [chunk.view_as(w) for chunk, w in zip(flat.split([w.numel() for w in like]), like)]


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
    each. Returns the mean meta-loss, ∇_θ and ∇_r of it.

    All parameters live in flat vectors (fast weights, gradients, S_i, the sums), so each update
    of all layers is one tensor op; the layers are views into them."""
    x, replay_x = x.flatten(1), replay_x.flatten(1)
    n_classes = weights[-1].shape[0]
    targets, replay_targets = one_hot(y, n_classes, x.dtype), one_hot(replay_y, n_classes, x.dtype)
    fast = torch.cat([w.detach().reshape(-1) for w in weights])
    rate = torch.cat([r.reshape(-1) for r in rates])
    inner, outer, step = torch.empty_like(fast), torch.empty_like(fast), torch.empty_like(fast)
    cumulative, grad_theta, grad_rate = torch.zeros_like(fast), torch.zeros_like(fast), torch.zeros_like(fast)
    fast_layers, inner_layers, outer_layers = (layer_views(v, weights) for v in (fast, inner, outer))
    fast_t = [w.t() for w in fast_layers[::2]]
    meta_logits = []
    for i in range(len(y)):
        mlp_grads(fast_layers, x[i : i + 1], targets[i : i + 1], inner_layers, fast_t)
        if inner_clamp is not None:
            inner.clamp_(-inner_clamp, inner_clamp)
        cumulative.add_(inner)
        fast.sub_(torch.mul(inner, rate, out=step))  # fast_i = fast_{i-1} - r ⊙ g_i
        meta_logits.append(mlp_grads(fast_layers, replay_x, replay_targets, outer_layers, fast_t))
        grad_theta.add_(outer)
        grad_rate.addcmul_(cumulative, outer)
    n = len(y)
    meta_loss = F.cross_entropy(torch.cat(meta_logits), replay_y.repeat(n))  # the mean of the n meta-losses
    return meta_loss, layer_views(grad_theta.div_(n), weights), layer_views(grad_rate.div_(-n), weights)
