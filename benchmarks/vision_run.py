"""Seconds per task of CIFAR-100- or TinyImageNet-shaped runs, on whatever device Lightning picks.

    python benchmarks/vision_run.py                                   # La-MAML CIFAR-100 multi-pass, 2 tasks
    python benchmarks/vision_run.py --algo er gem --tasks 1 --epochs 1
    python benchmarks/vision_run.py --data tinyimagenet --pass single
    python benchmarks/vision_run.py --tasks 1 --epochs 1 --override trainer=cpu
    python benchmarks/vision_run.py --algo gem meta_bgd --members 5 --tasks 3 --epochs 1   # populations of 5 seeds

Writes a synthetic data set in the real on-disk format with the real sizes (CIFAR-100: 500 train /
100 test 32x32 images per class, 100 classes; TinyImageNet: 500 train / 50 val 64x64 JPEGs per
class, 200 classes), so each task has the real number of steps (225 batches of 10 per epoch
after the 10% validation hold-out), and runs ``python train.py algo=<a> data=<d> pass=<p>`` on
it (the paper's presets) with ``trainer.accelerator=auto``, one fresh process per algorithm.
Accuracy on these images means nothing; only the time is reported. ``--epochs`` below the
paper's 10 (multi-pass) gives a per-epoch time to extrapolate from (the report says so).
``--members N``: a population of seeds 0..N-1 per algorithm (batched where the algorithm can be).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lamaml_pl.outputs import POPULATION_MANIFEST  # noqa: E402
from tests.helpers.data_files import write_tiny_cifar100, write_tiny_imagenet  # noqa: E402

DATA = ("cifar100", "tinyimagenet")


def write_data(data: str, root: Path) -> None:
    """The data set at its real sizes."""
    if data == "cifar100":
        write_tiny_cifar100(root, train_per_class=500, test_per_class=100)
    else:
        write_tiny_imagenet(root, n_classes=200, train_per_class=500, val_per_class=50)


def time_run(algo: str, args, data_root: Path, out_dir: Path) -> dict:
    cmd = [
        sys.executable,
        "train.py",
        f"algo={algo}",
        f"data={args.data}",
        f"pass={args.passes}",
        f"data.root={data_root}",
        "data.download=false",
        f"data.n_tasks={args.tasks}",
        "logger=none",
        "trainer.enable_progress_bar=false",
        *([f"data.epochs_per_task={args.epochs}"] if args.epochs else []),
        *([f"population.seed=[{','.join(map(str, range(args.members)))}]"] if args.members > 1 else []),
        *args.override,
        f"hydra.run.dir={out_dir}",
    ]
    start = time.perf_counter()
    child = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{child.stdout[-2000:]}\n{child.stderr[-3000:]}")
    summary = out_dir / "results.json"  # a population's summary is its manifest
    results = json.loads((summary if summary.exists() else out_dir / POPULATION_MANIFEST).read_text())
    return {"fit": results["wall_time_s"], "startup": wall - results["wall_time_s"], **results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", nargs="+", default=["lamaml"])
    parser.add_argument("--data", default="cifar100", choices=DATA)
    parser.add_argument("--pass", dest="passes", default="multi", choices=["single", "multi"])
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--epochs", type=int, help="epochs per task (default: the pass's; multi-pass 10)")
    parser.add_argument("--members", type=int, default=1, help="a population of seeds 0..N-1 (batched where it can be)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_root = Path(tmp) / "data"
        start = time.perf_counter()
        # in a process of its own: a child's peak RSS starts at its parent's (fork copies the
        # high-water mark), and the images' arithmetic would inflate every run's figure
        writer = multiprocessing.get_context("spawn").Process(target=write_data, args=(args.data, data_root))
        writer.start()
        writer.join()
        if writer.exitcode != 0:
            raise SystemExit(f"writing the synthetic {args.data} failed")
        print(f"synthetic {args.data} written in {time.perf_counter() - start:.0f} s", flush=True)
        print(f"{platform.node()}, {os.cpu_count()} cores, overrides: {' '.join(args.override) or 'none'}")
        print(
            "| algo | members | device | tasks x epochs | train + eval (s) | start-up (s) | s per task "
            "| peak RSS (MB) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for algo in args.algo:
            run = time_run(algo, args, data_root, Path(tmp) / f"run_{algo}")
            full = 10 if args.passes == "multi" else 1  # conf/pass/
            epochs = args.epochs or full
            per_task = run["fit"] / args.tasks
            note = f" ({per_task * full / epochs:.0f} at {full} epochs)" if epochs != full else ""
            print(
                f"| {algo} | {args.members} | {run['device']} | {args.tasks} x {epochs} | {run['fit']:.1f} "
                f"| {run['startup']:.1f} | {per_task:.1f}{note} | {run['peak_rss_mb']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
