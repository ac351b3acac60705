"""The paper's conv net for CIFAR-100 and TinyImageNet ("pc_cnn").

``n_convs`` 3x3 convolutions with stride 2 and padding 1 (no pooling, batch norm or dropout),
each followed by a ReLU, then fully connected ReLU layers and the output layer:
CIFAR-100: 3 convs of 160 channels (32 -> 4), 2560-320-320-100 (1,419,940 weights);
TinyImageNet: 4 convs (64 -> 4), 2560-640-640-200 (2,873,640 weights).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from lamaml_pl.errors import ConfigError, require_positive, require_sizes

INITS = ("kaiming_normal", "xavier_normal")


class ConvNet(nn.Sequential):
    """A plain module, so ``torch.func.functional_call`` runs it at any fast weights.

    Args:
        init: ``kaiming_normal`` (La-MAML repository default: fan-in, ReLU gain, zero biases) or
            ``xavier_normal`` (its ``--xav_init``, used by Meta-BGD: Xavier-normal weights, conv
            biases ~ N(0, sqrt(2) / sqrt(1 + 9 * out_channels)), zero linear biases).
    """

    def __init__(
        self,
        image_size: int,
        n_convs: int,
        channels: int,
        hidden_sizes: Sequence[int],
        n_outputs: int,
        in_channels: int,
        init: str,
    ):
        if init not in INITS:
            raise ConfigError(f"model.init={init!r} is unknown: use one of {', '.join(INITS)}")
        require_sizes("model", hidden_sizes=hidden_sizes)
        require_positive("model", n_convs=n_convs, channels=channels, image_size=image_size)
        layers: list[nn.Module] = []
        size, width = image_size, in_channels
        for _ in range(n_convs):
            layers += [nn.Conv2d(width, channels, 3, stride=2, padding=1), nn.ReLU()]
            size, width = (size + 1) // 2, channels
        layers.append(nn.Flatten())
        sizes = [width * size * size, *hidden_sizes]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], n_outputs))
        super().__init__(*layers)
        for layer in self:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                initialise(layer, init)


def initialise(layer: nn.Conv2d | nn.Linear, init: str) -> None:
    if init == "kaiming_normal":
        nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(layer.bias)
        return
    nn.init.xavier_normal_(layer.weight)  # std sqrt(2 / (fan_in + fan_out))
    if isinstance(layer, nn.Conv2d):
        nn.init.normal_(layer.bias, 0.0, math.sqrt(2.0) / math.sqrt(1 + 9 * layer.out_channels))
    else:
        nn.init.zeros_(layer.bias)
