"""Crash and resume: a run killed after a task continues from its checkpoint to the same numbers."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader

from lamaml_pl.errors import ConfigError
from lamaml_pl.resume import AlreadyCompleted, ResumeError, resume_checkpoint
from lamaml_pl.run import train
from lamaml_pl.run_lock import FolderHeld
from tests.conftest import DOMAIN_IL_ALGOS, ROOT, compose_config, tiny_run_overrides
from tests.helpers.commands import run_many

pytestmark = pytest.mark.slow  # interrupted and resumed runs: the full tier (pytest -m slow)


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
    ("gem", ["population.lr=0.01,0.05"]),  # every member's episodic memory; projections after the resume
    ("meta_bgd", ["population.seed=0,1"]),  # every member's posterior, in the optimiser's state
]


@pytest.mark.parametrize(
    "algo, extra",
    KILLED,
    ids=["lamaml", "ewc", "lamaml-population", "er-population-multipass", "gem-population", "meta_bgd-population"],
)
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


JOB_EXIT = 3  # a job's own exit code, as submitit's requeue on SIGUSR2 exits with


class ExitingLoader(DataLoader):
    def __iter__(self):
        raise SystemExit(JOB_EXIT)


class ExitAsTheSecondTaskLoaderStarts(Callback):
    """An exit signal's handler (submitit's on SIGUSR2) that runs while Lightning starts the next
    task's loader: between setting up its fetcher and iterating it, where Lightning's own
    teardown then fails on the loader it never iterated."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.datamodule.train_dataloader = lambda: ExitingLoader(range(1))  # sized, as Lightning checks


def test_an_exit_while_a_task_loader_starts_ends_the_run_as_interrupted(tiny_mnist_root, tmp_path):
    reference = train(compose_config(tiny_run_overrides("lamaml", "mnist_perm", tiny_mnist_root, tmp_path / "ref")))
    stopping = tiny_run_overrides("lamaml", "mnist_perm", tiny_mnist_root, tmp_path / "stopped")
    with pytest.raises(SystemExit) as stop:
        train(compose_config([*stopping, f"+callbacks.exit._target_={__name__}.ExitAsTheSecondTaskLoaderStarts"]))
    assert stop.value.code == JOB_EXIT  # the job's own code: submitit requeues on it
    interrupted = json.loads((tmp_path / "stopped" / "results.json").read_text())
    assert interrupted["status"] == "interrupted" and len(interrupted["acc_matrix"]) == 1
    # the metrics of all tasks are undefined; the mean over the one task trained is recorded as such
    assert interrupted["ra"] is None and interrupted["tasks_trained"] == 1
    assert interrupted["ra_trained"] == pytest.approx(interrupted["acc_matrix"][0][0], abs=1e-3)
    resumed = train(compose_config([*stopping, "resume=auto"]))
    assert resumed["acc_matrix"] == reference["acc_matrix"]


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


@pytest.mark.parametrize("scenario", ["task_il", "class_il"])
def test_icarl_resumes_with_its_exemplars(scenario, tiny_cifar_root, tmp_path):
    """iCaRL's exemplars, distillation targets and first-pass store are Python-side state: they
    travel in the checkpoint, and the resumed run scores and distils as the uninterrupted one."""
    run = [
        *tiny_run_overrides("icarl", "cifar100", tiny_cifar_root, tmp_path / "reference"),
        f"data.scenario={scenario}",
        "algo.n_memories=20",
    ]
    reference = train(compose_config(run))
    crashing = [*run, f"paths.output_dir={tmp_path / 'resumed'}"]
    with pytest.raises(Crash):
        train(compose_config([*crashing, f"+callbacks.crash._target_={__name__}.CrashAfterFirstTask"]))
    resumed = train(compose_config([*crashing, "resume=auto"]))
    assert resumed["eval_rows"] == reference["eval_rows"]


def test_resume_arguments(tmp_path):
    assert resume_checkpoint(None, tmp_path) is None
    assert resume_checkpoint("auto", tmp_path) is None  # nothing to resume: a fresh run
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert resume_checkpoint("auto", tmp_path) == tmp_path / "checkpoints" / "last.ckpt"
    assert resume_checkpoint(str(tmp_path), tmp_path / "other") == tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="resume='/no/such/run': no checkpoint at /no/such/run"):
        resume_checkpoint("/no/such/run", tmp_path)


@pytest.fixture
def crashed_run(tiny_mnist_root, tmp_path):
    """La-MAML stopped after its first task: a checkpoint and a config.yaml, no results.json."""
    overrides = tiny_run_overrides("lamaml", "mnist_perm", tiny_mnist_root, tmp_path / "run")
    crash = f"+callbacks.crash._target_={__name__}.CrashAfterFirstTask"
    with pytest.raises(Crash):
        train(compose_config([*overrides, crash]))
    return overrides, tmp_path / "run"


