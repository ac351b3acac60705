"""La-MAML's first-order glance on an MLP with the gradients written by hand (no autograd graph),
for one learner or for N members at once (every tensor with a leading member axis).

First order, the inner gradients g_j are constants, so the fast weights after inner step i are
``fast_i = θ - S_i ⊙ r`` with ``S_i = Σ_{j≤i} g_j`` and r the inner rates (relu(α) or α). With
``G_i = ∇ L_meta(fast_i)`` the meta-gradients are then exactly

    ∇_θ L_meta = mean_i G_i          ∇_r L_meta = -mean_i S_i ⊙ G_i

— what backpropagating through the whole chain computes, without building it. An inner step's
gradient of W1 is moreover the outer product δ_j x_jᵀ (δ_j: the gradient at the first layer's
pre-activations for sample j), so with R1 = the rates of W1

    fast W1 after step i = W1 - R1 ⊙ Σ_{j≤i} δ_j x_jᵀ
    x (fast W1)ᵀ         = x W1ᵀ - Σ_{j≤i} δ_j ⊙ ((x ⊙ x_j) R1ᵀ)          (any input x)

and ∇_{R1} of the mean meta-loss is -1/n Σ_j (δ_j x_jᵀ) ⊙ (T_jᵀ X) with T_j = Σ_{i≥j} D_i (D_i:
the meta-batch X's gradients at the first layer after step i): one product (δ ⊙ T)ᵀ (X ⊙ x)
over all (j, sample) pairs. So the first layer's fast weights are never formed: the inner loop
only steps the small layers above W1 (11k of the MNIST MLP's 89k weights), and the meta pass of
all n fast-weight sets is a few large products instead of n small ones. The inner steps' own
shifts R1 (x_j ⊙ x_i) are rows of the meta pass's (X ⊙ x_j) R1ᵀ, as the meta-batch X ends with
the incoming samples. The other layers' rate gradients use the same exchange of sums:
Σ_i (Σ_{j≤i} g_j) ⊙ G_i = Σ_j g_j ⊙ Σ_{i≥j} G_i. On the CPU the first layer's products skip the
pixels that are zero in every incoming sample (X ⊙ x_j vanishes there; MNIST digits are ~80%
zeros).

:func:`mlp_loss_grads` is the plain SGD gradient of an MLP written the same way (ER's glance).

Used by :class:`~lamaml_pl.algos.lamaml.LaMAML` (``fast_mlp``) when the glance is first order,
the net an :class:`~lamaml_pl.nets.MLP` with a hidden layer, the stream not task-masked and the
inner gradients unclamped; equal to the autograd glance to 1e-12 in float64 (tested). A single
learner's tensors have no member axis and take 2-D products (``mm``); members' take batched ones
(``bmm``): the same code, a member axis or none.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def one_hot(labels: torch.Tensor, n_classes: int, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
    """``F.one_hot(labels).to(dtype)`` without its bounds check, which waits for the GPU (and so
    cannot run inside a CUDA graph); written into ``out`` if given."""
    target = torch.zeros(*labels.shape, n_classes, dtype=dtype, device=labels.device) if out is None else out.zero_()
    return target.scatter_(-1, labels.unsqueeze(-1), 1.0)


def layer_views(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """``flat`` (..., Σ numel) cut along its last axis into tensors shaped as ``like`` (views:
    writing them writes ``flat``)."""
    lead = flat.dim() - 1
    sizes = [w.shape[lead:].numel() for w in like]
    return [chunk.view(w.shape) for chunk, w in zip(flat.split(sizes, dim=-1), like)]


def stacked_views(rows: torch.Tensor, shapes: list[torch.Size]) -> list[torch.Tensor]:
    """``rows`` (k, ..., Σ numel) as one (k, *shape) view per shape; each shape starts with the
    ``...`` axes of ``rows``."""
    lead = rows.dim() - 2
    sizes = [shape[lead:].numel() for shape in shapes]
    return [chunk.view(len(rows), *shape) for chunk, shape in zip(rows.split(sizes, dim=-1), shapes)]


def mm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` for matrices or for stacks of them (``mm`` / ``bmm``: ``matmul``'s dispatch costs more)."""
    return torch.mm(a, b, out=out) if a.dim() == 2 else torch.bmm(a, b, out=out)


def addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``bias + a @ b``, as :func:`mm`."""
    return torch.addmm(bias, a, b) if a.dim() == 2 else torch.baddbmm(bias, a, b)


def mlp_loss_grads(
    weights: list[torch.Tensor],
    x: torch.Tensor,
    loss_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The loss of an MLP with ``weights`` ``[W1, b1, ..., WL, bL]`` (a member axis in front, or
    none) on ``x``, and its gradients, with no autograd graph (on the CPU its ~60 small ops cost
    more than the products): ``loss_and_grad(logits)`` gives the loss and its gradient at the
    logits (the learner's :meth:`~lamaml_pl.algos.base.ContinualLearner.loss_and_logit_grad`),
    and the backward pass is written out."""
    lead = weights[0].dim() - 2
    inputs = [x.flatten(lead + 1)]
    for k in range(0, len(weights), 2):
        bias = weights[k + 1] if not lead else weights[k + 1].unsqueeze(-2)
        z = addmm(bias, inputs[-1], weights[k].transpose(-1, -2))
        inputs.append(z.relu_() if k < len(weights) - 2 else z)
    loss, dz = loss_and_grad(inputs.pop())
    grads = [dz] * len(weights)
    for k in reversed(range(0, len(weights), 2)):
        grads[k], grads[k + 1] = mm(dz.transpose(-1, -2), inputs[k // 2]), dz.sum(-2)
        if k:
            dz = torch.ops.aten.threshold_backward(mm(dz, weights[k]), inputs[k // 2], 0)
    return loss, grads


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
        torch.bmm(dz.transpose(1, 2), activations[k - 1], out=out[2 * k - 1])
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
    """:func:`tail_grads` for one sample per weight set (``first``, ``target``: one row each, of
    one learner or of each member), in fewer ops: a bias's gradient is then its layer's
    pre-activation gradient itself, so the backward pass computes each of those straight into its
    bias's slot of ``out`` (biases as rows). Returns δ, the gradient at the first layer's
    pre-activations (a view of ``out[0]``)."""
    n_layers = (len(tail) + 1) // 2
    activations = [first.add_(tail[0]).relu_()]
    for k in range(1, n_layers):
        z = addmm(tail[2 * k], activations[-1], transposed[k - 1])
        activations.append(z.relu_() if k < n_layers - 1 else z)
    dz = torch.ops.aten._softmax.out(activations.pop(), -1, False, out=out[-1]).sub_(target)
    for k in reversed(range(1, n_layers)):
        mm(dz.transpose(-1, -2), activations[k - 1], out=out[2 * k - 1])
        dz = torch.ops.aten.threshold_backward.grad_input(
            mm(dz, tail[2 * k - 1]), activations[k - 1], 0, grad_input=out[2 * k - 2]
        )
    return dz


class InnerLoop:
    """The buffers of :class:`FactoredGlance` with every per-step view of them, made once per
    shape: a step then only computes (no tensor indexing, no allocation of its state).

    Tails, their gradients and sums over steps are laid out step by step (step, [member,] weights),
    so that the n fast-weight sets of every member are one contiguous stack for the meta pass and
    a sum over steps is one matrix product; the first layer's products member by member
    ([member,] step, ...), as the members' products come out of them."""

    def __init__(self, n: int, m: int, tail: list[torch.Tensor]):
        lead = tail[1].shape[:-2]  # (members,) or ()
        width, n_classes = tail[0].shape[-1], tail[-1].shape[-1]
        size = sum(w.shape[len(lead) :].numel() for w in tail)
        like = dict(dtype=tail[0].dtype, device=tail[0].device)
        self.fast = torch.empty(n + 1, *lead, size, **like)  # [i]: the tail before step i
        self.inner = torch.empty(n, *lead, size, **like)  # [j]: g_j, the tail's gradient at step j
        self.outer = torch.empty_like(self.inner)  # [i]: G_i, the meta-batch's gradient after step i
        self.delta = self.inner[..., :width]  # [j]: δ_j, which is b1's gradient g_j
        self.first = torch.empty(*lead, n, width, **like)  # x_i W1ᵀ, less δ_j ⊙ R1 (x_j ⊙ x_i) for each j < i
        self.targets = torch.empty(*lead, n, n_classes, **like)
        self.upper = torch.ones(n, n, **like).triu_()  # sums over steps as products
        # [j, s]: R1 (x_j ⊙ X_s) for the meta-batch X; it ends with the incoming samples, so
        # [j, m - n + i] is R1 (x_j ⊙ x_i), the shift inner step j makes in sample i's x W1ᵀ
        self.shifts = torch.empty(*lead, n, m, width, **like)

        def steps(v: torch.Tensor, index: int | slice) -> torch.Tensor:  # of a buffer laid out member by member
            return v[index] if not lead else v[:, index]

        def row(v: torch.Tensor) -> torch.Tensor:  # one step of a stacked bias as a row (of each member)
            return v.unsqueeze(-2) if lead else v

        shapes = [w.shape for w in tail]
        fast_layers, inner_layers = stacked_views(self.fast, shapes), stacked_views(self.inner, shapes)
        self.steps = []
        for j in range(n):
            fast_j = [v[j] if k % 2 else row(v[j]) for k, v in enumerate(fast_layers)]
            if lead:  # softmax's and threshold_backward's out= write strided (members, 1, width) rows
                # wrongly: members' bias gradients go to rows of their own, copied into place after the step
                grads_j = [v[j] if k % 2 else torch.empty_like(row(v[j])) for k, v in enumerate(inner_layers)]
                copy = ([row(v[j]) for v in inner_layers[::2]], grads_j[::2])
            else:
                grads_j, copy = [v[j] if k % 2 else v[j : j + 1] for k, v in enumerate(inner_layers)], None
            self.steps.append(
                (
                    fast_j,
                    [w.transpose(-1, -2) for w in fast_j[1::2]],
                    steps(self.first, slice(j, j + 1)),
                    steps(self.targets, slice(j, j + 1)),
                    grads_j,
                    steps(self.first, slice(j + 1, None)),
                    steps(self.shifts, j)[..., m - n + j + 1 :, :],
                    self.fast[j],
                    self.inner[j],
                    self.fast[j + 1],
                    copy,
                )
            )
        # the meta pass: the tails after steps 1..n of every member, and their gradients
        sets, per_set = n * lead.numel(), [shape[len(lead) :] for shape in shapes]
        self.meta_fast = stacked_views(self.fast[1:].reshape(sets, size), per_set)
        self.meta_transposed = [w.transpose(1, 2) for w in self.meta_fast[1::2]]
        self.meta_out = stacked_views(self.outer.view(sets, size), per_set)


class FactoredGlance:
    """The glance, as a callable that keeps its buffers and views (:class:`InnerLoop`, one per
    number of steps, meta-batch size, members, dtype and device) from glance to glance: on the
    CPU the glance is dispatch-bound, and indexing and allocating were a fifth of its small ops.
    Under a CUDA graph every capture shares them: each glance writes every buffer before reading
    it. ``rate_grads=False`` (C-MAML) skips ∇rate: None.
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
        n samples are the incoming batch, the inner loop's (La-MAML's replay ∪ B). Members: every
        tensor with a leading member axis, the losses per member. ``with_loss=False`` skips the
        loss (None) when only the gradients are used."""
        lead = weights[0].shape[:-2]  # (members,) or ()
        m = replay_y.shape[-1]
        replay_x = replay_x.flatten(len(lead) + 1)
        x, y = replay_x[..., m - n :, :], replay_y[..., m - n :]
        w1, r1, tail = weights[0].detach(), rates[0], [w.detach() for w in weights[1:]]
        n_classes = tail[-1].shape[-1]
        key = (n, m, lead, x.dtype, x.device)
        loop = self.loops.get(key)
        if loop is None:
            loop = self.loops[key] = InnerLoop(n, m, tail)
        tail_rate = torch.cat([r.reshape(*lead, -1) for r in rates[1:]], dim=-1)
        pixels = x.reshape(-1, x.shape[-1]).any(0).nonzero().squeeze(1) if x.device.type == "cpu" else None
        x_used, replay_used, r1_used = (  # index_select: a third of the cost of x[..., pixels]
            (x, replay_x, r1)
            if pixels is None
            else (x.index_select(-1, pixels), replay_x.index_select(-1, pixels), r1.index_select(-1, pixels))
        )
        masked = (replay_used.unsqueeze(-3) * x_used.unsqueeze(-2)).view(*lead, n * m, -1)  # rows X ⊙ x_j
        mm(masked, r1_used.transpose(-1, -2), out=loop.shifts.view(*lead, n * m, -1))

        # the inner loop: one sample at a time; the tail's fast weights and gradients kept per step
        torch.cat([w.reshape(*lead, -1) for w in tail], dim=-1, out=loop.fast[0])
        one_hot(y, n_classes, x.dtype, out=loop.targets)
        mm(x, w1.transpose(-1, -2), out=loop.first)
        for fast, fast_t, first, target, grads, later, shifts, before, inner_j, after, copy in loop.steps:
            delta = sample_tail_grads(fast, fast_t, first, target, grads)
            if copy is not None:
                torch._foreach_copy_(*copy)
            later.addcmul_(shifts, delta, value=-1)  # the later samples' x W1ᵀ under the new fast W1
            torch.addcmul(before, inner_j, tail_rate, value=-1, out=after)
        inner, outer, delta, upper = loop.inner, loop.outer, loop.delta, loop.upper

        # the meta pass of the n fast-weight sets (of every member) at once, step by step
        replay_targets = one_hot(replay_y, n_classes, x.dtype)
        by_step = loop.shifts if not lead else loop.shifts.transpose(0, 1)  # (n, [members,] m, H)
        shifts = by_step.mul_(delta.unsqueeze(-2)).reshape(n, -1)
        shifts = torch.mm(upper.t(), shifts).view(n, *lead, m, -1)  # [i]: Σ_{j≤i}
        first = (mm(replay_x, w1.transpose(-1, -2)) - shifts).view(-1, m, shifts.shape[-1])
        sets = first.shape[0]
        logits, dz = tail_grads(
            loop.meta_fast,
            first,
            replay_targets.expand(n, *replay_targets.shape).reshape(sets, m, n_classes),
            loop.meta_out,
            loop.meta_transposed,
        )
        meta_loss = None
        if with_loss and not lead:
            meta_loss = F.cross_entropy(logits.reshape(n * m, n_classes), replay_y.repeat(n))
        elif with_loss:
            labels = replay_y.expand(n, *replay_y.shape).reshape(-1)
            each = F.cross_entropy(logits.reshape(-1, n_classes), labels, reduction="none")
            meta_loss = each.view(n, *lead, m).mean(dim=(0, -1))
        dz = dz.view(n, *lead, m, -1)
        grad_theta = [mm(dz.sum(0).transpose(-1, -2), replay_x).div_(n), *layer_views(outer.sum(0).div_(n), tail)]
        if not rate_grads:
            return meta_loss, grad_theta, None
        later = torch.mm(upper, outer.view(n, -1)).view_as(outer)  # [j]: Σ_{i≥j} G_i
        rate_tail = later.mul_(inner).sum(0).div_(-n)
        suffix = torch.mm(upper, dz.reshape(n, -1)).view_as(dz).mul_(delta.unsqueeze(-2))  # δ_j ⊙ T_j
        suffix = suffix if not lead else suffix.transpose(0, 1)
        rate_w1 = mm(suffix.reshape(*lead, n * m, -1).transpose(-1, -2), masked).div_(-n)
        if pixels is not None:
            rate_w1 = torch.zeros_like(w1).index_copy_(-1, pixels, rate_w1)
        return meta_loss, grad_theta, [rate_w1, *layer_views(rate_tail, tail)]
