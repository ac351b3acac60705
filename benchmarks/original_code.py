"""The MNIST baselines beside their original code, on exactly the project's tasks.

    python benchmarks/original_code.py --original ../MER --algo online ewc gem mer \\
        --data mnist_rot mnist_perm --seeds 0 1 2 --jobs 2 --out benchmarks/original_mnist.json

``--original`` is a checkout of MER's repository (``mattriemer/MER``: its ``main.py`` and
``model/{online,ewc,gem,meralg1}.py`` produced the MNIST baseline rows of La-MAML's Table 1). It
is not a dependency of the project; nothing of it is imported here: it runs in its own process.

For every (algo, data, seed) the project's stream of that seed (each task's training subset, the
test set, the rotations or permutations) is written in the original's ``(train_tasks,
test_tasks)`` .pt format and the original's ``main.py`` trains on it with the values of the
project's preset (``conf/preset/<algo>/<data>/single.yaml``); the project's ``train.py`` runs the
same config. Each side's RA / BTI (%) is recorded, then per (algo, data) the mean ± std of each,
the difference and Welch's t. The original shuffles the samples of a task with its own seed,
so the two sides see the same images in another order: compare means, not single seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_benchmarks import ROOT, run_train

from lamaml_pl.data.task_transforms import apply_pixel_map, pad_with_fill
from lamaml_pl.metrics import cl_metrics

# the original's model file and the project's algo values it takes, by flag
ORIGINAL_MODELS = {
    "online": ("online", ["lr"]),
    "ewc": ("ewc", ["lr", "n_memories", "memory_strength"]),
    "gem": ("gem", ["lr", "n_memories", "memory_strength"]),
    "mer": ("meralg1", ["lr", "beta", "gamma", "memories", "replay_batch_size", "batches_per_example"]),
}
DATA = ("mnist_rot", "mnist_perm", "mnist_many")


def project_config(algo: str, data: str, seed: int, data_root: str):
    """The config ``python train.py algo=<algo> data=<data> seed=<seed>`` runs (its preset applied)."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=[f"algo={algo}", f"data={data}", f"seed={seed}", f"data.root={data_root}"])


def write_tasks(cfg, path: Path) -> int:
    """The project's stream of ``cfg`` as the original's ``(train_tasks, test_tasks)``, each task
    ``[transform, inputs (N, 784) in [0, 1], labels]``; returns the training samples per task."""
    data = instantiate(cfg.data)
    data.setup()
    test_pixels = pad_with_fill(data.test_digits)
    train, test = [], []
    for task in range(data.n_tasks):
        transform = float(data.angles[task]) if data.angles is not None else float(task)
        idx = data.train_indices[task]
        train.append([transform, data.task_inputs(task, data.train_pixels[idx]), data.train_labels[idx].long()])
        test.append([transform, apply_pixel_map(test_pixels, data.pixel_maps[task]), data.test_labels.long()])
    torch.save((train, test), path)
    return len(train[0][2])


def original_command(cfg, data_file: Path, samples: int, save_path: Path) -> list[str]:
    model, keys = ORIGINAL_MODELS[cfg.algo.name]
    hidden = list(cfg.model.hidden_sizes)
    if len(set(hidden)) != 1:
        raise SystemExit(f"model.hidden_sizes={hidden}: the original's MLP has layers of one width")
    flags = [f"--{key}={cfg.algo[key]}" for key in keys]
    return [
        sys.executable,
        "main.py",
        f"--model={model}",
        *flags,
        f"--n_layers={len(hidden)}",
        f"--n_hiddens={hidden[0]}",
        f"--batch_size={cfg.data.batch_size}",
        f"--n_epochs={cfg.data.epochs_per_task}",
        f"--samples_per_task={samples}",
        f"--seed={cfg.seed}",
        f"--data_path={data_file.parent}",
        f"--data_file={data_file.name}",
        f"--save_path={save_path}/",
        "--log_every=100000000",  # a row at each task's end only: the matrix is the same
        "--cuda=no",
    ]