def folder_state(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "change, message",
    [
        ("seed=7", r"resume: seed=7 differs from the run being resumed \(seed=0, recorded in .*last.ckpt\)"),
        ("algo.alpha_init=0.3", r"resume: algo.alpha_init=0.3 differs .*\(algo.alpha_init=0.15, recorded in"),
        ("algo=cmaml", r"last.ckpt was written by algo=lamaml; this run is algo=cmaml"),
        ("trainer.num_threads=2", r"resume: trainer.num_threads=2 differs"),
    ],
)
def test_a_resume_that_changes_the_config_is_refused_and_nothing_is_written(crashed_run, change, message):
    overrides, folder = crashed_run
    before = folder_state(folder)
    with pytest.raises(ResumeError, match=message):
        train(compose_config([*overrides, "resume=auto", change]))
    assert folder_state(folder) == before


def test_a_resume_takes_the_run_folders_config_and_sums_the_wall_time(crashed_run, tiny_mnist_root, tmp_path, capsys):
    overrides, folder = crashed_run
    first_segment = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["lamaml_pl"]["wall_time_s"]
    # only where to write and what to print may differ; a new folder continues the crashed run
    capsys.readouterr()
    resumed = train(compose_config([*overrides, f"resume={folder}", f"paths.output_dir={tmp_path / 'next'}"]))
    assert "resuming after task 1/2: " in capsys.readouterr().out  # where it goes on, said first
    assert resumed["status"] == "completed" and resumed["wall_time_s"] > first_segment > 0
    reference = train(compose_config(tiny_run_overrides("lamaml", "mnist_perm", tiny_mnist_root, tmp_path / "ref")))
    assert resumed["acc_matrix"] == reference["acc_matrix"]


def test_a_completed_run_is_not_resumed(crashed_run):
    overrides, folder = crashed_run
    train(compose_config([*overrides, "resume=auto"]))
    before = folder_state(folder)
    with pytest.raises(AlreadyCompleted, match=f"resume: the run in {folder} already completed"):
        train(compose_config([*overrides, "resume=auto"]))
    assert folder_state(folder) == before


def test_a_file_that_is_not_a_checkpoint_is_refused(tiny_mnist_root, tmp_path):
    junk = tmp_path / "notes.ckpt"
    junk.write_text("not a checkpoint")
    overrides = tiny_run_overrides("lamaml", "mnist_perm", tiny_mnist_root, tmp_path / "run")
    with pytest.raises(ResumeError, match=f"resume='{junk}': {junk} is not a checkpoint of this project"):
        train(compose_config([*overrides, f"resume={junk}"]))
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_of_another_algorithm_is_refused(crashed_run, tiny_mnist_root, tmp_path):
    _, folder = crashed_run
    lone = tmp_path / "lone.ckpt"  # a checkpoint away from its run folder
    lone.write_bytes((folder / "checkpoints" / "last.ckpt").read_bytes())
    overrides = tiny_run_overrides("er", "mnist_perm", tiny_mnist_root, tmp_path / "er")
    with pytest.raises(ResumeError, match=r"lone.ckpt was written by algo=lamaml; this run is algo=er"):
        train(compose_config([*overrides, f"resume={lone}"]))
    assert not (tmp_path / "er").exists()


