"""Replay a fixed-shape step as one CUDA graph instead of launching its kernels one by one.

La-MAML's MNIST glance is a few hundred tiny kernels, its conv nets' second-order glance over a
thousand; on a GPU launching them costs far more than running them. :class:`GraphedStep`
captures ``fn(*inputs)`` once per input signature (shapes and dtypes — a run sees two or three:
the first batches replay fewer samples) and then only copies the inputs into the captured
buffers and replays the graph.

``fn`` must not synchronise with the host (no ``.item()``, no data-dependent shapes, no tensor
made from a Python number on the GPU) and may differentiate with autograd and update tensors in
place (the weights): the warm-up run that capture needs would apply an update
twice, so the tensors listed by ``state`` are restored after it. A value ``fn`` reads from the
host (a Python number that shapes a kernel, such as a class-incremental head's width) is baked into
the graph: ``key`` returns those values, and each of them gets a graph of its own. The outputs are
the graph's own buffers, overwritten by the next replay: use them before calling again. Under
mixed precision (``trainer.precision=bf16-mixed``) each autocast dtype gets a graph of its own,
captured with autocast's cache of cast weights off, as Lightning's autocast runs: a cached cast
would be a tensor of the capture, stale once the weights change in place, so every replay casts
the weights as they stand.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable

import torch


class GraphedStep:
    def __init__(
        self, fn: Callable, state: Callable[[], list[torch.Tensor]], key: Callable[[], Hashable] = lambda: None
    ):
        self.fn, self.state, self.key = fn, state, key
        self.graphs: dict[tuple, tuple] = {}  # (key, signature) -> (graph, static inputs, static outputs)
        self.stream: torch.cuda.Stream | None = None  # warm-ups and captures, one stream: autograd's nodes stay on it

    def __call__(self, *inputs: torch.Tensor):
        signature = (self.key(), autocast_dtype(), *((t.shape, t.dtype) for t in inputs))
        if signature not in self.graphs:
            self.graphs[signature] = self.capture(inputs)
        graph, static_inputs, outputs = self.graphs[signature]
        with torch.no_grad():
            for static, value in zip(static_inputs, inputs):
                static.copy_(value)
        graph.replay()
        return outputs

    def capture(self, inputs: tuple[torch.Tensor, ...]) -> tuple:
        with torch.no_grad():
            static_inputs = [t.clone() for t in inputs]
            saved = [t.clone() for t in self.state()]
        self.stream = self.stream or torch.cuda.Stream()
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream), uncached_autocast():  # warm-up: cuBLAS workspaces, lazy kernels
            self.fn(*static_inputs)
        torch.cuda.current_stream().wait_stream(self.stream)
        with torch.no_grad():
            for tensor, value in zip(self.state(), saved):
                tensor.copy_(value)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream), uncached_autocast():
            outputs = self.fn(*static_inputs)
        return graph, static_inputs, outputs


def autocast_dtype() -> torch.dtype | None:
    """The dtype CUDA autocast computes in here (None: autocast off): a graph of each."""
    return torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None


def uncached_autocast():
    """Autocast as it stands, with its weight cache off (no cast outlives a replay); nothing when it is off."""
    dtype = autocast_dtype()
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype, cache_enabled=False)
