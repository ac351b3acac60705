"""``python train.py <args>`` for many argument lists, in one process (the imports paid once):
``tests/helpers/cli_runner.py``, whose outcome per command is its exit code, its ``error:`` lines
and whether a traceback reached the user."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_many(invocations: list[list[str]], folder: Path, timeout: int = 1200) -> list[dict]:
    listing = folder / "invocations.json"
    listing.write_text(json.dumps(invocations))
    runner = subprocess.run(
        [sys.executable, "tests/helpers/cli_runner.py", str(listing)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert runner.returncode == 0, runner.stderr[-3000:]
    outcomes = [json.loads(line) for line in runner.stdout.splitlines() if line.startswith("{")]
    assert len(outcomes) == len(invocations)
    return outcomes