@pytest.mark.parametrize(
    "extra, stop",
    [([], signal.SIGTERM), (POPULATION, signal.SIGTERM), ([], signal.SIGUSR1)],
    ids=["single", "population", "single-sigusr1"],
)
def test_sigterm_leaves_an_interrupted_run_that_resumes_to_the_same_numbers(extra, stop, tiny_mnist_root, tmp_path):
    """SIGTERM (a cluster stopping a job) and SIGUSR1 (SLURM's warning before a time limit)."""
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    run_args = ["logger=csv", *extra]
    subprocess.run(command("lamaml", tiny_mnist_root, reference, *run_args), cwd=ROOT, capture_output=True, check=True)
    run = subprocess.Popen(
        command("lamaml", tiny_mnist_root, stopped, *run_args), cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    checkpoint = stopped / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.005)
    run.send_signal(stop)
    out, _ = run.communicate(timeout=120)
    assert run.returncode == 130, out[-3000:]
    assert f"interrupted: continue with  python train.py resume=auto hydra.run.dir={stopped}" in out
    written = sorted(stopped.rglob("results.json"))
    assert len(written) == (4 if extra else 1)
    for path in written:
        interrupted = json.loads(path.read_text())
        assert interrupted["status"] == "interrupted" and len(interrupted["acc_matrix"]) < 4
    logged = (stopped / "csv" / "metrics.csv").read_text().splitlines() if not extra else []

    # the run's config is in its checkpoint: resume=auto and the folder are all it takes
    resumed = subprocess.run(
        [sys.executable, "train.py", "resume=auto", f"hydra.run.dir={stopped}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for path in sorted(reference.rglob("results.json")):
        want, got = (json.loads(p.read_text()) for p in (path, stopped / path.relative_to(reference)))
        assert got["status"] == "completed" and got["acc_matrix"] == want["acc_matrix"], path
    if not extra:  # a single run's log continues where the first segment stopped
        assert (stopped / "csv" / "metrics.csv").read_text().splitlines()[: len(logged)] == logged


def test_a_sweep_run_again_with_resume_auto_keeps_its_completed_jobs(tiny_mnist_root, tmp_path):
    sweep = [
        sys.executable,
        "train.py",
        "-m",
        "algo=er",
        "data=mnist_perm",
        f"data.root={tiny_mnist_root}",
        "data.download=false",
        "data.n_tasks=2",
        "data.samples_per_task=40",
        "trainer.enable_progress_bar=false",
        "logger=none",
        "seed=0,1,2",
        f"hydra.sweep.dir={tmp_path}",
    ]
    subprocess.run(sweep, cwd=ROOT, capture_output=True, check=True, timeout=300)
    done = json.loads((tmp_path / "0" / "results.json").read_text())
    kept = (tmp_path / "0" / "results.json").stat().st_mtime_ns
    (tmp_path / "1" / "results.json").write_text('{"status": "failed", "error": "the node died"}')
    (tmp_path / "2" / "results.json").unlink()  # killed mid-run: its checkpoint is all there is

    again = subprocess.run([*sweep, "resume=auto"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"skipped: {tmp_path / '0'} already completed (RA {done['ra']})" in again.stdout
    assert (tmp_path / "0" / "results.json").stat().st_mtime_ns == kept
    for job in ("1", "2"):
        assert json.loads((tmp_path / job / "results.json").read_text())["status"] == "completed"


def test_a_folder_in_use_is_refused_and_a_stale_lock_taken_over(tiny_mnist_root, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / ".lock").write_text(f"{live.pid} {socket.gethostname()}\n")
        overrides = tiny_run_overrides("er", "mnist_perm", tiny_mnist_root, folder)
        with pytest.raises(FolderHeld, match=f"{folder} is in use by process {live.pid} on {socket.gethostname()}"):
            train(compose_config(overrides))
        assert sorted(p.name for p in folder.iterdir()) == [".lock"]  # nothing written beside it
    finally:
        live.kill()
        live.wait()
    # its process is gone now (as after kill -9): the lock is stale, the run takes the folder
    assert train(compose_config(overrides))["status"] == "completed"
    assert not (folder / ".lock").exists()  # released at the end


def test_a_preempted_submitit_job_requeues_itself_and_ends_as_if_uninterrupted(tiny_mnist_root, tmp_path):
    """submitit's preemption signal (SIGUSR2, as on a cluster) reaches the job after its first task:
    submitit requeues it, and with resume=auto the requeued job continues from its checkpoint."""
    reference, sweep = tmp_path / "reference", tmp_path / "sweep"
    subprocess.run(command("lamaml", tiny_mnist_root, reference), cwd=ROOT, capture_output=True, check=True)
    overrides = [o for o in command("lamaml", tiny_mnist_root, reference)[2:] if not o.startswith("hydra.")]
    launch = [sys.executable, "train.py", "-m", *overrides, "seed=0", "resume=auto", f"hydra.sweep.dir={sweep}"]
    launch += ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"]
    sweeper = subprocess.Popen(launch, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint, lock = sweep / "0" / "checkpoints" / "last.ckpt", sweep / "0" / ".lock"
    deadline = time.time() + 240
    while not (checkpoint.exists() and lock.exists()) and time.time() < deadline:
        time.sleep(0.005)
    job = int(lock.read_text().split()[0])  # the training process, as submitit started it
    os.kill(job, signal.SIGUSR2)
    out, err = sweeper.communicate(timeout=300)
    assert sweeper.returncode == 0, err[-3000:]
    log = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*.out"))  # submitit's record of the job
    assert "interrupted: continue with" in log and log.count("Starting with JobEnvironment") == 2  # requeued once
    want = json.loads((reference / "results.json").read_text())
    got = json.loads((sweep / "0" / "results.json").read_text())
    assert got["status"] == "completed" and got["acc_matrix"] == want["acc_matrix"]


def test_a_refused_resume_from_the_command_line_touches_nothing(tiny_mnist_root, tmp_path):
    folder = tmp_path / "run"
    args = tiny_run_overrides("online", "mnist_perm", tiny_mnist_root, folder)
    args = [a for a in args if not a.startswith("paths.output_dir")] + [f"hydra.run.dir={folder}"]
    (first,) = run_many([args], tmp_path)
    assert first["code"] == 0 and (folder / ".hydra" / "config.yaml").is_file()
    before = folder_state(folder)
    refused = run_many(
        [[*args, "resume=auto"], [*args, "resume=auto", "seed=7"], [*args, f"resume={folder}"]], tmp_path
    )
    for outcome in refused:
        assert outcome["code"] == 2 and "already completed" in outcome["error_lines"][0], outcome
    assert folder_state(folder) == before  # .hydra/config.yaml still says seed 0
