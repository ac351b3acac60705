"""Wall time and peak RSS of whole runs of ``train.py``, one fresh process per run.

    python benchmarks/run_benchmarks.py lamaml-rot lamaml-many --data-root ../shared/data
    python benchmarks/run_benchmarks.py --all --repeat 3 --out benchmarks/latest.md
    python benchmarks/run_benchmarks.py lamaml-rot --override trainer.accelerator=cpu

Each case is a full paper run (``python train.py algo=... data=...``) with logging and the progress
bar off. Wall time is measured around the child process (start-up and evaluation included, as
the original ``main.py`` measures); "train + eval" is the run's own ``wall_time_s`` (without
start-up: imports, data loading, building the trainer); peak RSS twice: the run's own (its
results.json, read when training and evaluation end) and the process's over its whole life (its
rusage), which also counts torch's library teardown at exit (~100-125 MB of its shared libraries'
pages touched by static destructors: ``import torch`` alone peaks at 507 MB inside, 632 MB over the
process); RA/BTI come from the run's results.json, so every timing row also says what accuracy
it bought.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "lamaml-rot": ["algo=lamaml", "data=mnist_rot"],
    "cmaml-rot": ["algo=cmaml", "data=mnist_rot"],
    "sync-rot": ["algo=sync", "data=mnist_rot"],
    "lamaml-perm": ["algo=lamaml", "data=mnist_perm"],
    "cmaml-perm": ["algo=cmaml", "data=mnist_perm"],
    "sync-perm": ["algo=sync", "data=mnist_perm"],
    "lamaml-many": ["algo=lamaml", "data=mnist_many"],
    **{
        f"{algo}-{short}": [f"algo={algo}", f"data=mnist_{short}"]
        for algo in ("online", "ewc", "gem", "agem", "er", "mer", "iid")
        for short in ("rot", "perm")
    },
}
QUIET = ["logger=none", "trainer.enable_progress_bar=false"]


def run_train(overrides: list[str], data_root: str, extra: list[str], output: str = "results.json") -> tuple:
    """One ``train.py`` child process in a scratch folder: (wall s, peak RSS MB, its ``output`` JSON)."""
    with tempfile.TemporaryDirectory() as out_dir:
        cmd = [
            sys.executable,
            "train.py",
            *overrides,
            f"data.root={data_root}",
            *QUIET,
            *extra,
            f"hydra.run.dir={out_dir}",
        ]
        start = time.perf_counter()
        with open(Path(out_dir) / "stdout.log", "w") as log:
            child = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n" + (Path(out_dir) / "stdout.log").read_text()[-3000:])
        return wall, usage.ru_maxrss / 1024, json.loads((Path(out_dir) / output).read_text())


def run_case(overrides: list[str], data_root: str, extra: list[str]) -> dict:
    wall, peak_rss_mb, results = run_train(overrides, data_root, extra)
    return {
        "wall_s": wall,
        "fit_s": results["wall_time_s"],
        "run_rss_mb": results["peak_rss_mb"],
        "process_rss_mb": peak_rss_mb,
        "ra": results["ra"],
        "bti": results["bti"],
        "device": results["device"],
        "data_source": results["data_source"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", help=f"any of: {', '.join(CASES)}")
    parser.add_argument("--all", action="store_true", help="run every case")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Hydra override for every case (repeatable)",
    )
    args = parser.parse_args()
    names = list(CASES) if args.all else args.cases
    unknown = [n for n in names if n not in CASES]
    if not names or unknown:
        parser.error(f"unknown or no cases {unknown}: choose from {', '.join(CASES)}")
    extra = args.override

    header = (
        "| case | wall (s) | train + eval (s) | peak RSS: run (MB) | peak RSS: process, exit included (MB) "
        "| RA | BTI | device |\n|---|---|---|---|---|---|---|---|"
    )
    rows = []
    print(header, flush=True)
    for name in names:
        for _ in range(args.repeat):
            r = run_case(CASES[name], args.data_root, extra)
            bti = "n/a" if r["bti"] is None else f"{r['bti']:.2f}"  # the IID oracle reports RA only
            row = (
                f"| {name} | {r['wall_s']:.1f} | {r['fit_s']:.1f} | {r['run_rss_mb']:.0f} | {r['process_rss_mb']:.0f} "
                f"| {r['ra']:.2f} | {bti} | {r['device']} |"
            )
            rows.append(row)
            print(row, flush=True)
    footer = (
        f"\n{platform.node()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"data {r['data_source']}, extra overrides: {' '.join(extra) or 'none'}"
    )
    print(footer)
    if args.out:
        args.out.write_text("\n".join([header, *rows, footer]) + "\n")


if __name__ == "__main__":
    main()
