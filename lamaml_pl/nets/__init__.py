"""Plain nn.Modules, usable at fast weights through torch.func.functional_call."""

from lamaml_pl.nets.conv import ConvNet
from lamaml_pl.nets.mlp import MLP

__all__ = ["ConvNet", "MLP"]
