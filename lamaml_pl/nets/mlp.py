"""The MNIST network of La-MAML / MER / GEM: 784-100-100-10 with ReLUs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from lamaml_pl.errors import ConfigError, require_sizes

INITS = ("kaiming_normal", "xavier_uniform")


class FirstLayerInput(Protocol):
    """An input that computes an MLP's first layer itself, ``x Wᵀ + b`` for weights ``(..., H, d)``
    — how a benchmark can hand the net its inputs without building them (MNIST's pixel-mapped test
    sets fold the task's map into W instead)."""

    def linear(self, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor: ...


class MLP(nn.Sequential):
    """Fully connected ReLU network; a plain module, so ``torch.func.functional_call`` can run
    it at any set of fast weights.

    Args:
        init: ``kaiming_normal`` (La-MAML repository: fan-in, ReLU gain, zero biases) or
            ``xavier_uniform`` (MER/GEM baselines, zero biases).
    """

    def __init__(self, n_inputs: int, hidden_sizes: Sequence[int], n_outputs: int, init: str):
        if init not in INITS:
            raise ConfigError(f"model.init={init!r} is unknown: use one of {', '.join(INITS)}")
        require_sizes("model", hidden_sizes=hidden_sizes)
        sizes = [n_inputs, *hidden_sizes, n_outputs]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)
        for layer in self:
            if isinstance(layer, nn.Linear):
                if init == "kaiming_normal":
                    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor | FirstLayerInput) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return super().forward(x.flatten(1))
        first, *rest = self
        h = x.linear(first.weight, first.bias)
        for layer in rest:
            h = layer(h)
        return h
