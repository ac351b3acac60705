"""A first-order La-MAML glance on an MLP with the gradients written by hand (no autograd graph).

First order, the inner gradients g_j are constants, so the fast weights after inner step i are
``fast_i = θ - S_i ⊙ r`` with ``S_i = Σ_{j≤i} g_j`` and r the inner rates (relu(α) or α). With
``G_i = ∇ L_meta(fast_i)`` the meta-gradients are then exactly

    ∇_θ L_meta = mean_i G_i          ∇_r L_meta = -mean_i S_i ⊙ G_i

— what backpropagating through the whole chain computes, without building it. Each inner step
is two forward/backward passes of the MLP (the sample; the replay batch), a few dozen small
tensor ops. Used by :class:`~lamaml_pl.algos.lamaml.LaMAML` when ``second_order`` is off, the
net is an :class:`~lamaml_pl.nets.MLP` and the stream is not task-masked; results equal the
autograd path's up to floating-point summation order (tested). :class:`FactoredGlance` computes
the same glance without forming the first layer's fast weights (the default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mlp_grads(
    weights: list[torch.Tensor],
    x: torch.Tensor,
    targets: torch.Tensor,
    out: list[torch.Tensor],
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


def one_hot(labels: torch.Tensor, n_classes: int, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
    """``F.one_hot(labels).to(dtype)`` without its bounds check, which waits for the GPU (and so
    cannot run inside a CUDA graph); written into ``out`` if given."""
    target = torch.zeros(*labels.shape, n_classes, dtype=dtype, device=labels.device) if out is None else out.zero_()
    return target.scatter_(-1, labels.unsqueeze(-1), 1.0)


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


def tail_grads(
    tail: list[torch.Tensor],
    first: torch.Tensor,
    targets: torch.Tensor,
    out: list[torch.Tensor],
    transposed: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP above its first weight matrix for k weight sets at once: ``tail`` = ``[b1, W2, b2,
    ..., WL, bL]`` each with a leading axis of k, ``first`` the first layer's products ``x W1ᵀ``
    (k, m, H); ``transposed``: the views ``Wᵀ`` of ``tail``'s matrices, if the caller keeps them
    (each is an op). Writes the gradients of the mean cross-entropy over the m samples into ``out``
    (shaped as ``tail``); returns the logits and the gradient at the first layer's pre-activations."""
    n_layers = (len(tail) + 1) // 2
    transposed = transposed or [w.transpose(1, 2) for w in tail[1::2]]
    activations = [first.add_(tail[0].unsqueeze(1)).relu_()]
    for k in range(1, n_layers):
        z = torch.baddbmm(tail[2 * k].unsqueeze(1), activations[-1], transposed[k - 1])
        activations.append(z.relu_() if k < n_layers - 1 else z)
    logits = activations.pop()
    dz = torch.softmax(logits, dim=-1).sub_(targets)
    samples = targets.shape[-2]
    if samples > 1:
        dz = dz.div_(samples)
    for k in reversed(range(1, n_layers)):
        torch.bmm(dz.transpose(1, 2), activations[k - 1], out=out[2 * k - 1])  # not matmul: its dispatch costs more
        torch.sum(dz, dim=1, out=out[2 * k])
        dz = torch.ops.aten.threshold_backward(torch.bmm(dz, tail[2 * k - 1]), activations[k - 1], 0)
    torch.sum(dz, dim=1, out=out[0])
    return logits, dz


def sample_tail_grads(
    tail: list[torch.Tensor],
    transposed: list[torch.Tensor],
    first: torch.Tensor,
    target: torch.Tensor,
    out: list[torch.Tensor],
) -> torch.Tensor:
    """:func:`tail_grads` for one sample (``first``, ``target``: one row each), in fewer ops: a
    bias's gradient is then its layer's pre-activation gradient itself, so the backward pass
    computes each of those straight into its bias's slot of ``out`` (biases shaped (1, width)).
    Returns δ, the gradient at the first layer's pre-activations (a view of ``out[0]``)."""
    n_layers = (len(tail) + 1) // 2
    activations = [first.add_(tail[0]).relu_()]
    for k in range(1, n_layers):
        z = torch.addmm(tail[2 * k], activations[-1], transposed[k - 1])
        activations.append(z.relu_() if k < n_layers - 1 else z)
    dz = torch.ops.aten._softmax.out(activations.pop(), -1, False, out=out[-1]).sub_(target)
    for k in reversed(range(1, n_layers)):
        torch.mm(dz.t(), activations[k - 1], out=out[2 * k - 1])
        dz = torch.ops.aten.threshold_backward.grad_input(
            torch.mm(dz, tail[2 * k - 1]), activations[k - 1], 0, grad_input=out[2 * k - 2]
        )
    return dz


