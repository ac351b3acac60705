"""Crash and resume: a run killed after a task continues from its checkpoint to the same numbers."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lamaml_pl.errors import ConfigError
from lamaml_pl.run import resume_checkpoint
from tests.conftest import ROOT


def command(algo, root, run_dir, *extra):
    return [
        sys.executable,
        "train.py",
        f"algo={algo}",
        "data=mnist_perm",
        f"data.root={root}",
        "data.download=false",
        "data.n_tasks=4",
        "data.samples_per_task=100",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


@pytest.mark.parametrize("algo", ["lamaml", "ewc"])  # EWC: per-task state (Fisher sums, sample store)
def test_sigkill_then_resume_gives_the_uninterrupted_numbers(algo, tiny_mnist_root, tmp_path):
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    subprocess.run(command(algo, tiny_mnist_root, reference), cwd=ROOT, capture_output=True, check=True, timeout=300)

    run = subprocess.Popen(
        command(algo, tiny_mnist_root, crashed), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoint = crashed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.005)
    os.kill(run.pid, signal.SIGKILL)  # right after the first task's checkpoint
    run.wait()
    assert not (crashed / "results.json").exists()  # it really died before the end

    resumed = subprocess.run(
        command(algo, tiny_mnist_root, crashed, "resume=auto"), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = json.loads((reference / "results.json").read_text())
    got = json.loads((crashed / "results.json").read_text())
    assert got["eval_rows"] == expected["eval_rows"]
    assert got["acc_matrix"] == expected["acc_matrix"] and got["ra"] == expected["ra"]


def test_resume_arguments(tmp_path):
    assert resume_checkpoint(None, tmp_path) is None
    assert resume_checkpoint("auto", tmp_path) is None  # nothing to resume: a fresh run
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert resume_checkpoint("auto", tmp_path) == tmp_path / "checkpoints" / "last.ckpt"
    assert resume_checkpoint(str(tmp_path), tmp_path / "other") == tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="resume='/no/such/run': no checkpoint at /no/such/run"):
        resume_checkpoint("/no/such/run", tmp_path)
