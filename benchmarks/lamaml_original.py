"""Wall time of a whole La-MAML MNIST run beside La-MAML's original code, on the same tasks.

    python benchmarks/lamaml_original.py --original ../La-MAML --data-root ../shared/data --rounds 2

``--original`` is a checkout of ``montrealrobotics/La-MAML`` (not a dependency: it runs in its own
process, nothing of it is imported here). The project's stream of ``--seed`` (each task's training
digits and the rotated / permuted test sets) is written in the original's ``(train_tasks,
test_tasks)`` .pt format; the original's ``main.py`` trains on it with the flags of its
``run_experiments.sh`` for the benchmark (rows at the task ends only, as the project's), and
``python train.py algo=lamaml data=<data>`` runs the same config with its defaults. Both whole
processes are timed (start-up, training, evaluation), alternating, each with its default thread
count; the table gives every round and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from original_code import ROOT, project_config, write_tasks

# the original's flags for La-MAML (run_experiments.sh), besides the data's
ORIGINAL_FLAGS = {
    "mnist_rot": "--opt_lr 0.3 --alpha_init 0.15",
    "mnist_perm": "--opt_lr 0.15 --alpha_init 0.15",
}
ORIGINAL_DATASET = {"mnist_rot": "mnist_rotations", "mnist_perm": "mnist_permutations"}


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", type=Path, required=True, help="a checkout of montrealrobotics/La-MAML")
    parser.add_argument("--data", choices=sorted(ORIGINAL_FLAGS), default="mnist_rot")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not (args.original / "main.py").is_file() or not (args.original / "model" / "lamaml.py").is_file():
        parser.error(f"--original={args.original}: not a checkout of La-MAML's repository (main.py, model/lamaml.py)")
    cfg = project_config("lamaml", args.data, args.seed, args.data_root)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        samples = write_tasks(cfg, scratch / f"{ORIGINAL_DATASET[args.data]}.pt")
        (scratch / "ipdb.py").write_text("")  # main.py imports ipdb and never uses it
        original = [
            sys.executable,
            "main.py",
            *f"--model lamaml --n_layers 2 --n_hiddens 100 --memories 200 --batch_size 10 --replay_batch_size 10 "
            f"--n_epochs 1 --glances 5 --learn_lr --use_old_task_memory {ORIGINAL_FLAGS[args.data]}".split(),
            f"--data_path={scratch}",
            f"--dataset={ORIGINAL_DATASET[args.data]}",
            f"--samples_per_task={samples}",
            f"--seed={args.seed}",
            "--log_every=100000000",
            f"--log_dir={scratch}/logs",
        ]
        ours = [
            sys.executable,
            "train.py",
            "algo=lamaml",
            f"data={args.data}",
            f"data.root={args.data_root}",
            f"seed={args.seed}",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={scratch}/ours",
        ]
        env = {**__import__("os").environ, "PYTHONPATH": str(scratch)}
        times: dict[str, list[float]] = {"original": [], "lamaml_pl": []}
        for _ in range(args.rounds):
            times["original"].append(timed(original, args.original, env))
            times["lamaml_pl"].append(timed(ours, ROOT))
            print({k: [round(v, 1) for v in vs] for k, vs in times.items()}, flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nLa-MAML, {args.data}, seed {args.seed}: whole processes, {args.rounds} alternating rounds\n")
    print("| code | wall (s), rounds | median |\n|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | {medians[name]:.1f} |")
    print(f"\nratio original / lamaml_pl: {medians['original'] / medians['lamaml_pl']:.2f}x")


if __name__ == "__main__":
    main()
