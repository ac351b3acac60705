"""``python -m lamaml_pl.report multirun/<date>/<time> [more folders] [--out DIR]``

Reads every run below the folders (results.json + composed config), groups runs that differ only
in their seed, and writes report.md / report.csv (mean ± sample std beside the paper's numbers)
and figures: the methods of each benchmark side by side (RA bars, learning curves), per-group
accuracy matrix and per-task curves, wall time per method and, when the runs sweep
``algo.alpha_init``, the learning-rate robustness curve. A tuning run's folder (``sweep=tune``)
gets its tuning.md / tuning.png again too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lamaml_pl.outputs import TUNE_MANIFEST
from lamaml_pl.report.aggregate import group_runs
from lamaml_pl.report.collect import load_runs
from lamaml_pl.report.tuning import write_tuning_report
from lamaml_pl.report.write import (
    markdown,
    plot_group_matrices,
    plot_lr_robustness,
    plot_methods,
    plot_wall_time,
    write_csv,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lamaml_pl.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path, help="multirun or run folders")
    parser.add_argument("--out", type=Path, help="where to write (default: <first folder>/report)")
    args = parser.parse_args(argv)
    try:
        runs, skipped = load_runs(args.folders)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in skipped:
        print(f"skipped: {line}", file=sys.stderr)
    if not runs:
        print(
            f"error: no runs (results.json or .hydra/config.yaml) below {', '.join(map(str, args.folders))}",
            file=sys.stderr,
        )
        return 2
    # a run refused before it trained (a bad value): no setting to report, only a folder to clean up
    refused = [r for r in runs if r.results.get("status") == "failed" and "acc_matrix" not in r.results]
    runs = [r for r in runs if r not in refused]
    if not runs:
        print(f"error: every run below {', '.join(map(str, args.folders))} failed before training", file=sys.stderr)
        return 2
    out = args.out or args.folders[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    table = markdown(groups, refused)
    (out / "report.md").write_text(table)
    write_csv(groups, out / "report.csv")
    plot_group_matrices(groups, out)
    plot_methods(groups, out)
    plot_wall_time(groups, out / "wall_time.png")
    plot_lr_robustness(groups, out / "lr_robustness.png")
    for found in sorted({path for root in args.folders for path in root.rglob(TUNE_MANIFEST)}):
        record = json.loads(found.read_text())
        write_tuning_report(out, record, f"tuning_{record['algo']}_{record['data']}")
    print(table)
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
