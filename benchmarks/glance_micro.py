"""Time one La-MAML glance (10 inner steps + meta step) on its own: the hand-written glance,
eager vs CUDA graph, single learner vs populations of N members (the same glance with a member
axis). Where the GPU time of a run goes, without the loop around it.

    python benchmarks/glance_micro.py                 # the GPU if there is one, else the CPU
    python benchmarks/glance_micro.py --members 1 10 100

MNIST shapes: the 784-100-100-10 MLP, an incoming batch of 10, 10 replayed samples (20 in the
meta-batch). Times are per glance, the median of ``--repeat`` timings of ``--steps`` glances, with
the device synchronised around each timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lamaml_pl.algos import LaMAML
from lamaml_pl.nets import MLP
from lamaml_pl.population.member_rng import MemberDraws, MemberRNG
from lamaml_pl.stream import StreamInfo

ROOT = Path(__file__).resolve().parents[1]
STREAM = StreamInfo(n_tasks=20, n_classes=10, input_shape=(784,), epochs_per_task=1)


def timed(step, steps: int, repeat: int, device: torch.device) -> float:
    """Median seconds per call of ``step()``."""
    for _ in range(5):
        step()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def report(label: str, eager_step, graphed_step, args, device: torch.device) -> None:
    """Print ms per glance of ``eager_step``, and on a GPU of ``graphed_step`` (its CUDA graph)."""
    line = f"{label} eager: {1e3 * timed(eager_step, args.steps, args.repeat, device):.3f}"
    if device.type == "cuda":
        line += f"   CUDA graph: {1e3 * timed(graphed_step, args.steps, args.repeat, device):.3f}"
    print(line, flush=True)


def learner(seed: int) -> LaMAML:
    """La-MAML with its MNIST Rotations values (``algo=lamaml data=mnist_rot``)."""
    torch.manual_seed(seed)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        algo = compose(config_name="train", overrides=["algo=lamaml", "data=mnist_rot"]).algo
    return instantiate(algo, net=MLP(784, [100, 100], 10, "kaiming_normal"), stream=STREAM)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, nargs="*", default=[1, 10, 100])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x, y = torch.rand(10, 784, device=device), torch.randint(0, 10, (10,), device=device)
    # the meta-batch: 10 replayed samples, then the incoming batch (as La-MAML's replay ∪ B)
    rx = torch.cat([torch.rand(10, 784, device=device), x])
    ry = torch.cat([torch.randint(0, 10, (10,), device=device), y])
    rt = torch.zeros_like(ry)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}: ms per glance (median of {args.repeat} x {args.steps})")

    single = learner(0).to(device)
    report(
        "single learner,",
        partial(single.update, y, rx, ry, rt),
        partial(single.graphed_update, y, rx, ry, rt),
        args,
        device,
    )
    for n in args.members:
        members = [learner(k) for k in range(n)]
        population = members[0]
        population.join_members(members, MemberDraws([MemberRNG(torch.get_rng_state()) for _ in members]))
        population.to(device)
        py = y.expand(n, -1).contiguous()
        prx, pry, prt = rx.expand(n, -1, -1).contiguous(), ry.expand(n, -1).contiguous(), rt.expand(n, -1).contiguous()
        with torch.no_grad():
            report(
                f"population of {n:4d},",
                partial(population.update, py, prx, pry, prt),
                partial(population.graphed_update, py, prx, pry, prt),
                args,
                device,
            )


if __name__ == "__main__":
    main()
