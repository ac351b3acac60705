"""Crash and resume: a run killed after a task continues from its checkpoint to the same numbers."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from pytorch_lightning.callbacks import Callback

from lamaml_pl.errors import ConfigError
from lamaml_pl.run import resume_checkpoint, train
from tests.conftest import DOMAIN_IL_ALGOS, ROOT, compose_config, tiny_run_overrides


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


POPULATION = ["population.seed=0,1", "population.alpha_init=0.03,0.1"]
KILLED = [  # EWC: per-task state (Fisher sums, sample store); populations: every member's state and
    ("lamaml", []),  # generator, also between the passes of a task
    ("ewc", []),
    ("lamaml", POPULATION),
    ("er", ["population.lr=0.01,0.05", "data.epochs_per_task=2"]),
]


@pytest.mark.parametrize("algo, extra", KILLED, ids=["lamaml", "ewc", "lamaml-population", "er-population-multipass"])
def test_sigkill_then_resume_gives_the_uninterrupted_numbers(algo, extra, tiny_mnist_root, tmp_path):
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    subprocess.run(
        command(algo, tiny_mnist_root, reference, *extra), cwd=ROOT, capture_output=True, check=True, timeout=300
    )

    run = subprocess.Popen(
        command(algo, tiny_mnist_root, crashed, *extra), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoint = crashed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.005)
    os.kill(run.pid, signal.SIGKILL)  # right after the first task's checkpoint
    run.wait()
    assert not list(crashed.rglob("results.json"))  # it really died before the end

    resumed = subprocess.run(
        command(algo, tiny_mnist_root, crashed, *extra, "resume=auto"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = sorted(reference.rglob("results.json"))
    assert len(expected) == (4 if extra == POPULATION else 2 if extra else 1)
    for path in expected:
        got = json.loads((crashed / path.relative_to(reference)).read_text())
        want = json.loads(path.read_text())
        assert got["eval_rows"] == want["eval_rows"], path
        assert got["acc_matrix"] == want["acc_matrix"] and got["ra"] == want["ra"]


class Crash(Exception):
    pass


class CrashAfterFirstTask(Callback):
    """Dies as the second task starts: after the first task's checkpoint, before its results."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            raise Crash


TASK_BY_TASK = [algo for algo in DOMAIN_IL_ALGOS if not compose_config([f"algo={algo}"]).data.joint]


@pytest.mark.parametrize("algo", TASK_BY_TASK)
def test_every_algorithm_resumes_to_the_uninterrupted_numbers(algo, tiny_mnist_root, tmp_path):
    """Each algorithm's state (weights, rates, buffers and their extras, optimiser, Python-side
    state) travels in its checkpoint: an interrupted run resumed ends with the same matrix."""
    reference = train(compose_config(tiny_run_overrides(algo, "mnist_perm", tiny_mnist_root, tmp_path / "reference")))
    crashing = tiny_run_overrides(algo, "mnist_perm", tiny_mnist_root, tmp_path / "resumed")
    crash = f"+callbacks.crash._target_={__name__}.CrashAfterFirstTask"
    with pytest.raises(Crash):
        train(compose_config([*crashing, crash]))
    resumed = train(compose_config([*crashing, "resume=auto"]))
    assert resumed["eval_rows"] == reference["eval_rows"]
    assert resumed["acc_matrix"] == reference["acc_matrix"]


def test_resume_arguments(tmp_path):
    assert resume_checkpoint(None, tmp_path) is None
    assert resume_checkpoint("auto", tmp_path) is None  # nothing to resume: a fresh run
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert resume_checkpoint("auto", tmp_path) == tmp_path / "checkpoints" / "last.ckpt"
    assert resume_checkpoint(str(tmp_path), tmp_path / "other") == tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="resume='/no/such/run': no checkpoint at /no/such/run"):
        resume_checkpoint("/no/such/run", tmp_path)
