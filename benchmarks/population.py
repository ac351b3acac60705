"""Cost of a population against its members run one by one (one fresh process per run).

    python benchmarks/population.py --sizes 1 4 16 --override trainer.accelerator=cpu
    python benchmarks/population.py --grid lr100                      # the 100-member grid, GPU
    python benchmarks/population.py --sizes 4 --override data.n_tasks=5

``--sizes N``: populations of N seeds (``population.seed=0..N-1``) of ``--case`` (default La-MAML on
MNIST Rotations, the paper's settings). ``--grid lr100``: 5 alpha_init x 4 opt_lr x 5 seeds.
Every population is compared with the single run of its first member (median of ``--repeat``):
member-runs per hour, and the speed-up over running the N members one after another. Train +
eval is the population's own clock (population.json), without start-up; peak GPU memory from
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics

from run_benchmarks import CASES, ROOT, run_train

GRIDS = {
    "lr100": [
        "population.alpha_init=[0.01,0.03,0.1,0.15,0.3]",
        "population.opt_lr=[0.1,0.2,0.3,0.5]",
        "population.seed=[0,1,2,3,4]",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="lamaml-rot", choices=sorted(CASES))
    parser.add_argument("--sizes", type=int, nargs="*", default=[], help="populations of this many seeds")
    parser.add_argument("--grid", choices=sorted(GRIDS), help="a hyperparameter grid as one population")
    parser.add_argument("--repeat", type=int, default=1, help="single runs for the baseline's median")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    populations = [(f"{n} seeds", n, [f"population.seed=[{','.join(map(str, range(n)))}]"]) for n in args.sizes]
    if args.grid:
        grid = GRIDS[args.grid]
        size = 1
        for axis in grid:
            size *= axis.count(",") + 1
        populations.append((args.grid, size, grid))
    if not populations:
        parser.error("give --sizes and/or --grid")
    case = CASES[args.case]

    singles = [run_train(case, args.data_root, args.override) for _ in range(args.repeat)]
    single_wall = statistics.median(s[0] for s in singles)
    single_fit = statistics.median(s[2]["wall_time_s"] for s in singles)
    device = singles[0][2]["device"]
    print(
        f"single run ({args.case}, median of {args.repeat}): {single_wall:.1f} s wall, "
        f"{single_fit:.1f} s train + eval, "
        f"peak RSS {singles[0][1]:.0f} MB, RA {singles[0][2]['ra']:.2f}",
        flush=True,
    )
    header = (
        "| population | members | wall (s) | train + eval (s) | per member (s) | member-runs / h "
        "| vs members one by one | peak RSS (MB) | peak GPU MB (per member) | mean RA |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| single run | 1 | {single_wall:.1f} | {single_fit:.1f} | {single_wall:.1f} | {3600 / single_wall:.0f} "
        f"| 1.00x | {singles[0][1]:.0f} | | {singles[0][2]['ra']:.2f} |"
    ]
    print(header + "\n" + rows[0], flush=True)
    for name, size, overrides in populations:
        wall, rss, manifest = run_train(case + overrides, args.data_root, args.override, output="population.json")
        assert len(manifest["members"]) == size
        gpu = manifest.get("peak_gpu_mb")
        gpu_text = "" if gpu is None else f"{gpu:.0f} ({gpu / size:.1f})"
        mean_ra = statistics.mean(m["ra"] for m in manifest["members"] if m["ra"] is not None)
        rows.append(
            f"| {name} | {size} | {wall:.1f} | {manifest['wall_time_s']:.1f} | {wall / size:.2f} "
            f"| {3600 * size / wall:.0f} | {size * single_wall / wall:.2f}x | {rss:.0f} | {gpu_text} "
            f"| {mean_ra:.2f} |"
        )
        print(rows[-1], flush=True)
    print(
        f"\n{platform.node()}, {os.cpu_count()} cores, {device}, extra overrides: {' '.join(args.override) or 'none'}"
    )


if __name__ == "__main__":
    main()
