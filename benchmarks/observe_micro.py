"""Milliseconds per incoming batch of an algorithm's update, on random batches of a data set's shape.

    python benchmarks/observe_micro.py --algo lamaml --data cifar100 --pass multi
    python benchmarks/observe_micro.py --algo lamaml --data cifar100 --members 1 20 --profile
    python benchmarks/observe_micro.py --algo er lamaml sync cmaml --data tinyimagenet
    python benchmarks/observe_micro.py --algo mer --pass single --warmup 3 --steps 3   # 10 examples a batch
    python benchmarks/observe_micro.py --algo gem agem --members 1 5 --task 5 --warmup 2   # projecting on 5 tasks

Builds the learner ``python train.py algo=<a> data=<d> pass=<p>`` would (the paper's presets
applied; the data set is a small synthetic one of the real format, only its shapes matter) and
times ``observe`` on random incoming batches of 10 samples of task ``--task`` (every glance with its
shuffle, replay draw and reservoir insert), after ``--warmup`` batches of each task up to it (they
fill the reservoir, and GEM's memories of earlier tasks, whose gradients it then projects against). On a GPU twice:
eager kernels (``algo.cuda_graph=false``) and as CUDA graphs, where the algorithm has them.
``--members N``: a population of N seeds. ``--profile``: where one batch's time goes (the
GPU's busy time per batch, and the eager run's kernels by total time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lamaml_pl.run import build_members  # noqa: E402
from tests.helpers.data_files import write_tiny_cifar100, write_tiny_imagenet  # noqa: E402
from tests.helpers.learners import detach_from_trainer  # noqa: E402

WRITERS = {  # every class of the benchmark, few images each
    "cifar100": write_tiny_cifar100,
    "tinyimagenet": lambda root: write_tiny_imagenet(root, n_classes=200, train_per_class=10, val_per_class=2),
}


def learner_for(algo: str, data: str, passes: str, root: Path, members: int, graph: bool, device):
    """The learner (or population of ``members`` seeds) of the run; None when ``graph`` is asked
    of an algorithm without CUDA graphs."""
    overrides = [f"algo={algo}", f"data={data}", f"pass={passes}", f"data.root={root}", "data.download=false"]
    if members > 1:
        overrides.append(f"population.seed=[{','.join(map(str, range(members)))}]")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    if "cuda_graph" in cfg.algo:
        cfg.algo.cuda_graph = graph
    elif graph:
        return None
    learner = build_members(cfg).learner.to(device)
    detach_from_trainer(learner)
    learner.task_epoch = 0
    return learner


def start_task(learner, t: int) -> None:
    learner.current_task = t
    learner.on_task_start(t)


def batches(learner, n: int, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` random incoming batches of 10 samples of the current task (a population's: one per member)."""
    lead = (learner.n_members,) if learner.weights is not None else ()
    shape, classes = learner.stream.input_shape, learner.stream.classes_per_task or learner.stream.n_outputs
    first = learner.current_task * classes if learner.stream.classes_per_task else 0
    return [
        (
            torch.randn(*lead, 10, *shape, device=device),
            torch.randint(first, first + classes, (*lead, 10), device=device),
        )
        for _ in range(n)
    ]


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_observe(learner, steps: int, repeat: int, device, warmup: int, task: int = 0) -> float:
    """Median ms per ``observe`` of task ``task`` over ``repeat`` rounds of ``steps`` batches
    (after ``warmup`` batches of every task up to it: the reservoir full, every graph captured)."""
    for t in range(task + 1):
        if t:
            learner.on_task_end(t - 1)
        start_task(learner, t)
        for x, y in batches(learner, warmup, device):
            learner.observe(x, y, t)
    data = batches(learner, steps, device)
    rounds = []
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        for x, y in data:
            learner.observe(x, y, task)
        sync(device)
        rounds.append(1e3 * (time.perf_counter() - start) / steps)
    return statistics.median(rounds)


def gpu_busy_ms(learner, steps: int, device, task: int) -> float:
    """The GPU's own time per ``observe``: the summed device time of its kernels (torch's
    profiler), what the arithmetic costs apart from launching it."""
    data = batches(learner, steps, device)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for x, y in data:
            learner.observe(x, y, task)
        torch.cuda.synchronize()
    return sum(e.self_device_time_total for e in prof.key_averages()) / 1e3 / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", nargs="+", default=["lamaml"])
    parser.add_argument("--data", default="cifar100", choices=sorted(WRITERS))
    parser.add_argument("--pass", dest="passes", default="multi", choices=["single", "multi"])
    parser.add_argument("--members", type=int, nargs="*", default=[1])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--warmup", type=int, default=30, help="batches of each task before timing (MER: 3 fill its replay batch)"
    )
    parser.add_argument("--task", type=int, default=0, help="the task timed (0-based); earlier tasks are warmed up")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN time its algorithms per shape")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{name}, data={args.data} pass={args.passes}: ms per incoming batch (median of {args.repeat} x {args.steps})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = WRITERS[args.data](Path(tmp))
        for algo in args.algo:
            for members in args.members:
                modes = [False, True] if device.type == "cuda" else [False]
                line = f"{algo:8s} members {members:3d}:"
                for graph in modes:
                    learner = learner_for(algo, args.data, args.passes, root, members, graph, device)
                    if learner is None:
                        continue
                    ms = time_observe(learner, args.steps, args.repeat, device, args.warmup, args.task)
                    line += f"  {'CUDA graph' if graph else 'eager'} {ms:8.2f}"
                    if args.profile and device.type == "cuda":
                        line += f" (GPU busy {gpu_busy_ms(learner, 10, device, args.task):.2f})"
                print(line, flush=True)
                if args.profile and device.type == "cuda":
                    learner = learner_for(algo, args.data, args.passes, root, members, False, device)
                    time_observe(learner, 1, 1, device, args.warmup, args.task)
                    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                        for x, y in batches(learner, 5, device):
                            learner.observe(x, y, args.task)
                        torch.cuda.synchronize()
                    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=12))


if __name__ == "__main__":
    main()
