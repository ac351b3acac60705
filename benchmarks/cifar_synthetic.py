"""Seconds per task of a CIFAR-100-shaped run, on whatever device Lightning picks.

    python benchmarks/cifar_synthetic.py                      # La-MAML multi-pass, 2 tasks, 10 epochs
    python benchmarks/cifar_synthetic.py --tasks 1 --epochs 1 --override trainer=cpu

Writes a synthetic CIFAR-100 in torchvision's on-disk format with the real shapes (50,000 train /
10,000 test 32x32 RGB images, 100 classes: 2,250 train / 250 val / 500 test per task) and runs
``python train.py algo=<algo> data=<data> pass=multi`` on it with ``trainer.accelerator=auto``,
so each task has the real number of steps (225 batches of 10 per epoch, one meta-update each).
Accuracy on random images means nothing; only the time is reported. ``--epochs`` below the
paper's 10 gives a per-epoch time to extrapolate from on slow machines (the report says so).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_synthetic_cifar100(root: Path) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 500), ("test", 100)):
        labels = rng.permutation(np.repeat(np.arange(100), per_class))
        data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
        with open(folder / split, "wb") as handle:
            pickle.dump({"data": data, "fine_labels": labels.tolist()}, handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="lamaml")
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per task (the paper's multi-pass: 10)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_root, out_dir = Path(tmp) / "data", Path(tmp) / "run"
        write_synthetic_cifar100(data_root)
        cmd = [
            sys.executable,
            "train.py",
            f"algo={args.algo}",
            "data=cifar100",
            "pass=multi",
            f"data.root={data_root}",
            "data.download=false",
            f"data.n_tasks={args.tasks}",
            f"data.epochs_per_task={args.epochs}",
            "logger=none",
            "trainer.enable_progress_bar=false",
            *args.override,
            f"hydra.run.dir={out_dir}",
        ]
        start = time.perf_counter()
        child = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{child.stdout[-2000:]}\n{child.stderr[-3000:]}")
        results = json.loads((out_dir / "results.json").read_text())
    fit = results["wall_time_s"]
    per_task = fit / args.tasks
    scale = 10 / args.epochs
    print(f"{args.algo} on CIFAR-100-shaped data, {args.tasks} task(s) x {args.epochs} epoch(s), {results['device']}")
    print(f"training + evaluation {fit:.1f} s, start-up {wall - fit:.1f} s, peak RSS {results['peak_rss_mb']:.0f} MB")
    print(
        f"seconds per task: {per_task:.1f}"
        + (f" ({per_task * scale:.0f} extrapolated to 10 epochs)" if scale != 1 else "")
    )
    print(f"{platform.node()}, {os.cpu_count()} cores, overrides: {' '.join(args.override) or 'none'}")


if __name__ == "__main__":
    main()