def read_matrix(txt: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The original's result file: the row before training, '|', then one row per task."""
    lines = txt.read_text().splitlines()
    bar = lines.index("|")
    baseline = torch.tensor([float(v) for v in lines[0].split()], dtype=torch.float64)
    rows = []
    for line in lines[bar + 1 :]:
        if not line.strip():
            break
        rows.append([float(v) for v in line.split()])
    return torch.tensor(rows, dtype=torch.float64), baseline


def run_original(original: Path, cfg) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        samples = write_tasks(cfg, scratch / "tasks.pt")
        cmd = original_command(cfg, scratch / "tasks.pt", samples, scratch / "results")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        done = subprocess.run(cmd, cwd=original, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
        (txt,) = (scratch / "results").glob("*.txt")
        R, baseline = read_matrix(txt)
    metrics = cl_metrics(R, baseline)
    run = {"side": "original", "algo": cfg.algo.name, "data": cfg.data.name, "seed": cfg.seed}
    return {**run, "ra": metrics["ra"], "bti": metrics["bti"]}


def run_project(algo: str, data: str, seed: int, data_root: str) -> dict:
    overrides = [f"algo={algo}", f"data={data}", f"seed={seed}"]
    _, _, results = run_train(overrides, data_root, ["trainer.num_threads=1"])
    return {"side": "project", "algo": algo, "data": data, "seed": seed, "ra": results["ra"], "bti": results["bti"]}


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.2f}"


def welch_t(a: list[float], b: list[float]) -> float:
    """Welch's t of mean(a) - mean(b) (nan with fewer than two values a side)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return (statistics.mean(a) - statistics.mean(b)) / se if se else math.nan


def table(runs: list[dict]) -> str:
    lines = [
        "| algo | data | seeds | project RA | original RA | Δ RA (t) | project BTI | original BTI |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for algo, data in dict.fromkeys((r["algo"], r["data"]) for r in runs):

        def values(side, key, algo=algo, data=data):
            return [r[key] for r in runs if (r["algo"], r["data"], r["side"]) == (algo, data, side)]

        ours, theirs = values("project", "ra"), values("original", "ra")
        if not ours or not theirs:
            continue
        delta = statistics.mean(ours) - statistics.mean(theirs)
        lines.append(
            f"| {algo} | {data} | {len(ours)} | {mean_std(ours)} | {mean_std(theirs)} | {delta:+.2f} "
            f"({welch_t(ours, theirs):+.1f}) | {mean_std(values('project', 'bti'))} | "
            f"{mean_std(values('original', 'bti'))} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", type=Path, help="a checkout of mattriemer/MER")
    parser.add_argument("--algo", nargs="+", choices=sorted(ORIGINAL_MODELS))
    parser.add_argument("--data", nargs="+", choices=DATA)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, one thread each")
    parser.add_argument("--side", choices=("both", "original", "project"), default="both")
    parser.add_argument("--out", type=Path, help="JSON of every run (extended, not overwritten)")
    parser.add_argument("--table", type=Path, help="only print the table of this JSON of earlier runs")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    if args.original is None or not args.algo or not args.data:
        parser.error("--original, --algo and --data are needed to run (or --table <json>)")
    if not (args.original / "main.py").is_file() or not (args.original / "model" / "meralg1.py").is_file():
        parser.error(f"--original={args.original}: not a checkout of MER's repository (main.py, model/meralg1.py)")

    jobs = []
    for algo in args.algo:
        for data in args.data:
            for seed in args.seeds:
                if args.side in ("both", "original"):
                    cfg = project_config(algo, data, seed, args.data_root)  # composed here: Hydra is not thread-safe
                    jobs.append((run_original, (args.original.resolve(), cfg)))
                if args.side in ("both", "project"):
                    jobs.append((run_project, (algo, data, seed, args.data_root)))
    runs = json.loads(args.out.read_text()) if args.out and args.out.exists() else []
    with ThreadPoolExecutor(args.jobs) as pool:
        for run in pool.map(lambda job: job[0](*job[1]), jobs):
            print(
                f"{run['side']:>8s} {run['algo']:>6s} {run['data']:>10s} seed {run['seed']}: "
                f"RA {run['ra']:.2f} BTI {run['bti']:.2f}",
                flush=True,
            )
            runs = [r for r in runs if any(r[k] != run[k] for k in ("side", "algo", "data", "seed"))] + [run]
            if args.out:
                args.out.write_text(json.dumps(runs, indent=1) + "\n")
    print(table(runs))


if __name__ == "__main__":
    main()
