"""Runs many command lines of train.py in one process, one after another (the imports paid once),
and reports for each: the exit code, its ``error:`` lines, and whether a traceback was printed.

    python tests/helpers/cli_runner.py <file of JSON lists of arguments>   (prints JSON lines)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["HYDRA_MAIN_MODULE"] = "__main__"  # Hydra finds conf/ beside train.py's file, as when it is run

import train  # noqa: E402


def invoke(args: list[str]) -> dict:
    err, out = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            sys.argv[0] = str(ROOT / "train.py")
            train.cli(args)  # as `python train.py <args>`
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:  # what would reach the user as a traceback
            traceback.print_exc()
            code = 1
    text = err.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    return {
        "args": args,
        "code": code,
        "error_lines": [line for line in lines if line.startswith("error:")],
        "traceback": "Traceback" in text or "Traceback" in out.getvalue(),
        "stderr_tail": lines[-3:],
    }


def main() -> None:
    for args in json.loads(Path(sys.argv[1]).read_text()):
        print(json.dumps(invoke(args)), flush=True)


if __name__ == "__main__":
    main()
