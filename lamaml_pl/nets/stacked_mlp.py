"""An MLP for N population members at once: every weight carries a leading member axis.

``weights = [W1 (N, h1, d), b1 (N, h1), W2, b2, ...]``; a batch is ``(N, B, d)`` (each member its
own samples) or ``(B, d)`` (one batch shared by all, e.g. a test set). The forward pass is batched
matrix products, so N members cost one set of kernels (autograd differentiates it).
"""

from __future__ import annotations

import torch
from torch import nn

from lamaml_pl.nets.mlp import FirstLayerInput


def stack_parameters(nets: list[nn.Module]) -> list[torch.Tensor]:
    """The members' parameters stacked along a new leading axis, in ``net.parameters()`` order."""
    return [torch.stack(group).detach().clone() for group in zip(*(list(net.parameters()) for net in nets))]


def layer(x: torch.Tensor | FirstLayerInput, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x W^T + b`` per member; a shared ``(B, d)`` input is broadcast over the members.
    Members' own inputs ``(N, B, d)``: computed as ``(W x^T + b)^T``, so that autograd's gradient
    of W is a contiguous ``(N, out, d)`` product rather than a transposed view (whose copies in
    the clip and the step cost more than the products)."""
    if not isinstance(x, torch.Tensor):
        return x.linear(weight, bias)
    if x.dim() == 2:
        return torch.matmul(x, weight.transpose(1, 2)) + bias.unsqueeze(1)
    return torch.baddbmm(bias.unsqueeze(2), weight, x.transpose(1, 2)).transpose(1, 2)


def forward(weights: list[torch.Tensor], x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The inputs of every layer (``x``, then the hidden ReLU outputs) and the (N, B, classes)
    outputs of every member."""
    activations = [x]
    n_layers = len(weights) // 2
    for k in range(n_layers - 1):
        activations.append(torch.relu(layer(activations[-1], weights[2 * k], weights[2 * k + 1])))
    return activations, layer(activations[-1], weights[-2], weights[-1])


def logits(weights: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """(N, B, classes) outputs of every member."""
    return forward(weights, x)[1]
