"""Milliseconds per La-MAML-shaped second-order step of a population's CIFAR-100 conv net, with the
members' convolutions as ``vmap`` makes them (one grouped cuDNN convolution), as im2col and a
batched matrix product, or as one grouped convolution written out by hand on channels-first or
channels-last (NHWC) tensors, in IEEE float32, TF32 and bfloat16 autocast, eager and replayed as
one CUDA graph.

    python benchmarks/member_convs.py                    # members 1 5 20
    python benchmarks/member_convs.py --members 1 20 --steps 50

The step: 5 inner chunks of 2 images, each an SGD step on clamped gradients kept in the graph,
and a meta-loss on 20 images after each, differentiated back to the members' weights (the shape
of ``algo=lamaml data=cifar100 pass=multi``'s meta-update, without its learning rates). Beside
them, for more than one member, ``streams``: the members as separate one-member graphs replayed
side by side, a stream each, the other way to fill the GPU with many small steps. Why the
population keeps ``vmap``'s grouped convolutions: on an H200 im2col is slower, and neither the
hand-written grouped convolution (either layout) nor streams are faster (benchmarks/README.md).
Needs a CUDA device.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lamaml_pl.nets import ConvNet, stacked_mlp

CHUNKS, CHUNK, META_BATCH = 5, 2, 20
IMPLS = ("grouped", "im2col", "stacked nchw", "stacked nhwc")


class Im2colConv(nn.Conv2d):
    """The same convolution as the unfolded image's patches times the flattened kernels: under
    ``vmap`` a batched matrix product instead of a grouped convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        cols = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)
        out = self.weight.flatten(1) @ cols + self.bias[:, None]
        size = [(s + 2 * p - k) // d + 1 for s, p, k, d in zip((h, w), self.padding, self.kernel_size, self.stride)]
        return out.view(n, -1, *size)


def conv_net(impl: str) -> nn.Module:
    net = ConvNet(
        image_size=32,
        n_convs=3,
        channels=160,
        hidden_sizes=[320, 320],
        n_outputs=100,
        in_channels=3,
        init="kaiming_normal",
    )
    if impl == "im2col":
        for i, layer in enumerate(net):
            if isinstance(layer, nn.Conv2d):
                unfolded = Im2colConv(layer.in_channels, layer.out_channels, 3, stride=2, padding=1)
                unfolded.load_state_dict(layer.state_dict())
                net[i] = unfolded
    return net.cuda()


def stacked_logits(weights: list[torch.Tensor], x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``(members, B, classes)``: the conv net of every member without ``vmap``, the members'
    images side by side as channels of one grouped convolution (in NHWC memory with
    ``channels_last``), then the population's batched products for the linear layers."""
    members, batch = x.shape[:2]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    h = x.transpose(0, 1).reshape(batch, -1, *x.shape[-2:]).contiguous(memory_format=layout)
    convs = [(w, b) for w, b in zip(weights[::2], weights[1::2]) if w.dim() == 5]
    for w, b in convs:
        kernel = w.flatten(0, 1).contiguous(memory_format=layout)
        h = torch.relu(F.conv2d(h, kernel, b.flatten(), stride=2, padding=1, groups=members))
    h = h.reshape(batch, members, -1).transpose(0, 1)  # each member's maps flattened as nn.Flatten does
    return stacked_mlp.logits(weights[2 * len(convs) :], h)


def second_order_step(net: nn.Module, impl: str):
    """The members' meta-gradients from their stacked weights and batches."""
    if impl.startswith("stacked"):
        channels_last = impl == "stacked nhwc"

        def logits(w, xs):
            return stacked_logits(w, xs, channels_last)
    else:
        names = [name for name, _ in net.named_parameters()]
        logits = vmap(lambda w, xs: functional_call(net, dict(zip(names, w)), (xs,)))

    def step(weights, inner_x, inner_y, meta_x, meta_y):
        fast, meta_loss = list(weights), 0.0
        for c in range(CHUNKS):
            loss = F.cross_entropy(logits(fast, inner_x[:, c]).flatten(0, 1), inner_y[:, c].flatten(), reduction="sum")
            grads = torch.autograd.grad(loss / CHUNK, fast, create_graph=True)
            fast = [w - 0.1 * g.clamp(-2, 2) for w, g in zip(fast, grads)]
            meta = F.cross_entropy(logits(fast, meta_x).flatten(0, 1), meta_y.flatten(), reduction="sum")
            meta_loss = meta_loss + meta / META_BATCH
        return torch.autograd.grad(meta_loss, weights)

    return step


def member_step(impl: str, members: int, precision: str):
    """The step, the members' stacked weights and their batches, in ``precision`` (``bf16``:
    autocast to bfloat16 around IEEE float32)."""
    fp32 = "tf32" if precision == "tf32" else "ieee"
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = fp32
    torch.manual_seed(0)
    inputs = (
        torch.randn(members, CHUNKS, CHUNK, 3, 32, 32, device="cuda"),
        torch.randint(0, 100, (members, CHUNKS, CHUNK), device="cuda"),
        torch.randn(members, META_BATCH, 3, 32, 32, device="cuda"),
        torch.randint(0, 100, (members, META_BATCH), device="cuda"),
    )
    net = conv_net(impl)  # the same weights either way: im2col's layers copy the grouped ones'
    weights = [p.detach().expand(members, *p.shape).clone().requires_grad_() for p in net.parameters()]
    step = second_order_step(net, impl)
    if precision == "bf16":
        return torch.autocast("cuda", torch.bfloat16, cache_enabled=False)(step), weights, inputs
    return step, weights, inputs


def warmed_up(step, weights, inputs, graph: bool, stream: torch.cuda.Stream):
    """A call that runs the step (its captured graph's replay, with ``graph``) and its gradients'
    tensors, after a warm-up on ``stream`` (off the default stream, as capture needs)."""
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            grads = step(weights, *inputs)
    torch.cuda.current_stream().wait_stream(stream)
    if not graph:
        return (lambda: step(weights, *inputs)), grads
    captured = torch.cuda.CUDAGraph()
    with torch.cuda.graph(captured):
        grads = step(weights, *inputs)
    return captured.replay, grads


def ms_per_step(runs: list, streams: list[torch.cuda.Stream], steps: int) -> float:
    """Mean ms per step of every run launched on its stream, side by side."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        for run, stream in zip(runs, streams):
            with torch.cuda.stream(stream):
                run()
    torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - start) / steps


def time_step(impl: str, members: int, precision: str, graph: bool, steps: int) -> tuple[float, list]:
    """ms per step of the stacked members, and their meta-gradients."""
    stream = torch.cuda.Stream()
    run, grads = warmed_up(*member_step(impl, members, precision), graph, stream)
    return ms_per_step([run], [stream], steps), [g.clone() for g in grads]


def time_streams(members: int, precision: str, steps: int) -> float:
    """ms per step of ``members`` one-member graphs, each replayed on its own stream."""
    streams = [torch.cuda.Stream() for _ in range(members)]
    runs = [warmed_up(*member_step("grouped", 1, precision), True, stream)[0] for stream in streams]
    return ms_per_step(runs, streams, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("member_convs.py needs a CUDA device")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}: ms per step (mean of {args.steps})")
    for members in args.members:
        for precision in ("ieee", "tf32", "bf16"):
            line = f"members {members:3d} {precision}:"
            for impl in IMPLS:
                for graph in (False, True) if impl in ("grouped", "im2col") else (True,):
                    ms, _ = time_step(impl, members, precision, graph, args.steps)
                    line += f"  {impl}{' graph' if graph else ''} {ms:7.2f}"
            if members > 1:
                line += f"  streams {time_streams(members, precision, args.steps):7.2f}"
            print(line, flush=True)
        grouped = time_step("grouped", members, "ieee", False, 1)[1]
        for impl in IMPLS[1:]:
            other = time_step(impl, members, "ieee", False, 1)[1]
            diff = max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(grouped, other))
            print(f"members {members:3d}: {impl}'s meta-gradients agree with grouped's to {diff:.1e} (relative)")


if __name__ == "__main__":
    main()
