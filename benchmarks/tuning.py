"""A whole tuning run (``sweep=tune``) against five single runs of the method, in one invocation.

    python benchmarks/tuning.py                                  # La-MAML, MNIST Rotations, its 27-setting grid
    python benchmarks/tuning.py --case er-rot --override trainer.accelerator=gpu

Five single runs (seeds 0-4, the composed values: one process each, one after another), then
``python train.py sweep=tune`` of the same case (the grid on the validation split, then the chosen
values' five test seeds, and the composed values' five where the choice differs): the ratio of the
wall times, the chosen values and both test rows.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics

from run_benchmarks import CASES, ROOT, run_train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="lamaml-rot", choices=sorted(CASES))
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    case = CASES[args.case]

    singles = []
    for seed in range(5):
        wall, _, results = run_train(case + [f"seed={seed}"], args.data_root, args.override)
        singles.append((wall, results["ra"]))
        print(f"single run, seed {seed}: {wall:.1f} s, RA {results['ra']:.2f}", flush=True)
    single_total = sum(wall for wall, _ in singles)

    wall, rss, record = run_train(case + ["sweep=tune"], args.data_root, args.override, output="tune.json")
    members = sum(row["seeds"] for row in record["scores"])
    print(f"\n{platform.processor() or platform.machine()}, {record['algo']} on {record['data']}")
    print(f"five single runs: {single_total:.1f} s (RA {statistics.fmean(ra for _, ra in singles):.2f})")
    stages = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in record["stages"].items())
    print(f"sweep=tune: {wall:.1f} s ({members} grid members; {stages}), peak RSS {rss:.0f} MB")
    print(f"ratio: {wall / single_total:.2f}x five single runs")
    print(f"chosen {record['chosen']}, composed {record['published']}")
    for stage, rows in record["test"].items():
        ras = [ra for ra in rows["ra"] if ra is not None]
        print(f"  {stage}: test RA {statistics.fmean(ras):.2f} ± {statistics.stdev(ras):.2f} over {len(ras)} seeds")
    print(json.dumps({"singles_s": single_total, "tune_s": wall, "stages": record["stages"]}))


if __name__ == "__main__":
    main()
