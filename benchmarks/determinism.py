"""Run one configuration several times and say whether the accuracy matrices agree exactly.

    python benchmarks/determinism.py --repeat 2 -- algo=lamaml data=mnist_rot data.n_tasks=3
    python benchmarks/determinism.py --repeat 2 -- algo=lamaml data=cifar100 trainer.deterministic=true

Everything after ``--`` goes to ``train.py``. Prints, per repetition, RA and the largest
difference of any accuracy-matrix entry from the first run (0.0 = bit-identical numbers).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    matrices = []
    for k in range(args.repeat):
        with tempfile.TemporaryDirectory() as out_dir:
            cmd = [
                sys.executable,
                "train.py",
                *args.overrides,
                "logger=none",
                "trainer.enable_progress_bar=false",
                f"hydra.run.dir={out_dir}",
            ]
            child = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if child.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{child.stderr[-3000:]}")
            results = json.loads((Path(out_dir) / "results.json").read_text())
        rows = list(results["eval_rows"]["rows"])
        matrices.append(rows)
        worst = max(abs(a - b) for r0, r in zip(matrices[0], rows) for a, b in zip(r0, r))
        print(
            f"run {k}: RA {results['ra']}, largest difference from run 0: {worst:.4f} points ({results['device']})",
            flush=True,
        )
    print("identical" if all(m == matrices[0] for m in matrices) else "DIFFERENT", " ".join(args.overrides))


if __name__ == "__main__":
    main()
