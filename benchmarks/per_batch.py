"""Milliseconds per incoming batch of whole ``train.py`` runs: the update and the loop around it.

    python benchmarks/per_batch.py                                   # ER, Split Fashion-MNIST, MLP
    python benchmarks/per_batch.py --tree ../before                  # against another checkout
    python benchmarks/per_batch.py --variant trainer.batches_per_step=1 --variant trainer.batches_per_step=10
    python benchmarks/per_batch.py --run algo=lamaml data=mnist_rot data.root=../shared/data --small 200 --large 1000

One measurement is the same command twice, with ``data.samples_per_task`` = ``--small`` and
``--large``: the difference of the runs' train + eval time (results.json's ``wall_time_s``; both
evaluate the same test sets) over the extra incoming batches is the cost of one batch, start-up
and evaluation excluded. Every (tree, variant) is measured once per round, in turn, so a machine
whose speed drifts affects all alike; the table gives each one's rounds and median, and the
median's ratio to the first's. The default run is ER's single pass with one glance on Split
Fashion-MNIST (Debian's package or ``data.root``) with the MLP and the CSV logger.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUN = ["algo=er", "data=split_fashion_mnist", "model=mlp", "algo.glances=1", "pass=single"]


def train_seconds(tree: Path, overrides: list[str]) -> tuple[float, int]:
    """The train + eval seconds of one ``train.py`` child process in ``tree``, and its number of
    incoming batches."""
    with tempfile.TemporaryDirectory() as out_dir:
        cmd = [sys.executable, "train.py", *overrides, "trainer.enable_progress_bar=false", f"hydra.run.dir={out_dir}"]
        done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} (in {tree}) failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        data = OmegaConf.load(Path(out_dir) / "config.yaml").data
        batches = data.n_tasks * data.epochs_per_task * -(-data.samples_per_task // data.batch_size)
        return json.loads((Path(out_dir) / "results.json").read_text())["wall_time_s"], batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", nargs="+", default=DEFAULT_RUN, metavar="KEY=VALUE", help="the run's overrides")
    parser.add_argument("--tree", action="append", type=Path, default=[], help="another checkout (repeatable)")
    parser.add_argument("--variant", action="append", default=[], help="extra overrides, space-separated (repeatable)")
    parser.add_argument("--small", type=int, default=1000, help="samples per task of the short run")
    parser.add_argument("--large", type=int, default=3000, help="samples per task of the long run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cases = [(tree, variant) for tree in [ROOT, *args.tree] for variant in (args.variant or [""])]
    per_batch: dict[tuple, list[float]] = {case: [] for case in cases}
    for _ in range(args.rounds):
        for tree, variant in cases:
            (short, short_batches), (long, long_batches) = (
                train_seconds(tree, [*args.run, f"data.samples_per_task={size}", *variant.split()])
                for size in (args.small, args.large)
            )
            ms = 1000 * (long - short) / (long_batches - short_batches)
            per_batch[(tree, variant)].append(ms)
            print(f"{tree} {variant or '(as configured)'}: {ms:.3f} ms a batch ({short:.1f}, {long:.1f} s)", flush=True)
    first = statistics.median(per_batch[cases[0]])
    print(f"\n`python train.py {' '.join(args.run)}`, samples per task {args.small} vs {args.large}\n")
    print("| tree | variant | ms per batch (rounds) | median | ratio to the first |\n|---|---|---|---|---|")
    for (tree, variant), values in per_batch.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.3f}" for v in values)
        print(f"| {tree.name} | {variant or '—'} | {rounds} | {median:.3f} | {first / median:.2f}x |")


if __name__ == "__main__":
    main()
