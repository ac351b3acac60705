"""How torch's CPU thread count behaves on an idle and on a loaded machine (``trainer.num_threads``).

Each setting trains the same short runs as separate processes (as a sweep's jobs are), alternating
settings within a round so that the machine's drift hits them alike; "loaded" keeps one busy
process (a pure-Python spin loop, one core's worth) running beside them, as a second job or another
user would. Reports each run's training time (results.json's ``wall_time_s``, start-up excluded)::

    python benchmarks/threads.py --data-root ../shared/data --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {  # name: (trainer.num_threads, extra environment)
    "1 thread": (1, {}),
    "2 threads": (2, {}),
    "2 threads, OMP passive": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
}
WORKLOADS = {  # name: overrides of a short run
    "La-MAML MNIST-rot, 2 tasks": ["algo=lamaml", "data=mnist_rot", "data.n_tasks=2"],
    "ER Split Fashion-MNIST conv, 5 x 200 images": [
        "algo=er",
        "data=split_fashion_mnist",
        "data.samples_per_task=200",
        "model.channels=32",
    ],
}


def train_seconds(overrides: list[str], threads: int, env: dict, timeout: float) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "train.py", *overrides, f"trainer.num_threads={threads}"]
        command += ["trainer.accelerator=cpu", "logger=none", "trainer.enable_progress_bar=false"]
        command += [f"paths.output_dir={out}"]
        try:
            subprocess.run(
                command, cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return float("inf")
        return json.loads((Path(out) / "results.json").read_text())["wall_time_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="folder holding MNIST/raw")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=240, help="seconds before a run counts as inf")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    args = parser.parse_args()
    for load in ("idle", "loaded"):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "loaded" else None
        try:
            for workload in args.workloads:
                overrides = WORKLOADS[workload] + [f"data.root={Path(args.data_root).resolve()}"]
                times: dict[str, list[float]] = {name: [] for name in SETTINGS}
                for _ in range(args.rounds):
                    for name, (threads, env) in SETTINGS.items():
                        times[name].append(train_seconds(overrides, threads, env, args.timeout))
                for name, runs in times.items():
                    shown = ", ".join(f"{t:.1f}" for t in runs)
                    print(f"{load:6s} | {workload} | {name:24s} | median {statistics.median(runs):7.1f} s | {shown}")
        finally:
            if spinner:
                spinner.kill()


if __name__ == "__main__":
    main()