class InnerLoop:
    """The buffers of :class:`FactoredGlance` with every per-step view of them, made once per
    shape: a step then only computes (no tensor indexing, no allocation of its state)."""

    def __init__(self, n: int, m: int, tail: list[torch.Tensor]):
        width, n_classes = tail[0].shape[0], tail[-1].shape[0]
        like = dict(dtype=tail[0].dtype, device=tail[0].device)
        self.fast = torch.empty(n + 1, sum(w.numel() for w in tail), **like)  # row i: the tail before step i
        self.inner = torch.empty(n, self.fast.shape[1], **like)  # row j: g_j, the tail's gradient at step j
        self.outer = torch.empty_like(self.inner)  # row i: G_i, the meta-batch's gradient after step i
        self.first = torch.empty(n, width, **like)  # row i: x_i W1ᵀ, less δ_j ⊙ R1 (x_j ⊙ x_i) for each j < i
        self.delta = self.inner[:, :width]  # row j: δ_j, which is b1's gradient g_j
        self.targets = torch.empty(n, n_classes, **like)
        self.upper = torch.ones(n, n, **like).triu_()  # sums over steps as products
        # [j, s]: R1 (x_j ⊙ X_s) for the meta-batch X; it ends with the incoming samples, so
        # [j, m - n + i] is R1 (x_j ⊙ x_i), the shift inner step j makes in sample i's x W1ᵀ
        self.shifts = torch.empty(n, m, width, **like)
        fast_layers, inner_layers = stacked_views(self.fast, tail), stacked_views(self.inner, tail)
        self.steps = []
        for j in range(n):
            fast_j = [v[j] for v in fast_layers]
            self.steps.append(
                (  # biases' gradients as rows (1, width): sample_tail_grads writes into them
                    fast_j,
                    [w.t() for w in fast_j[1::2]],
                    self.first[j : j + 1],
                    self.targets[j : j + 1],
                    [v[j : j + 1] if k % 2 == 0 else v[j] for k, v in enumerate(inner_layers)],
                    self.first[j + 1 :],
                    self.shifts[j, m - n + j + 1 :],
                    self.fast[j],
                    self.inner[j],
                    self.fast[j + 1],
                )
            )
        # the meta pass: the tails after steps 1..n, their gradients
        self.meta_fast = stacked_views(self.fast[1:], tail)
        self.meta_transposed = [w.transpose(1, 2) for w in self.meta_fast[1::2]]
        self.meta_out = stacked_views(self.outer, tail)


