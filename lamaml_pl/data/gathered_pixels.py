"""A pixel-mapped MNIST task's test inputs, kept as the base digits and the task's pixel map.

Task t's input is a gather of the base digit's pixels, ``x_t[:, i] = x[:, map_t[i]]`` (0 where the
map points at the blank fill pixel), so the first linear layer needs no gathered copy:
``x_t W^T = x F_t`` with ``F_t[p] = sum of W[:, i] over the i with map_t[i] = p`` — the weights
folded onto the base pixels (a permutation of W's columns; under a rotation at most two columns
land on one pixel, and two summands add up the same in any order). The base digits are stored
once per evaluation device; on the CPU as a sparse CSR matrix, since 81% of MNIST's pixels are
blank. Per task this replaces building 31 MB of float inputs and a dense product by one sparse
product: ~2.7x less time for a whole evaluation (benchmarks/README.md).
"""

from __future__ import annotations

import warnings

import torch

from lamaml_pl.data.task_transforms import FILL_INDEX, N_PIXELS


def fold_index(pixel_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(targets, sources)``: input pixel ``sources[k]`` reads base pixel ``targets[k]``;
    ``sources`` is None when every input pixel reads one (a permutation)."""
    real = pixel_map != FILL_INDEX
    if bool(real.all()):
        return pixel_map, None
    return pixel_map[real], real.nonzero().squeeze(1)


def base_pixels(digits: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 digits ``(N, 784)`` as floats in [0, 1] on ``device``, divided on the CPU (as the
    training inputs are: the same values on every device); sparse CSR on the CPU, built from the
    uint8 digits so that no dense float copy is ever made."""
    if device.type != "cpu":
        return digits.float().div_(255.0).to(device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        csr = digits.to_sparse_csr()
        return torch.sparse_csr_tensor(  # indices of a CSR torch just built: no need to check them
            csr.crow_indices(), csr.col_indices(), csr.values().float().div_(255.0), csr.shape, check_invariants=False
        )


class GatheredPixels:
    """The inputs ``x[:, pixel_map]`` of one task for a batch of base digits ``x``; an MLP's
    :class:`~lamaml_pl.nets.mlp.FirstLayerInput`.

    Args:
        pixels: ``(N, 784)`` base digits in [0, 1] (sparse CSR or dense), from :func:`base_pixels`.
        targets, sources: the task's :func:`fold_index`.
    """

    def __init__(self, pixels: torch.Tensor, targets: torch.Tensor, sources: torch.Tensor | None):
        self.pixels, self.targets, self.sources = pixels, targets, sources

    def __len__(self) -> int:
        return self.pixels.shape[0]

    @property
    def device(self) -> torch.device:
        return self.pixels.device

    def to(self, device: torch.device | str, **kwargs) -> GatheredPixels:
        """Lightning moves batches with ``.to``; the test set already lives on the eval device."""
        sources = None if self.sources is None else self.sources.to(device)
        return GatheredPixels(self.pixels.to(device), self.targets.to(device), sources)

    def dense(self) -> torch.Tensor:
        """The ``(N, 784)`` inputs themselves."""
        pixels = self.pixels.to_dense() if self.pixels.layout != torch.strided else self.pixels
        gathered = pixels.index_select(1, self.targets)
        if self.sources is None:
            return gathered
        return gathered.new_zeros(len(self), N_PIXELS).index_copy_(1, self.sources, gathered)

    def linear(self, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``inputs @ W^T + b`` from the base digits and the folded weights. ``weight`` is
        ``(out, 784)`` or, for a population, ``(..., out, 784)``; the result ``(..., N, out)``.
        Computed in float32 (float64 in a float64 run) outside autocast, since MKL's sparse
        product has no half types; returned in the weights' dtype."""
        dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
        columns = weight.transpose(-1, -2).to(dtype)  # (..., 784, out)
        if self.sources is not None:
            columns = columns.index_select(-2, self.sources)
        folded = columns.new_zeros(*columns.shape[:-2], N_PIXELS, columns.shape[-1])
        folded.index_add_(-2, self.targets, columns)
        pixels, bias = self.pixels.to(dtype), bias.to(dtype)
        with torch.autocast(self.device.type, enabled=False):
            if weight.dim() == 2:
                return torch.addmm(bias, pixels, folded).to(weight.dtype)
            lead, out = weight.shape[:-2], weight.shape[-2]
            flat = folded.movedim(-2, 0).reshape(N_PIXELS, -1)  # every member's folded weights side by side
            products = (pixels @ flat).view(len(self), *lead, out).movedim(0, -2)
            return products.add_(bias.unsqueeze(-2)).to(weight.dtype)
