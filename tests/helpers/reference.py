"""NumPy references for the update tests: softmax cross-entropy of a linear layer by hand, and the
tiny linear net (3 classes, 2 inputs) and batch the baselines' updates are computed on."""

import numpy as np
import torch
from torch import nn

from lamaml_pl.stream import StreamInfo


def ce_grad(W, b, x, y):
    """Gradient of the mean cross-entropy of logits x Wᵀ + b: ((softmax - onehot)ᵀ x, Σ softmax - onehot) / n."""
    z = x @ W.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    p /= len(y)
    return p.T @ x, p.sum(0)


def ce_loss(W, b, x, y):
    z = x @ W.T + b
    z = z - z.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))


W0 = np.array([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]])
B0 = np.array([0.05, -0.1, 0.0])
X = np.array([[1.0, 2.0], [-1.5, 0.5], [0.3, -0.7]])
Y = np.array([0, 2, 1])
STREAM = StreamInfo(3, 3, (2,), 1, test_sizes=[1, 1, 1])


def linear_net():
    net = nn.Linear(2, 3).double()
    with torch.no_grad():
        net.weight.copy_(torch.from_numpy(W0))
        net.bias.copy_(torch.from_numpy(B0))
    return net


def weights(algo):
    return [p.detach().numpy().copy() for p in algo.net.parameters()]


def t(a):
    return torch.from_numpy(np.asarray(a))