class FactoredGlance:
    """:func:`first_order_glance` (unclamped) without ever forming the first layer's fast weights.

    An inner step's gradient of W1 is the outer product δ_j x_jᵀ (δ_j: the gradient at the first
    layer's pre-activations for sample j), so with R1 = the rates of W1

        fast W1 after step i = W1 - R1 ⊙ Σ_{j≤i} δ_j x_jᵀ
        x (fast W1)ᵀ         = x W1ᵀ - Σ_{j≤i} δ_j ⊙ ((x ⊙ x_j) R1ᵀ)          (any input x)

    and ∇_{R1} of the mean meta-loss is -1/n Σ_j (δ_j x_jᵀ) ⊙ (T_jᵀ X) with T_j = Σ_{i≥j} D_i (D_i:
    the meta-batch X's gradients at the first layer after step i): one product (δ ⊙ T)ᵀ (X ⊙ x)
    over all (j, sample) pairs. So the inner loop only steps the small layers above W1 (11k of the
    MNIST MLP's 89k weights), and the meta pass of all n fast-weight sets is a few large products
    instead of n small ones. The inner steps' own shifts R1 (x_j ⊙ x_i) are rows of the meta pass's
    (X ⊙ x_j) R1ᵀ, as the meta-batch X ends with the incoming samples: one product, made first.
    The other layers' rate gradients use the same exchange of sums:
    Σ_i (Σ_{j≤i} g_j) ⊙ G_i = Σ_j g_j ⊙ Σ_{i≥j} G_i. On the CPU the first layer's products skip the
    pixels that are zero in every incoming sample (X ⊙ x_j vanishes there; MNIST digits are ~80%
    zeros). Same quantities as the per-sample form; the floating-point sums run in another order
    (equal to 1e-12 in float64, tested). ``rate_grads=False`` (C-MAML) skips ∇rate: None.

    A callable that keeps its buffers and views (:class:`InnerLoop`, one per number of steps,
    meta-batch size, dtype and device) from glance to glance: on the CPU the glance is
    dispatch-bound, and indexing and allocating were a fifth of its small ops. Under a CUDA graph every capture shares
    them: each glance writes every buffer before reading it.
    """

    def __init__(self):
        self.loops: dict[tuple, InnerLoop] = {}

    @torch.no_grad()
    def __call__(
        self,
        weights: list[torch.Tensor],
        rates: list[torch.Tensor],
        replay_x: torch.Tensor,
        replay_y: torch.Tensor,
        n: int,
        rate_grads: bool = True,
        with_loss: bool = True,
    ) -> tuple[torch.Tensor | None, list[torch.Tensor], list[torch.Tensor] | None]:
        """(mean meta-loss, ∇θ, ∇rate) of a glance with meta-batch (replay_x, replay_y) whose last
        n samples are the incoming batch, the inner loop's (La-MAML's replay ∪ B);
        ``with_loss=False`` skips the loss (None) when only the gradients are used."""
        m = len(replay_y)
        replay_x = replay_x.flatten(1)
        x, y = replay_x[m - n :], replay_y[m - n :]
        w1, r1, tail = weights[0].detach(), rates[0], [w.detach() for w in weights[1:]]
        n_classes = tail[-1].shape[0]
        loop = self.loops.get((n, m, x.dtype, x.device))
        if loop is None:
            loop = self.loops[(n, m, x.dtype, x.device)] = InnerLoop(n, m, tail)
        tail_rate = torch.cat([r.reshape(-1) for r in rates[1:]])
        pixels = x.any(0).nonzero().squeeze(1) if x.device.type == "cpu" else None
        x_used, replay_used, r1_used = (  # index_select: a third of the cost of x[:, pixels]
            (x, replay_x, r1)
            if pixels is None
            else (x.index_select(1, pixels), replay_x.index_select(1, pixels), r1.index_select(1, pixels))
        )
        masked = (replay_used.unsqueeze(0) * x_used.unsqueeze(1)).view(n * m, -1)  # rows X ⊙ x_j
        torch.mm(masked, r1_used.t(), out=loop.shifts.view(n * m, -1))

        # the inner loop: one sample at a time; the tail's fast weights and gradients kept per step
        torch.cat([w.reshape(-1) for w in tail], out=loop.fast[0])
        one_hot(y, n_classes, x.dtype, out=loop.targets)
        torch.mm(x, w1.t(), out=loop.first)
        for fast, transposed, first, target, grads, later_first, shifts, fast_row, inner_row, next_row in loop.steps:
            delta = sample_tail_grads(fast, transposed, first, target, grads)
            later_first.addcmul_(shifts, delta, value=-1)
            torch.addcmul(fast_row, inner_row, tail_rate, value=-1, out=next_row)
        inner, outer, delta, upper = loop.inner, loop.outer, loop.delta, loop.upper

        # the meta pass of the n fast-weight sets at once
        replay_targets = one_hot(replay_y, n_classes, x.dtype)
        shifts = loop.shifts.mul_(delta.unsqueeze(1))
        shifts = torch.mm(upper.t(), shifts.view(n, -1)).view(n, m, -1)  # row i: Σ_{j≤i}
        first = torch.mm(replay_x, w1.t()).expand(n, -1, -1) - shifts
        logits, dz = tail_grads(
            loop.meta_fast, first, replay_targets.expand(n, -1, -1), loop.meta_out, loop.meta_transposed
        )
        meta_loss = F.cross_entropy(logits.reshape(n * m, n_classes), replay_y.repeat(n)) if with_loss else None
        grad_theta = [torch.mm(dz.sum(0).t(), replay_x).div_(n), *layer_views(outer.sum(0).div_(n), tail)]
        if not rate_grads:
            return meta_loss, grad_theta, None
        later = torch.mm(upper, outer)  # row j: Σ_{i≥j} G_i
        rate_tail = later.mul_(inner).sum(0).div_(-n)
        suffix = torch.mm(upper, dz.view(n, -1)).view(n, m, -1).mul_(delta.unsqueeze(1))  # δ_j ⊙ T_j
        rate_w1 = torch.mm(suffix.view(n * m, -1).t(), masked).div_(-n)
        if pixels is not None:
            rate_w1 = torch.zeros_like(w1).index_copy_(1, pixels, rate_w1)
        return meta_loss, grad_theta, [rate_w1, *layer_views(rate_tail, tail)]


def stacked_views(rows: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """``rows`` (k, Σ numel) as one (k, *shape) view per tensor of ``like``."""
    return [block.view(len(rows), *w.shape) for block, w in zip(rows.split([w.numel() for w in like], dim=1), like)]
